// The one switch that knows every engine.
#include <unistd.h>

#include "engine/engine.h"
#include "engine/epoll/epoll_engine.h"
#include "engine/thread/thread_engine.h"

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
  return false;
}

const char* engine_kind_name(EngineKind kind) {
  switch (kind) {
    case EngineKind::kThread:
      return "thread";
    case EngineKind::kEpoll:
      return "epoll";
  }
  return "unknown";
}

std::vector<EngineKind> available_engines() { return {EngineKind::kThread, EngineKind::kEpoll}; }

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
      return static_cast<size_t>(resolved_threads(config));
  }
  return 1;
}

std::unique_ptr<Engine> make_engine(EngineKind kind, const core::ServerConfig& config,
                                    CounterSlots* counters) {
  switch (kind) {
    case EngineKind::kThread:
      return std::make_unique<ThreadEngine>(config, counters);
    case EngineKind::kEpoll:
      return std::make_unique<EpollEngine>(config, counters);
  }
  return nullptr;
}

}  // namespace c10m::engine
