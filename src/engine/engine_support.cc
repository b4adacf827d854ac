#include "engine/engine_support.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>

#include "base/log.h"
#include "engine/engine.h"

namespace c10m::engine {

DrainSignal::DrainSignal() {
  fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd_.valid()) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
}

DrainSignal::~DrainSignal() {
  if (requested_.load())
    while (!written_.load(std::memory_order_acquire)) std::this_thread::yield();
}

void DrainSignal::request(std::atomic<Nanos>* at) {
  if (requested_.exchange(true)) return;
  if (at != nullptr) at->store(mono_now(), std::memory_order_relaxed);
  const uint64_t one = 1;
  ssize_t rc = ::write(fd_.get(), &one, sizeof one);
  (void)rc;
  written_.store(true, std::memory_order_release);
}

sys::SocketOptions socket_options(const core::ServerConfig& config) {
  sys::SocketOptions so;
  so.nodelay = config.nodelay;
  so.rcvbuf = config.rcvbuf;
  so.sndbuf = config.sndbuf;
  so.notsent_lowat = config.notsent_lowat;
  return so;
}

std::string bind_listeners(const core::ServerConfig& config, size_t count, bool nonblocking,
                           std::vector<sys::Fd>* out, uint16_t* port) {
  auto addr = sys::parse_ipv4_endpoint(config.addr);
  if (!addr) return "--addr " + config.addr + ": expected host:port with an IPv4 host";
  sys::ListenOptions opts;
  opts.reuseport = config.reuseport;
  opts.nonblocking = nonblocking;
  out->clear();
  for (size_t i = 0; i < count; ++i) {
    const int fd = sys::listen_tcp(*addr, opts);
    if (fd < 0) {
      out->clear();
      if (fd == -EADDRINUSE)
        return "address " + config.addr +
               " is in use (another server running? pick another --addr)";
      return "cannot listen on " + config.addr + ": " + std::strerror(-fd);
    }
    out->emplace_back(fd);
    if (i == 0) {
      // With port 0 the first bind picks the port; the other SO_REUSEPORT listeners join it.
      auto local = sys::local_endpoint(fd);
      if (!local) return "getsockname failed on " + config.addr;
      addr->sin_port = local->sin_port;
      *port = ntohs(local->sin_port);
    }
  }
  return "";
}

int adopt_worker_share(const WorkerListener& listener, WorkerShare* share,
                       core::ServerConfig* config, uint16_t* port) {
  if (listener.listen_fd >= 0) {
    share->shared_listener = true;
    share->kick_fd = listener.kick_fd;
    share->pause_at = listener.capacity;
    share->resume_below = listener.resume_below;
    share->gate = listener.gate;
    if (auto local = sys::local_endpoint(listener.listen_fd)) *port = ntohs(local->sin_port);
    return listener.listen_fd;
  }
  if (listener.capacity != 0) {
    // Own SO_REUSEPORT listeners: the kernel keeps hashing connections here, so a full
    // worker refuses rather than leave them in its backlog.
    if (config->max_conns == 0 || config->max_conns > listener.capacity)
      config->max_conns = listener.capacity;
  }
  return -1;
}

std::unique_ptr<core::ContentSource> make_content(const core::ServerConfig& config) {
  if (config.fetch_file.empty()) return core::make_pattern_source();
  return core::make_file_source(config.fetch_file);
}

bool is_resource_error(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

metrics::AcceptError accept_error_kind(int err) {
  switch (err) {
    case EMFILE:
      return metrics::AcceptError::kEmfile;
    case ENFILE:
      return metrics::AcceptError::kEnfile;
    case ENOBUFS:
    case ENOMEM:
      return metrics::AcceptError::kNomem;
    default:
      return metrics::AcceptError::kOther;
  }
}

AcceptPacer::AcceptPacer(double per_second, Nanos now)
    : rate_(per_second > 0 ? per_second / static_cast<double>(kSecond) : 0),
      burst_(std::max(1.0, per_second / 10)),
      tokens_(burst_),
      last_(now) {}

bool AcceptPacer::take(Nanos now) {
  if (rate_ == 0) return true;
  tokens_ = std::min(burst_, tokens_ + static_cast<double>(now - last_) * rate_);
  last_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

Nanos AcceptPacer::ready_at() const {
  if (rate_ == 0 || tokens_ >= 1) return last_;
  return last_ + static_cast<Nanos>((1 - tokens_) / rate_) + 1;
}

void AcceptErrorLog::record(int err, Nanos now) {
  since_log_.fetch_add(1, std::memory_order_relaxed);
  Nanos last = last_log_.load(std::memory_order_relaxed);
  if (now - last < kInterval) return;
  if (!last_log_.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
  const uint64_t n = since_log_.exchange(0, std::memory_order_relaxed);
  const char* what = err == EMFILE   ? "the process fd limit is reached (EMFILE)"
                     : err == ENFILE ? "the system fd limit is reached (ENFILE)"
                                     : "the kernel is out of memory for sockets";
  log_warn(
      "accept: {}: {} failed accept(s) since the last report; pausing accept {} ms at a "
      "time and serving the open connections (next report in >= {} s)",
      what, n, kBackoff / kMillisecond, kInterval / kSecond);
}

void merge_counters(metrics::ThreadCounters* from, metrics::ThreadCounters* to) {
  static_assert(std::is_standard_layout_v<metrics::ThreadCounters>);
  constexpr size_t kCount =
      (offsetof(metrics::ThreadCounters, service_buckets) + sizeof(from->service_buckets)) /
      sizeof(metrics::Counter);
  auto* src = reinterpret_cast<metrics::Counter*>(from);
  auto* dst = reinterpret_cast<metrics::Counter*>(to);
  for (size_t i = 0; i < kCount; ++i) {
    const uint64_t v = src[i].load();
    if (v != 0) {
      dst[i].add_atomic(v);
      src[i].set(0);
    }
  }
}

std::unique_ptr<CounterSlots> make_heap_counter_slots(size_t count) {
  return std::make_unique<PrivateCounterSlots>(count);
}

}  // namespace c10m::engine
