#pragma once
// The io_uring engine: `threads` loops, each on its own thread with its own ring
// (SINGLE_ISSUER + DEFER_TASKRUN), provided-buffer ring and direct-descriptor table.
// Connections are direct descriptors (accepted straight into the ring's fixed file table,
// never in the process fd table); socket options are set on the listener and inherited.
// Listening: one shared listener with a multishot accept per loop (the kernel wakes one
// accept per connection), or (reuseport) one SO_REUSEPORT listener per loop. See
// uring_loop.h for the per-loop rules and uring_ring.h for the kernel features relied on.
//
// Worker process (adopt_worker_listener, engine.h WorkerListener): with the supervisor's
// inherited listener every loop accepts from it (never shutting it down or closing it;
// TCP_NODELAY and the buffer sizes are set on it, as the accepted direct descriptors
// inherit them), pauses at `capacity` by cancelling its accepts, and re-issues them on each
// kick (uring_loop.h says why an armed accept needs that). The capacity the worker is given
// is --threads x the direct-descriptor table (connection_capacity()), not a share of the fd
// table: connections are not process fds.
//
// If io_uring is unavailable (kernel.io_uring_disabled, seccomp, an old kernel) bind()
// fails with a message saying why; the engine never falls back to another one.
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/uring/uring_loop.h"
#include "engine/uring/uring_ring.h"
#include "sys/socket.h"

namespace c10m::engine {

class UringEngine final : public Engine {
 public:
  /// Throws std::runtime_error (bad --fetch-file, no eventfd).
  UringEngine(const core::ServerConfig& config, CounterSlots* counters,
              const UringOptions& options = {});
  ~UringEngine() override;

  std::string adopt_worker_listener(const WorkerListener& listener) override;
  std::string bind() override;
  uint16_t port() const override { return port_; }
  DrainReport run() override;
  void request_drain() override;
  uint64_t open_connections() const override {
    return shared_.open.load(std::memory_order_relaxed);
  }

  /// Direct descriptors per loop for this config and fd limit (each ring's table may hold
  /// up to RLIMIT_NOFILE entries, so a process holds threads x that many connections).
  static uint64_t table_size(const UringOptions& options, uint64_t fd_limit);
  /// The tallies of every loop, summed when run() returned.
  const UringStats& stats() const { return stats_; }

 private:
  core::ServerConfig config_;
  UringOptions options_;
  int threads_;
  std::unique_ptr<core::ContentSource> content_;
  std::unique_ptr<CounterSlots> own_counters_;  // when the caller gave none
  CounterSlots* counters_;
  std::unique_ptr<core::MemoryBudget> budget_;
  UringShared shared_;
  std::vector<sys::Fd> listeners_;
  int inherited_fd_ = -1;  // worker mode: the supervisor's listener (never closed here)
  bool bound_ = false;     // bind() succeeded
  uint16_t port_ = 0;
  UringStats stats_;
  DrainSignal drain_;  // last: destroyed first (it waits for a request in progress)
};

}  // namespace c10m::engine
