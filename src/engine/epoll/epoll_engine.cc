#include "engine/epoll/epoll_engine.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "base/log.h"

namespace c10m::engine {

EpollEngine::EpollEngine(const core::ServerConfig& config, CounterSlots* counters)
    : config_(config), threads_(resolved_threads(config)), content_(make_content(config)) {
  if (counters == nullptr || counters->capacity() < static_cast<size_t>(threads_)) {
    own_counters_ = std::make_unique<PrivateCounterSlots>(static_cast<size_t>(threads_));
    counters = own_counters_.get();
  }
  counters_ = counters;
  shared_.config = &config_;
  shared_.content = content_.get();
  shared_.drain_fd = drain_.fd();
  budget_ = std::make_unique<core::MemoryBudget>(config_.memory_limit, config_.overload_levels);
  shared_.budget = budget_.get();
}

// drain_ (the last member) waits for a request_drain() still in progress.
EpollEngine::~EpollEngine() = default;

std::string EpollEngine::adopt_worker_listener(const WorkerListener& listener) {
  inherited_fd_ = adopt_worker_share(listener, &shared_.worker, &config_, &port_);
  return "";
}

std::string EpollEngine::bind() {
  if (inherited_fd_ >= 0) return "";
  const size_t count = config_.reuseport ? static_cast<size_t>(threads_) : 1;
  return bind_listeners(config_, count, /*nonblocking=*/true, &listeners_, &port_);
}

DrainReport EpollEngine::run() {
  if (listeners_.empty() && inherited_fd_ < 0) {
    if (std::string err = bind(); !err.empty()) {
      log_warn("{}", err);
      return {};
    }
  }
  counters_->slot(0)->memory_budget_limit.set(config_.memory_limit);
  const bool per_loop = inherited_fd_ < 0 && config_.reuseport;
  shared_.accept_rate_per_loop = config_.accept_rate / threads_;
  std::vector<std::unique_ptr<EpollLoop>> loops;
  for (int i = 0; i < threads_; ++i) {
    const int lfd = inherited_fd_ >= 0 ? inherited_fd_
                                       : listeners_[per_loop ? static_cast<size_t>(i) : 0].get();
    loops.push_back(std::make_unique<EpollLoop>(&shared_, lfd, !per_loop,
                                                counters_->slot(static_cast<size_t>(i))));
    if (std::string err = loops.back()->init(); !err.empty()) {
      log_warn("{}", err);
      return {};
    }
  }
  std::vector<DrainReport> reports(loops.size());
  std::vector<std::thread> threads;
  for (size_t i = 1; i < loops.size(); ++i)
    threads.emplace_back([&, i] { reports[i] = loops[i]->run(); });
  reports[0] = loops[0]->run();
  for (auto& t : threads) t.join();
  loops.clear();
  listeners_.clear();
  DrainReport total;
  for (const auto& r : reports) {
    total.closed_by_peer += r.closed_by_peer;
    total.force_closed += r.force_closed;
    total.in_flight += r.in_flight;
    total.open_at_start += r.open_at_start;
  }
  return total;
}

void EpollEngine::request_drain() {
  drain_.request(&shared_.drain_at);  // async-signal-safe
}

}  // namespace c10m::engine
