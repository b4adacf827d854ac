#pragma once
// The thread engine: the classic model, kept as the baseline for every comparison. An
// acceptor thread waits in poll() on the (non-blocking) listener and the drain eventfd,
// then accept()s; each connection gets its own OS thread (detached, explicit small stack:
// config.thread_stack) doing blocking I/O. Polling first lets the acceptor share an
// inherited listener with sibling worker processes and wake for the drain without
// shutting that listener down. In worker mode at capacity the acceptor stops polling
// (the siblings' acceptors, also in poll(), take the connections) until enough
// connection threads have ended.
//
// Waiting: poll() on the connection fd plus the engine's drain eventfd, with the timeout
// set to the session's next deadline; then a blocking read() or writev(). Writes block
// in SO_SNDTIMEO slices (<= kWriteSlice) so a peer that stops reading still lets the
// thread tick the session's write timeout and notice the drain.
//
// Counters: connection threads cannot share a single-writer ThreadCounters block, so each
// thread counts into a private block and merges its deltas into the one shared slot with
// atomic adds (Counter::add_atomic) after every I/O batch: a locked RMW per changed
// counter per batch, and a contended cache line, is part of this baseline's cost.
//
// Memory per connection: the thread's stack, one heap read buffer of config.readbuf bytes
// (allocated when the thread starts), a private counter block, and BufferPools that keep
// up to kPoolCache free blocks while the connection is busy (so that a steady load does not
// allocate: a deep write queue plus held input use several blocks at once) and are trimmed
// to one once the connection has waited kPoolTrimAfter with nothing to do.
//
// Memory budget: each connection thread has its own BudgetAccount (chunk 0: an atomic add
// per block). The acceptor stops accepting at Pressure::kStopAccept; past the limit a
// connection thread sheds itself when it next wakes (at most one write slice later) if its
// output has not moved for a whole slice or it holds input with nothing to write: the
// baseline's approximation of "largest first".
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "core/memory_budget.h"
#include "engine/engine.h"
#include "engine/engine_support.h"
#include "sys/socket.h"

namespace c10m::engine {

class ThreadEngine final : public Engine {
 public:
  static constexpr size_t kCounterSlots = 1;
  static constexpr Nanos kWriteSlice = 100 * kMillisecond;
  static constexpr Nanos kForceGrace = 1 * kSecond;
  static constexpr size_t kPoolCache = 6;
  static constexpr Nanos kPoolTrimAfter = 1 * kSecond;

  /// Throws std::runtime_error (bad --fetch-file, no eventfd).
  ThreadEngine(const core::ServerConfig& config, CounterSlots* counters);
  ~ThreadEngine() override;

  std::string adopt_worker_listener(const WorkerListener& listener) override;
  std::string bind() override;
  uint16_t port() const override { return port_; }
  DrainReport run() override;
  void request_drain() override;
  uint64_t open_connections() const override { return open_.load(std::memory_order_relaxed); }

 private:
  struct Conn;
  static void* conn_main(void* arg);
  void acceptor_main();
  bool serve(Conn* c);  // returns true to close with RST
  void refuse(int fd, Nanos now);
  /// Worker mode at capacity: tells the gate and the supervisor, waits until the process
  /// is below resume_below (or the drain starts), tells them again. False: drain started.
  bool wait_for_room();
  void kick();
  bool start_thread(Conn* c);
  void finish(Conn* c, bool reset);
  /// Removes `c` from the list of live connections. Caller holds mu_.
  void unlink_locked(Conn* c);

  core::ServerConfig config_;
  std::unique_ptr<core::ContentSource> content_;
  std::unique_ptr<core::MemoryBudget> budget_;
  std::unique_ptr<CounterSlots> own_counters_;
  metrics::ThreadCounters* shared_counters_;  // slot 0: add_atomic only
  sys::Fd listener_;                          // owned (bound here)
  int listen_fd_ = -1;                        // listener_ or the supervisor's inherited listener
  WorkerListener worker_;                     // worker mode (listen_fd >= 0: inherited)
  uint16_t port_ = 0;
  size_t stack_size_;

  std::atomic<Nanos> drain_at_{kNever};
  std::atomic<uint64_t> open_{0};
  std::atomic<uint64_t> open_at_drain_{0};  // connections that saw the drain begin
  std::atomic<uint64_t> closed_by_peer_{0};
  std::atomic<uint64_t> force_closed_{0};
  std::atomic<uint64_t> in_flight_{0};
  AcceptErrorLog accept_log_;

  // Registry of live connection threads: touched once at start and once at exit of each
  // thread (not on the I/O path), and by run() to unblock stragglers after the deadline.
  std::mutex mu_;
  std::condition_variable cv_;
  Conn* conns_head_ = nullptr;
  uint64_t threads_alive_ = 0;
  DrainSignal drain_;  // last: destroyed first (it waits for a request in progress)
};

}  // namespace c10m::engine
