#include "engine/uring/uring_engine.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "base/log.h"

namespace c10m::engine {
namespace {

constexpr uint64_t kMaxFixedFiles = 1u << 20;  // IORING_MAX_FIXED_FILES
constexpr uint32_t kIncrementalRingBytes = 4u << 20;
constexpr uint32_t kWholeRingBytes = 16u << 20;

/// The listen backlog the kernel grants (listen(65535) is clamped to somaxconn): how many
/// connections one multishot accept may take at once.
uint32_t listen_backlog() {
  std::ifstream in("/proc/sys/net/core/somaxconn");
  uint64_t v = 0;
  in >> v;
  if (v == 0) v = 4096;
  return static_cast<uint32_t>(std::min<uint64_t>(v, 65535));
}

}  // namespace

UringEngine::UringEngine(const core::ServerConfig& config, CounterSlots* counters,
                         const UringOptions& options)
    : config_(config),
      options_(options),
      threads_(resolved_threads(config)),
      content_(make_content(config)) {
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
  shared_.accept_rate_per_loop = config_.accept_rate / threads_;
}

// drain_ (the last member) waits for a request_drain() still in progress.
UringEngine::~UringEngine() = default;

uint64_t UringEngine::table_size(const UringOptions& options, uint64_t fd_limit) {
  if (options.fixed_files != 0) return options.fixed_files;
  return std::clamp<uint64_t>(fd_limit, 1, kMaxFixedFiles);
}

std::string UringEngine::adopt_worker_listener(const WorkerListener& listener) {
  inherited_fd_ = adopt_worker_share(listener, &shared_.worker, &config_, &port_);
  return "";
}

std::string UringEngine::bind() {
  const UringSupport& support = uring_support();
  if (!support.error.empty())
    return "--engine uring: " + support.error + " (use --engine epoll on this machine)";
  std::vector<int> fds;
  if (inherited_fd_ >= 0) {
    fds.push_back(inherited_fd_);
  } else {
    const size_t count = config_.reuseport ? static_cast<size_t>(threads_) : 1;
    std::string err = bind_listeners(config_, count, /*nonblocking=*/true, &listeners_, &port_);
    if (!err.empty()) return err;
    for (const auto& l : listeners_) fds.push_back(l.get());
  }
  // Direct descriptors cannot take setsockopt(2); accepted sockets inherit these from the
  // listener instead (TCP_NODELAY, SO_RCVBUF, SO_SNDBUF, TCP_NOTSENT_LOWAT). On an inherited
  // listener every worker sets the same values.
  const sys::SocketOptions so = socket_options(config_);
  for (int fd : fds) {
    if (int rc = sys::apply_socket_options(fd, so); rc < 0)
      return std::string("socket options on the listener: ") + std::strerror(-rc);
  }
  bound_ = true;
  return "";
}

DrainReport UringEngine::run() {
  if (!bound_) {
    if (std::string err = bind(); !err.empty()) {
      log_warn("{}", err);
      return {};
    }
  }
  counters_->slot(0)->memory_budget_limit.set(config_.memory_limit);
  const UringSupport& support = uring_support();
  const uint32_t fixed = static_cast<uint32_t>(table_size(options_, sys::raise_fd_limit()));
  const bool incremental = options_.incremental && support.incremental;
  uint32_t size = options_.buffer_size;
  if (size == 0)
    size = static_cast<uint32_t>(
        std::min<size_t>(config_.readbuf, incremental ? 64u << 10 : 16u << 10));
  uint32_t count = options_.buffers;
  if (count == 0)
    count = std::clamp<uint32_t>((incremental ? kIncrementalRingBytes : kWholeRingBytes) / size, 64,
                                 UringBufferRing::kMaxCount);
  const uint32_t headroom = listen_backlog() + 512;
  const size_t zc_min = options_.zerocopy_min != 0 ? options_.zerocopy_min : config_.zerocopy_min;
  if (zc_min != 0 && !support.send_zc)
    log_warn("--zerocopy-min: this kernel has no IORING_OP_SEND_ZC; sending with copies");
  const size_t zc = support.send_zc ? zc_min : 0;

  struct Parts {
    std::unique_ptr<UringBufferRing> bufs;
    std::unique_ptr<UringRing> ring;
    std::unique_ptr<UringLoop> loop;
    DrainReport report;
  };
  std::vector<Parts> parts(static_cast<size_t>(threads_));
  for (int i = 0; i < threads_; ++i) {
    Parts& p = parts[static_cast<size_t>(i)];
    p.bufs = std::make_unique<UringBufferRing>(count, size, incremental);
    std::string err = p.bufs->error();
    if (err.empty()) {
      p.ring = std::make_unique<UringRing>();
      err = p.ring->init(options_, fixed, p.bufs.get());
    }
    if (!err.empty()) {
      log_warn("io_uring loop {}: {}", i, err);
      return {};
    }
    const int lfd = inherited_fd_ >= 0
                        ? inherited_fd_
                        : listeners_[config_.reuseport ? static_cast<size_t>(i) : 0].get();
    p.loop = std::make_unique<UringLoop>(&shared_, p.ring.get(), p.bufs.get(), lfd, fixed, headroom,
                                         zc, counters_->slot(static_cast<size_t>(i)));
    p.ring->set_stats(p.loop->mutable_stats());
  }
  log_info(
      "io_uring: {} direct descriptors per loop; receive buffer ring {} x {} B ({}); "
      "zero-copy sends {}",
      fixed, parts[0].bufs->count(), size,
      incremental ? "incremental consumption" : "one buffer per receive",
      zc != 0 ? fmt::format("from {} B", zc) : std::string("off"));

  auto serve = [this](Parts& p, int index) {
    if (std::string err = p.ring->enable(); !err.empty()) {
      log_warn("io_uring loop {}: {}", index, err);
      request_drain();
      return;
    }
    p.report = p.loop->run();
    p.ring->disable();
  };
  std::vector<std::thread> threads;
  for (int i = 1; i < threads_; ++i)
    threads.emplace_back([&, i] { serve(parts[static_cast<size_t>(i)], i); });
  serve(parts[0], 0);
  for (auto& t : threads) t.join();

  DrainReport total;
  for (auto& p : parts) {
    total.closed_by_peer += p.report.closed_by_peer;
    total.force_closed += p.report.force_closed;
    total.in_flight += p.report.in_flight;
    total.open_at_start += p.report.open_at_start;
    stats_.add(p.loop->stats());
  }
  // The engine's own count of its kernel entries (one io_uring_enter each; the experiments
  // compare it with perf's count).
  log_info(
      "io_uring: {} ring entries ({} early: full SQ), {} completions, {} submissions; "
      "receives armed {} (re-armed {}, -ENOBUFS {}, cancelled {}), short sends {}, "
      "zero-copy sends {}, CQ overflows {}",
      stats_.enters + stats_.early_submits, stats_.early_submits, stats_.cqes, stats_.sqes,
      stats_.recv_arms, stats_.recv_rearms, stats_.enobufs, stats_.recv_cancels, stats_.short_sends,
      stats_.zc_sends, stats_.cq_overflows);
  // Loops first (their connections), then rings (cancel and close what is left), then
  // buffers the rings pointed at.
  for (auto& p : parts) p.loop.reset();
  for (auto& p : parts) p.ring.reset();
  parts.clear();
  listeners_.clear();
  bound_ = false;
  return total;
}

void UringEngine::request_drain() {
  drain_.request(&shared_.drain_at);  // async-signal-safe
}

}  // namespace c10m::engine
