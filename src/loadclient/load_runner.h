#pragma once
// Drives a whole run: the worker threads of this process, the per-second live line and
// series, the server probe (--server-pid), and with --procs N the N re-executed worker
// processes whose results it merges. main() parses flags into a LoadConfig and calls
// run_load().
#include <cstdint>
#include <string>
#include <vector>

#include "loadclient/load_config.h"
#include "loadclient/load_report.h"

namespace c10m::loadclient {

/// The global connection ids worker process `worker_index` of `worker_count` owns. Every
/// process owns the same number (within one): g = worker_index, worker_index +
/// worker_count, ... below conns. With `pack_active_frac` > 0 (--pack-active) the ids are
/// dealt in order from the list "every active id (is_active_conn), then every idle one"
/// instead, so the active connections fill the fewest processes and the rest only hold
/// idle connections (one wake-up serves more sends; the server sees the same load).
std::vector<uint64_t> process_conn_ids(uint64_t conns, int worker_index, int worker_count,
                                       double pack_active_frac = 0);

/// Fds a load process keeps for itself besides its connections (stdio, epoll sets, rings,
/// pipes): --io auto counts them when it compares the connections with the fd limit.
inline constexpr uint64_t kFdReserve = 64;

/// What --io auto means for this run: direct where a process's share of the connections
/// (plus kFdReserve) exceeds `fd_limit` and the kernel runs it, else uring where the
/// kernel runs it, else epoll. Any other mode is returned as it is.
IoMode resolve_io_mode(const LoadConfig& config, uint64_t fd_limit);

/// Runs the load described by `config`. `argv` is this program's command line (re-executed
/// for --procs workers, with hidden --worker-* flags appended). Prints the live line
/// (stderr) and final table (stdout), writes --json and --hgrm. In a worker process it
/// instead writes JSON lines (per-second ticks, then the final result) to stdout.
/// Returns the exit status: 0 when the run completed (errors and mismatches are reported,
/// not fatal), 1 on a fatal error (message on stderr).
int run_load(LoadConfig config, const std::vector<std::string>& argv);

/// The in-process part, for tests and for run_load: runs this process's share and returns
/// the report (single process: complete; no table/JSON written).
RunReport run_in_process(const LoadConfig& config, std::string* fatal);

}  // namespace c10m::loadclient
