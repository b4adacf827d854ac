#pragma once
// The epoll engine: `threads` event loops, each on its own thread with its own epoll fd;
// non-blocking sockets; no thread per connection. Listening: one shared listener
// registered in every loop with EPOLLEXCLUSIVE, or (reuseport) one SO_REUSEPORT listener
// per loop. See epoll_loop.h for the per-loop rules.
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/epoll/epoll_loop.h"
#include "sys/socket.h"

namespace c10m::engine {

class EpollEngine final : public Engine {
 public:
  /// Throws std::runtime_error (bad --fetch-file, no eventfd).
  EpollEngine(const core::ServerConfig& config, CounterSlots* counters);
  ~EpollEngine() override;

  std::string adopt_worker_listener(const WorkerListener& listener) override;
  std::string bind() override;
  uint16_t port() const override { return port_; }
  DrainReport run() override;
  void request_drain() override;
  uint64_t open_connections() const override {
    return shared_.open.load(std::memory_order_relaxed);
  }

 private:
  core::ServerConfig config_;
  int threads_;
  std::unique_ptr<core::ContentSource> content_;
  std::unique_ptr<CounterSlots> own_counters_;  // when the caller gave none
  CounterSlots* counters_;
  std::unique_ptr<core::MemoryBudget> budget_;
  EpollShared shared_;
  std::vector<sys::Fd> listeners_;  // owned (bound here); empty with an inherited listener
  int inherited_fd_ = -1;           // worker mode: the supervisor's listener
  uint16_t port_ = 0;
  DrainSignal drain_;  // last: destroyed first (it waits for a request in progress)
};

}  // namespace c10m::engine
