// c10m-server: main() and flags only. Everything else lives in the libraries.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <thread>

#include "admin/admin_server.h"
#include "admin/profiling.h"
#include "base/build_info.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/units.h"
#include "core/server_config.h"
#include "engine/engine.h"
#include "metrics/shm_counter_region.h"
#include "sys/socket.h"

namespace {

using c10m::Nanos;

std::atomic<c10m::engine::Engine*> g_engine{nullptr};
std::atomic<c10m::admin::AdminServer*> g_admin{nullptr};  // null without a metrics port

// A flag value that failed to parse: reported as one line, exit code 2.
struct BadFlag {
  std::string message;
};

Nanos duration_flag(const char* flag, const std::string& text) {
  auto d = c10m::parse_duration(text);
  if (!d)
    throw BadFlag{fmt::format("{}: '{}' is not a duration (Go style: 500ms, 10s, 5m; 0 = never)",
                              flag, text)};
  return *d;
}

uint64_t size_flag(const char* flag, const std::string& text, uint64_t min, uint64_t max) {
  auto s = c10m::parse_size(text);
  if (!s)
    throw BadFlag{fmt::format("{}: '{}' is not a size (bytes, or with KiB/MiB/GiB)", flag, text)};
  if (*s < min || *s > max)
    throw BadFlag{fmt::format("{}: {} is out of range ({}..{})", flag, text, min, max)};
  return *s;
}

std::string thousands(uint64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

// First SIGINT/SIGTERM: graceful drain. Second: exit at once, non-zero.
void signal_thread(sigset_t set) {
  int count = 0;
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (++count == 1) {
      c10m::log_info("{}: draining (a second signal exits at once)", strsignal(sig));
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

int main(int argc, char** argv) {
  // Block the signals in every thread (threads inherit the mask); one thread sigwaits.
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &blocked, nullptr);

  c10m::core::ServerConfig cfg;
  std::string engine_name = "epoll";
  std::string idle = "300s", frame = "10s", write_to = "10s", drain = "30s";
  std::string write_queue = "256KiB", rcvbuf = "0", sndbuf = "0", readbuf = "64KiB",
              thread_stack = "64KiB";
  uint32_t max_frame = 65535;

  CLI::App app{"c10m-server: framed TCP server (see docs/PROTOCOL.md)", "c10m-server"};
  app.set_version_flag("--version",
                       fmt::format("c10m-server {} (commit {}, {})", c10m::version_string(),
                                   c10m::git_commit(), c10m::compiler_string()));
  app.option_defaults()->always_capture_default();
  app.add_option("--addr", cfg.addr, "listen address host:port (port 0: any free port)");
  app.add_option("--engine", engine_name,
                 "I/O engine: epoll (event loops) or thread (one thread per connection)")
      ->check(CLI::IsMember({"epoll", "thread"}));
  app.add_option("--threads", cfg.threads, "epoll event loops; 0 = one per core")
      ->check(CLI::Range(0, 1024));
  app.add_flag("--reuseport", cfg.reuseport,
               "epoll: one SO_REUSEPORT listener per loop instead of one shared");
  app.add_flag("--nodelay", cfg.nodelay,
               "TCP_NODELAY on accepted sockets, default true (--nodelay=false turns it off)");
  app.add_option("--rcvbuf", rcvbuf, "SO_RCVBUF per connection (0 = kernel default, autotuned)");
  app.add_option("--sndbuf", sndbuf, "SO_SNDBUF per connection (0 = kernel default, autotuned)");
  app.add_option("--readbuf", readbuf, "bytes per read() (epoll: the per-loop scratch buffer)");
  app.add_option("--pool", cfg.pool,
                 "recycle per-thread buffers: true or false (false: malloc/free each time)");
  app.add_option("--thread-stack", thread_stack,
                 "thread engine: stack size of each connection thread");
  app.add_option("--fetch-file", cfg.fetch_file,
                 "FETCH content from this file (default: byte i = i mod 251)");
  std::string fetch_send = c10m::core::fetch_send_name(cfg.fetch_send), ingest = "read",
              fetch_ref_min = "16KiB";
  app.add_option("--fetch-send", fetch_send,
                 "how FETCH bodies reach the socket: copy (into buffers, then writev), writev "
                 "(straight from the content, no user-space copy), sendfile (--fetch-file "
                 "bodies by sendfile(2)), zerocopy (writev with MSG_ZEROCOPY, epoll engine)")
      ->check(CLI::IsMember({"copy", "writev", "sendfile", "zerocopy"}));
  app.add_option("--fetch-ref-min", fetch_ref_min,
                 "FETCHes with smaller chunks are copied whatever --fetch-send says (two iovecs "
                 "or syscalls per small frame cost more than the copy)");
  app.add_option("--ingest", ingest,
                 "SINK/CHUNK payloads: read (into the read buffer and dropped) or trunc (large "
                 "ones dropped in the kernel by recv(MSG_TRUNC), no copy)")
      ->check(CLI::IsMember({"read", "trunc"}));
  app.add_option("--max-frame", max_frame, "largest accepted request payload, 0..65535")
      ->check(CLI::Range(0, 65535));
  app.add_option("--idle-timeout", idle,
                 "close a connection idle this long with ERROR TIMEOUT (0 = never)");
  app.add_option("--frame-timeout", frame,
                 "close a connection whose started frame is not complete after this (0 = never)");
  app.add_option("--write-queue", write_queue,
                 "reply bytes queued per connection before it stops being read (0 = unbounded)");
  app.add_option("--write-timeout", write_to,
                 "drop a connection whose output waited this long (0 = never)");
  app.add_option("--max-conns", cfg.max_conns,
                 "connections beyond this get ERROR OVERLOADED (0 = no limit)");
  app.add_option("--drain-timeout", drain,
                 "on SIGTERM/SIGINT: how long to wait for peers to close (0 = forever)");
  std::string metrics_addr = c10m::admin::kDefaultMetricsAddr;  // ADMIN-HOOK flag
  CLI::Option* metrics_opt = app.add_option(
      "--metrics-addr", metrics_addr,
      "side HTTP port for /metrics, /healthz, /debug/pprof/* (host:port, port 0 = any; "
      "'off' = none). Loopback by default: profiles expose internals");

  c10m::engine::EngineKind kind = c10m::engine::EngineKind::kEpoll;
  try {
    app.parse(argc, argv);
    cfg.limits.max_frame = max_frame;
    cfg.limits.idle_timeout = duration_flag("--idle-timeout", idle);
    cfg.limits.frame_timeout = duration_flag("--frame-timeout", frame);
    cfg.limits.write_timeout = duration_flag("--write-timeout", write_to);
    cfg.drain_timeout = duration_flag("--drain-timeout", drain);
    cfg.limits.write_queue = size_flag("--write-queue", write_queue, 0, uint64_t{1} << 40);
    cfg.rcvbuf = static_cast<int>(size_flag("--rcvbuf", rcvbuf, 0, 1 << 30));
    cfg.sndbuf = static_cast<int>(size_flag("--sndbuf", sndbuf, 0, 1 << 30));
    cfg.readbuf = size_flag("--readbuf", readbuf, 1, 64 << 20);
    cfg.thread_stack = size_flag("--thread-stack", thread_stack, 16 << 10, 1 << 30);
    if (!c10m::sys::parse_ipv4_endpoint(cfg.addr))
      throw BadFlag{fmt::format("--addr: '{}' is not host:port with an IPv4 host", cfg.addr)};
    c10m::engine::parse_engine_kind(engine_name, &kind);
    c10m::core::parse_fetch_send(fetch_send, &cfg.fetch_send);
    cfg.ingest_trunc = ingest == "trunc";
    cfg.fetch_ref_min = size_flag("--fetch-ref-min", fetch_ref_min, 0, 65536);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "c10m-server: {} (see --help)\n", e.what());
    return 2;
  } catch (const BadFlag& e) {
    fmt::print(stderr, "c10m-server: {} (see --help)\n", e.message);
    return 2;
  }

  // ADMIN-HOOK BEGIN
  // Counter blocks the engine writes live in a shared-memory region (metrics/
  // shm_counter_region.h): worker 0 of 1 today; a multi-process supervisor creates it with
  // one worker per process before forking, and this one /metrics sums them all. The admin
  // server (side HTTP port, its own threads) starts here and is stopped by its destructor
  // after run() returns (the engine, declared below, is destroyed first).
  const bool metrics_on = metrics_addr != "off" && !metrics_addr.empty();
  const bool metrics_addr_given = metrics_opt->count() > 0;
  if (metrics_on) c10m::admin::ensure_heap_sampling(argv);  // may re-exec: no fd, no thread yet
  std::string region_error;
  std::shared_ptr<c10m::metrics::ShmCounterRegion> region =
      c10m::metrics::ShmCounterRegion::create_anonymous(
          "c10m-counters", 1, c10m::engine::counter_slots_needed(kind, cfg), &region_error);
  if (!region) {
    fmt::print(stderr, "c10m-server: {}\n", region_error);
    return 1;
  }
  // Aliasing shared_ptr: points at worker 0's slots, keeps the region alive.
  const std::shared_ptr<c10m::metrics::CounterSlots> counters(region, region->attach_worker(0));
  std::unique_ptr<c10m::admin::AdminServer> admin;
  if (metrics_on) {
    admin = std::make_unique<c10m::admin::AdminServer>(c10m::admin::AdminConfig{metrics_addr},
                                                       region.get());
    if (std::string err = admin->start(); !err.empty()) {
      if (metrics_addr_given) {
        fmt::print(stderr, "c10m-server: {}\n", err);
        return 1;
      }
      // The default port is taken (another server on this host): run without metrics.
      c10m::log_warn("{}; serving without metrics (pass --metrics-addr to insist)", err);
      admin.reset();
    } else {
      std::string host = metrics_addr.substr(0, metrics_addr.rfind(':'));
      if (host == "localhost") host = "127.0.0.1";
      fmt::print(stderr, "metrics on {}:{}\n", host, admin->port());
    }
  }
  // ADMIN-HOOK END

  std::unique_ptr<c10m::engine::Engine> engine;
  try {
    engine = c10m::engine::make_engine(kind, cfg, counters.get());
  } catch (const std::exception& e) {
    fmt::print(stderr, "c10m-server: {}\n", e.what());
    return 2;
  }
  const uint64_t fd_limit = c10m::sys::raise_fd_limit();
  if (std::string err = engine->bind(); !err.empty()) {
    fmt::print(stderr, "c10m-server: {}\n", err);
    return 1;
  }
  std::string where = cfg.addr.substr(0, cfg.addr.rfind(':'));
  if (where.empty() || where == "localhost") where = "127.0.0.1";
  where += ":" + std::to_string(engine->port());

  const bool epoll = kind == c10m::engine::EngineKind::kEpoll;
  const int loops = c10m::engine::resolved_threads(cfg);
  // Each connection takes one fd; the process already holds some, each loop one more.
  const uint64_t used = c10m::sys::count_open_fds() + (epoll ? static_cast<uint64_t>(loops) : 2);
  const uint64_t room = fd_limit > used ? fd_limit - used : 0;
  c10m::log_info(
      "engine {}, address {}, {}, fd limit {}: at most ~{} connections in this process",
      c10m::engine::engine_kind_name(kind), where,
      epoll ? fmt::format("{} event loop(s)", loops)
            : fmt::format("one thread per connection ({} KiB stack)", cfg.thread_stack >> 10),
      fd_limit, thousands(room));

  g_engine.store(engine.get());
  g_admin.store(admin.get());
  std::thread(signal_thread,
              [] {
                sigset_t s;
                sigemptyset(&s);
                sigaddset(&s, SIGINT);
                sigaddset(&s, SIGTERM);
                return s;
              }())
      .detach();
  fmt::print(stderr, "listening on {}\n", where);
  std::fflush(stderr);

  const c10m::engine::DrainReport r = engine->run();
  fmt::print(stderr, "drain: open={} closed_by_peer={} force_closed={} in_flight={}\n",
             r.open_at_start, r.closed_by_peer, r.force_closed, r.in_flight);
  std::fflush(stderr);
  g_admin.store(nullptr);
  g_engine.store(nullptr);
  return 0;
}
