#pragma once
// Everything a load run is told: filled by apps/c10m_loadclient.cc from the command line,
// read (never written) by every worker thread.
#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "loadclient/workload.h"

namespace c10m::loadclient {

enum class Op { kPing, kEcho, kSink, kStream, kFetch };
std::optional<Op> parse_op(std::string_view name);
const char* op_name(Op op);

/// How a loop moves bytes: one read/write syscall per connection (epoll); every read of an
/// epoll batch and every write of a turn in one io_uring_enter each (uring, io_batch.h);
/// or connections as io_uring direct descriptors, outside the fd table (direct,
/// direct_load_loop.h). auto: direct where a process's connections exceed its fd limit
/// (and the kernel has it), else uring where the kernel has it, else epoll; run_load()
/// resolves it (resolve_io_mode).
enum class IoMode { kAuto, kEpoll, kUring, kDirect };
std::optional<IoMode> parse_io_mode(std::string_view name);
const char* io_mode_name(IoMode mode);

struct LoadConfig {
  std::vector<sockaddr_in> addrs;   // round-robin over connections (global id % size)
  std::vector<sockaddr_in> srcips;  // empty: kernel picks; else round-robin
  uint64_t conns = 1;
  double active_frac = 1.0;  // the rest only hold their connection open
  double rate = 10;          // sends per second per active connection (open model)
  uint32_t inflight = 0;     // > 0: closed loop, K requests in flight per connection
  Op op = Op::kEcho;
  PayloadMix payload = *PayloadMix::parse("64", nullptr);
  uint32_t chunk = 16384;         // STREAM/FETCH chunk size (1..65535)
  Schedule schedule;              // kind + rate (rate copied from `rate`) + jitter
  Nanos duration = 10 * kSecond;  // measured phase (after warm-up); the run always ends
  Nanos warmup = 0;               // samples whose intended send time is earlier are left out
  Nanos sends_from = 0;           // open model: no active connection sends before t0 + this
  Nanos connect_timeout = 5 * kSecond;
  Nanos grace = 2 * kSecond;  // after the last send: wait this long for owed replies
  double ramp = 0;            // connections opened per second, all processes; 0 = at once
  Nanos send_slack = 50 * kMicrosecond;  // one wake serves every send due within this
  int sndbuf = 0;                        // SO_SNDBUF / SO_RCVBUF of client sockets (0: kernel)
  int rcvbuf = 0;
  int threads = 1;
  int procs = 1;
  uint64_t seed = 1;
  IoMode io = IoMode::kAuto;
  bool nodelay = true;
  bool reconnect = false;
  bool pack_active = false;  // --procs: active connections fill the first processes
  bool live = true;          // the live line on stderr
  int server_pid = 0;
  std::string json_path;
  std::string hgrm_path;
  std::vector<std::string> addr_text;  // as given, for the report

  // --procs plumbing (hidden flags): this process is worker `worker_index` of
  // `worker_count`, and the run's clock starts at `t0` (CLOCK_MONOTONIC is system-wide).
  int worker_index = -1;
  int worker_count = 1;
  Nanos t0 = 0;

  bool closed_loop() const { return inflight > 0; }
  uint64_t active_target() const;  // over all processes
};

/// The label of closed-loop results, in the table and the JSON.
inline constexpr const char* kClosedLoopLabel =
    "CLOSED-LOOP (latency excludes queueing; not for SLO claims)";

}  // namespace c10m::loadclient
