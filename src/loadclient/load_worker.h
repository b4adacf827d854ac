#pragma once
// LoadWorker: one load-generating loop on its own thread, over the I/O backend --io
// chooses: EpollLoadLoop (plain sockets; --io epoll|uring) or DirectLoadLoop (io_uring
// direct descriptors; --io direct). What a loop does is LoadLoop's (load_loop.h).
//
// Thread rule: construct and run() on one thread; counters()/take_interval()/stop() may
// be called from any thread; measured() only after run() returned.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/noncopyable.h"
#include "loadclient/hdr_histogram.h"
#include "loadclient/load_config.h"
#include "loadclient/load_stats.h"

namespace c10m::loadclient {

class LoadLoop;

class LoadWorker : NonCopyable {
 public:
  /// `global_ids`: the connections this loop owns (their ids pick address, source IP,
  /// activity and the seeded streams). `config.io` must be resolved (not kAuto).
  /// `pattern` must outlive the worker.
  LoadWorker(const LoadConfig& config, const PayloadPattern& pattern,
             std::vector<uint64_t> global_ids, double ramp_per_s);
  ~LoadWorker();

  /// Runs the loop until the run's end (t0 + warmup + duration, then up to `grace` for
  /// owed replies) or stop(). Returns an empty string, or a fatal set-up error.
  std::string run();
  void stop();

  const WorkerCounters& counters() const;
  /// Moves the latency samples recorded since the last call (warm-up included) into `into`.
  void take_interval(HdrHistogram* into);
  /// Samples whose intended send time is inside the measured window. After run().
  const HdrHistogram& measured() const;
  /// First error message per connect-failure kind (errno text), for the report.
  std::string first_connect_error() const;
  /// sizeof the per-connection record every connection has (idle ones too).
  static size_t conn_struct_bytes();

 private:
  std::unique_ptr<LoadLoop> loop_;
};

}  // namespace c10m::loadclient
