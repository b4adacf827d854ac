// The one switch that knows every engine.
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>

#include "engine/engine.h"
#include "engine/epoll/epoll_engine.h"
#include "engine/thread/thread_engine.h"
#include "engine/uring/uring_engine.h"

namespace c10m::engine {

bool parse_engine_kind(const std::string& name, EngineKind* out) {
  if (name == "thread") {
    *out = EngineKind::kThread;
    return true;
  }
  if (name == "epoll") {
    *out = EngineKind::kEpoll;
    return true;
  }
  if (name == "uring") {
    *out = EngineKind::kUring;
    return true;
  }
  return false;
}

const char* engine_kind_name(EngineKind kind) {
  switch (kind) {
    case EngineKind::kThread:
      return "thread";
    case EngineKind::kEpoll:
      return "epoll";
    case EngineKind::kUring:
      return "uring";
  }
  return "unknown";
}

std::string engine_unavailable_reason(EngineKind kind) {
  return kind == EngineKind::kUring ? uring_support().error : std::string();
}

EngineKind choose_engine_from(const core::ServerConfig& config, const std::string& uring_error,
                              const std::string& io_uring_disabled,
                              const std::string& kernel_release, std::string* why) {
  // Flags that only the epoll engine serves (the uring engine refuses them at start-up).
  if (config.fetch_send == core::FetchSend::kSendfile) {
    *why = "--fetch-send sendfile needs epoll";
    return EngineKind::kEpoll;
  }
  if (config.fetch_send == core::FetchSend::kZerocopy) {
    *why = "--fetch-send zerocopy needs epoll";
    return EngineKind::kEpoll;
  }
  if (config.ingest_trunc) {
    *why = "--ingest trunc needs epoll";
    return EngineKind::kEpoll;
  }
  // "6.18.44-..." -> "6.18"
  std::string version = kernel_release.substr(0, kernel_release.find_first_not_of("0123456789."));
  if (const auto dot = version.find('.'); dot != std::string::npos)
    version = version.substr(0, version.find('.', dot + 1));
  if (uring_error.empty()) {
    *why = "io_uring available, kernel " + version;
    return EngineKind::kUring;
  }
  if (io_uring_disabled == "1" || io_uring_disabled == "2") {
    *why = "io_uring disabled by kernel.io_uring_disabled=" + io_uring_disabled;
  } else {
    *why = "io_uring unavailable, kernel " + version + ": " + uring_error;
  }
  return EngineKind::kEpoll;
}

EngineKind choose_engine(const core::ServerConfig& config, std::string* why) {
  std::string disabled;
  std::ifstream("/proc/sys/kernel/io_uring_disabled") >> disabled;
  utsname u{};
  ::uname(&u);
  return choose_engine_from(config, uring_support().error, disabled, u.release, why);
}

std::vector<EngineKind> available_engines() {
  std::vector<EngineKind> out = {EngineKind::kThread, EngineKind::kEpoll};
  if (uring_support().error.empty()) out.push_back(EngineKind::kUring);
  return out;
}

int resolved_threads(const core::ServerConfig& config) {
  if (config.threads > 0) return config.threads;
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

size_t counter_slots_needed(EngineKind kind, const core::ServerConfig& config) {
  switch (kind) {
    case EngineKind::kThread:
      return ThreadEngine::kCounterSlots;
    case EngineKind::kEpoll:
    case EngineKind::kUring:
      return static_cast<size_t>(resolved_threads(config));
  }
  return 1;
}

uint64_t connection_capacity(EngineKind kind, const core::ServerConfig& config, uint64_t fd_limit,
                             uint64_t fds_in_use) {
  if (kind == EngineKind::kUring)
    return static_cast<uint64_t>(resolved_threads(config)) * UringEngine::table_size({}, fd_limit);
  const uint64_t used =
      fds_in_use +
      (kind == EngineKind::kEpoll ? static_cast<uint64_t>(resolved_threads(config)) : 2);
  return fd_limit > used ? fd_limit - used : 0;
}

std::unique_ptr<Engine> make_engine(EngineKind kind, const core::ServerConfig& config,
                                    CounterSlots* counters) {
  switch (kind) {
    case EngineKind::kThread:
      return std::make_unique<ThreadEngine>(config, counters);
    case EngineKind::kEpoll:
      return std::make_unique<EpollEngine>(config, counters);
    case EngineKind::kUring:
      return std::make_unique<UringEngine>(config, counters);
  }
  return nullptr;
}

}  // namespace c10m::engine
