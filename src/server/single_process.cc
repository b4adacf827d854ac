// One process serving everything: the default (--workers 1), exactly as before workers
// existed.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <thread>

#include "admin/admin_server.h"
#include "admin/profiling.h"
#include "base/log.h"
#include "metrics/shm_counter_region.h"
#include "server/server_options.h"
#include "sys/socket.h"

namespace c10m::server {
namespace {

std::atomic<engine::Engine*> g_engine{nullptr};
std::atomic<admin::AdminServer*> g_admin{nullptr};  // null without a metrics port

// First SIGINT/SIGTERM: graceful drain. Second: exit at once, non-zero.
void signal_thread(sigset_t set) {
  int count = 0;
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (++count == 1) {
      log_info("{}: draining (a second signal exits at once)", strsignal(sig));
      if (auto* a = g_admin.load()) a->set_draining();  // /healthz: 503 "draining"
      if (auto* e = g_engine.load()) e->request_drain();
    } else {
      static const char kMsg[] = "c10m: second signal: exiting now\n";
      ssize_t rc = ::write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
      (void)rc;
      _exit(1);
    }
  }
}

}  // namespace

std::string thousands(uint64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

int run_single(const ServerOptions& o) {
  const core::ServerConfig& cfg = o.config;
  const engine::EngineKind kind = o.kind;
  // Counter blocks the engine writes live in a shared-memory region (metrics/
  // shm_counter_region.h): worker 0 of 1 here; the supervisor (--workers) creates one with
  // a worker per process, and its one /metrics sums them all. The admin server (side HTTP
  // port, its own threads) starts here and is stopped by its destructor after run()
  // returns (the engine, declared below, is destroyed first).
  const bool metrics_on = o.metrics_addr != "off" && !o.metrics_addr.empty();
  std::string region_error;
  std::shared_ptr<metrics::ShmCounterRegion> region = metrics::ShmCounterRegion::create_anonymous(
      "c10m-counters", 1, engine::counter_slots_needed(kind, cfg), &region_error);
  if (!region) {
    fmt::print(stderr, "c10m-server: {}\n", region_error);
    return 1;
  }
  // Aliasing shared_ptr: points at worker 0's slots, keeps the region alive.
  const std::shared_ptr<metrics::CounterSlots> counters(region, region->attach_worker(0));
  std::unique_ptr<admin::AdminServer> admin;
  if (metrics_on) {
    admin = std::make_unique<admin::AdminServer>(admin::AdminConfig{o.metrics_addr}, region.get());
    if (std::string err = admin->start(); !err.empty()) {
      if (o.metrics_addr_given) {
        fmt::print(stderr, "c10m-server: {}\n", err);
        return 1;
      }
      // The default port is taken (another server on this host): run without metrics.
      log_warn("{}; serving without metrics (pass --metrics-addr to insist)", err);
      admin.reset();
    } else {
      std::string host = o.metrics_addr.substr(0, o.metrics_addr.rfind(':'));
      if (host == "localhost") host = "127.0.0.1";
      fmt::print(stderr, "metrics on {}:{}\n", host, admin->port());
    }
  }

  std::unique_ptr<engine::Engine> eng;
  try {
    eng = engine::make_engine(kind, cfg, counters.get());
  } catch (const std::exception& e) {
    fmt::print(stderr, "c10m-server: {}\n", e.what());
    return 2;
  }
  const uint64_t fd_limit = sys::raise_fd_limit();
  if (std::string err = eng->bind(); !err.empty()) {
    fmt::print(stderr, "c10m-server: {}\n", err);
    return 1;
  }
  std::string where = cfg.addr.substr(0, cfg.addr.rfind(':'));
  if (where.empty() || where == "localhost") where = "127.0.0.1";
  where += ":" + std::to_string(eng->port());

  const bool thread = kind == engine::EngineKind::kThread;
  const int loops = engine::resolved_threads(cfg);
  // epoll/thread: each connection takes one fd; the process already holds some, each loop
  // one more. uring: connections are direct descriptors, up to the fd limit per loop.
  const uint64_t room = engine::connection_capacity(kind, cfg, fd_limit, sys::count_open_fds());
  log_info("engine {}{}, address {}, {}, fd limit {}: at most ~{} connections in this process",
           engine::engine_kind_name(kind), o.engine_why.empty() ? "" : " (" + o.engine_why + ")",
           where,
           thread ? fmt::format("one thread per connection ({} KiB stack)", cfg.thread_stack >> 10)
                  : fmt::format("{} event loop(s)", loops),
           fd_limit, thousands(room));

  g_engine.store(eng.get());
  g_admin.store(admin.get());
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  std::thread(signal_thread, s).detach();
  fmt::print(stderr, "listening on {}\n", where);
  std::fflush(stderr);

  const engine::DrainReport r = eng->run();
  fmt::print(stderr, "drain: open={} closed_by_peer={} force_closed={} in_flight={}\n",
             r.open_at_start, r.closed_by_peer, r.force_closed, r.in_flight);
  std::fflush(stderr);
  g_admin.store(nullptr);
  g_engine.store(nullptr);
  return 0;
}

}  // namespace c10m::server
