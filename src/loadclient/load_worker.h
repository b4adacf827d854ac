#pragma once
// One load-generating event loop: an epoll loop on its own thread that owns a share of the
// run's connections (opened non-blocking, paced by --ramp), sends on each active
// connection's open-model schedule (or keeps --inflight requests outstanding), validates
// every reply and records latency from the intended send time.
//
// Syscalls: requests produced during one loop turn (the replacements for the replies of
// a read, every send whose time came) are staged (write_stage.h) and each connection
// writes them with one write/writev at the end of the turn; the schedule is an indexed
// heap (send_heap.h) and one wake serves every send due within --send-slack. With
// --io uring (io_batch.h) those reads and writes are ring operations instead: the reads of
// one epoll batch in one io_uring_enter, the writes of one turn in another.
//
// Memory: a connection costs a small fixed struct (conn_struct_bytes()) plus 4 bytes of
// heap position; an idle one owns no buffer. An active one gets, on its first send, its
// schedule state and a ring of owed requests (grows only while replies are owed) and a
// write queue used only when the kernel refuses bytes. Reads go to one scratch buffer
// and writes to one staging arena per loop.
//
// Thread rule: construct and run() on one thread; counters()/take_interval()/stop() may
// be called from any thread; measured() only after run() returned.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/noncopyable.h"
#include "loadclient/hdr_histogram.h"
#include "loadclient/load_config.h"
#include "loadclient/load_stats.h"

namespace c10m::loadclient {

class LoadWorker : NonCopyable {
 public:
  /// `global_ids`: the connections this loop owns (their ids pick address, source IP,
  /// activity and the seeded streams). `pattern` must outlive the worker.
  LoadWorker(const LoadConfig& config, const PayloadPattern& pattern,
             std::vector<uint64_t> global_ids, double ramp_per_s);
  ~LoadWorker();

  /// Runs the loop until the run's end (t0 + warmup + duration, then up to `grace` for
  /// owed replies) or stop(). Returns an empty string, or a fatal set-up error.
  std::string run();
  void stop() { stop_.store(true, std::memory_order_relaxed); }

  const WorkerCounters& counters() const { return counters_; }
  /// Moves the latency samples recorded since the last call (warm-up included) into `into`.
  void take_interval(HdrHistogram* into);
  /// Samples whose intended send time is inside the measured window. After run().
  const HdrHistogram& measured() const { return measured_; }
  /// First error message per connect-failure kind (errno text), for the report.
  std::string first_connect_error() const;
  /// sizeof the per-connection record every connection has (idle ones too).
  static size_t conn_struct_bytes();

 private:
  struct Conn;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  WorkerCounters counters_;
  HdrHistogram measured_;
  HdrHistogram interval_;
  HdrHistogram published_;
  std::mutex publish_mu_;
  std::atomic<bool> stop_{false};
  friend struct Impl;
};

}  // namespace c10m::loadclient
