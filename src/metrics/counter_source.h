#pragma once
// CounterSource: what a /metrics endpoint reads. It sums every counter block it knows
// (every slot of every worker process) and names the processes whose counters these are,
// so that process_* metrics can describe them too.
//
// Thread rule: collect()/processes() may run on any thread (the admin thread) while the
// workers write their blocks; they only read (relaxed loads).
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "metrics/counter_totals.h"

namespace c10m::metrics {

class CounterSource {
 public:
  virtual ~CounterSource() = default;
  /// Zeroes `out` and adds every block. O(blocks): never depends on connections.
  virtual void collect(CounterTotals* out) const = 0;
  /// Live processes writing these counters (at least the calling process when it writes
  /// any). For process_* metrics and c10m_worker_processes.
  virtual std::vector<pid_t> processes() const = 0;
  /// Live worker processes whose blocks are summed (c10m_worker_processes).
  virtual size_t worker_processes() const = 0;

  /// Per worker process of a supervisor (--workers), by worker index: connections open
  /// now and sockets accepted. Empty for a single process (no per-worker series then).
  struct WorkerSample {
    uint64_t conns_open = 0;
    uint64_t accept_total = 0;
  };
  virtual std::vector<WorkerSample> per_worker() const { return {}; }
  /// Worker processes the supervisor started again after they died.
  virtual uint64_t worker_restarts() const { return 0; }
  /// Sockets accepted per counter block (worker process, event loop): how evenly the
  /// acceptors share the connections. Empty: no per-loop series.
  struct LoopAccepts {
    size_t worker = 0;
    size_t loop = 0;
    uint64_t accept_total = 0;
  };
  virtual std::vector<LoopAccepts> per_loop_accepts() const { return {}; }
};

}  // namespace c10m::metrics
