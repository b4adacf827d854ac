// c10m-server: main() and flags only. Everything else lives in the libraries.
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "admin/admin_server.h"
#include "admin/profiling.h"
#include "base/build_info.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/process_name.h"
#include "base/units.h"
#include "core/memory_budget.h"
#include "core/server_config.h"
#include "engine/engine.h"
#include "server/server_options.h"
#include "server/supervisor.h"
#include "sys/socket.h"

namespace {

using c10m::Nanos;

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

}  // namespace

int main(int argc, char** argv) {
  c10m::name_process(argv[0]);  // workers start as /proc/self/exe
  // Block the signals in every thread (threads inherit the mask); one thread sigwaits.
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &blocked, nullptr);

  c10m::core::ServerConfig cfg;
  std::string engine_name = "auto";
  std::string idle = "300s", frame = "10s", write_to = "10s", drain = "30s";
  std::string write_queue = "256KiB", rcvbuf = "0", sndbuf = "0", notsent_lowat = "0",
              rcvlowat = "16KiB",
              readbuf = "64KiB", thread_stack = "64KiB", zerocopy_min = "0";
  uint32_t max_frame = 65535;

  CLI::App app{"c10m-server: framed TCP server (see docs/PROTOCOL.md)", "c10m-server"};
  app.set_version_flag("--version",
                       fmt::format("c10m-server {} (commit {}, {})", c10m::version_string(),
                                   c10m::git_commit(), c10m::compiler_string()));
  app.option_defaults()->always_capture_default();
  app.add_option("--addr", cfg.addr, "listen address host:port (port 0: any free port)");
  app.add_option("--engine", engine_name,
                 "I/O engine: auto (uring where the kernel allows it, else epoll; the start-up "
                 "line says which and why), epoll (event loops), uring (io_uring loops, Linux "
                 "6.7+) or thread (one thread per connection)")
      ->check(CLI::IsMember({"auto", "epoll", "uring", "thread"}));
  app.add_option("--threads", cfg.threads, "epoll/uring event loops; 0 = one per core")
      ->check(CLI::Range(0, 1024));
  app.add_flag("--reuseport", cfg.reuseport,
               "epoll/uring: one SO_REUSEPORT listener per loop instead of one shared");
  app.add_flag("--nodelay", cfg.nodelay,
               "TCP_NODELAY on accepted sockets, default true (--nodelay=false turns it off)");
  app.add_option("--rcvbuf", rcvbuf, "SO_RCVBUF per connection (0 = kernel default, autotuned)");
  app.add_option("--sndbuf", sndbuf, "SO_SNDBUF per connection (0 = kernel default, autotuned)");
  app.add_option("--notsent-lowat", notsent_lowat,
                 "TCP_NOTSENT_LOWAT per connection: unsent bytes the kernel may queue for a "
                 "peer (0 = net.ipv4.tcp_notsent_lowat, unlimited by default). Bounds the kernel "
                 "memory a slow reader pins without capping the window of a fast one");
  app.add_option("--rcvlowat", rcvlowat,
                 "while a connection holds part of a frame, wake for it only once "
                 "what the frame misses, or this much of it, has arrived (SO_RCVLOWAT; 0 = wake "
                 "per segment). A peer trickling a frame costs a wakeup per this many bytes, "
                 "not per segment; the frame timeout still applies");
  app.add_option("--readbuf", readbuf,
                 "bytes per read() (epoll: the per-loop scratch buffer; uring: the size of "
                 "each provided receive buffer, at most 64KiB)");
  app.add_option("--pool", cfg.pool,
                 "recycle per-thread buffers: true or false (false: malloc/free each time)");
  app.add_option("--thread-stack", thread_stack,
                 "thread engine: stack size of each connection thread");
  app.add_option("--zerocopy-min", zerocopy_min,
                 "uring: send replies with IORING_OP_SEND_ZC (zero-copy) when the first "
                 "queued block holds at least this many bytes (0 = never; see FINDINGS)");
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
  app.add_option("--accept-rate", cfg.accept_rate,
                 "accept at most this many new connections per second, all workers and loops "
                 "together; the rest wait in the listen backlog, so a connect storm cannot take "
                 "the CPU that open connections need (0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--drain-timeout", drain,
                 "on SIGTERM/SIGINT: how long to wait for peers to close (0 = forever)");
  std::string memory_limit = "auto", overload_levels = "50,70,85", memory_release = "1s";
  app.add_option("--memory-limit", memory_limit,
                 "memory budget: bytes of buffers all connections may hold (queued output, held "
                 "input, partial frames); 'auto' = 50% of MemAvailable or of the cgroup's room, "
                 "divided among the workers; 0 = no limit");
  app.add_option("--overload-levels", overload_levels,
                 "percent of --memory-limit where each overload action starts: pause the "
                 "largest holders, shrink new connections' queues, stop accepting (past 100%: "
                 "close the largest holders)");
  app.add_option("--memory-release", memory_release,
                 "return free memory to the OS at most this often after a burst (0 = never)");
  int workers = 1;
  app.add_option("--workers", workers,
                 "worker processes under a supervisor, one shared port, each pausing at its "
                 "capacity (its fd limit; uring: --threads x the fd limit) (1 = this process "
                 "serves, no supervisor; 0 = as many as --max-conns needs, else one per core)")
      ->check(CLI::Range(0, 4096));
  std::string worker_handoff;  // set by the supervisor on the workers it starts
  app.add_option("--worker", worker_handoff, "(internal: started by a supervisor)")->group("");
  std::string metrics_addr = c10m::admin::kDefaultMetricsAddr;  // ADMIN-HOOK flag
  CLI::Option* metrics_opt = app.add_option(
      "--metrics-addr", metrics_addr,
      "side HTTP port for /metrics, /healthz, /debug/pprof/* (host:port, port 0 = any; "
      "'off' = none). Loopback by default: profiles expose internals");

  c10m::engine::EngineKind kind = c10m::engine::EngineKind::kEpoll;
  c10m::server::ServerOptions options;
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
    cfg.notsent_lowat = static_cast<int>(size_flag("--notsent-lowat", notsent_lowat, 0, 1 << 30));
    cfg.rcvlowat = static_cast<int>(size_flag("--rcvlowat", rcvlowat, 0, 1 << 30));
    cfg.readbuf = size_flag("--readbuf", readbuf, 1, 64 << 20);
    cfg.thread_stack = size_flag("--thread-stack", thread_stack, 16 << 10, 1 << 30);
    cfg.memory_release = duration_flag("--memory-release", memory_release);
    if (std::string err = c10m::core::parse_budget_levels(overload_levels, &cfg.overload_levels);
        !err.empty())
      throw BadFlag{fmt::format("--overload-levels: {}", err)};
    if (memory_limit != "auto")
      cfg.memory_limit = size_flag("--memory-limit", memory_limit, 0, uint64_t{1} << 50);
    cfg.zerocopy_min = size_flag("--zerocopy-min", zerocopy_min, 0, 1 << 30);
    if (!c10m::sys::parse_ipv4_endpoint(cfg.addr))
      throw BadFlag{fmt::format("--addr: '{}' is not host:port with an IPv4 host", cfg.addr)};
    c10m::core::parse_fetch_send(fetch_send, &cfg.fetch_send);
    cfg.ingest_trunc = ingest == "trunc";
    if (engine_name == "auto") {
      kind = c10m::engine::choose_engine(cfg, &options.engine_why);
      options.engine_why = "auto: " + options.engine_why;
    } else {
      c10m::engine::parse_engine_kind(engine_name, &kind);
    }
    cfg.fetch_ref_min = size_flag("--fetch-ref-min", fetch_ref_min, 0, 65536);
    if (kind == c10m::engine::EngineKind::kUring &&
        (cfg.fetch_send == c10m::core::FetchSend::kSendfile ||
         cfg.fetch_send == c10m::core::FetchSend::kZerocopy || cfg.ingest_trunc))
      throw BadFlag{
          "--engine uring: --fetch-send takes copy or writev and --ingest only read "
          "(zero-copy sends with uring: --zerocopy-min)"};
    if (!worker_handoff.empty()) {
      auto h = c10m::server::WorkerHandoff::parse(worker_handoff);
      if (!h) throw BadFlag{fmt::format("--worker: '{}' is malformed", worker_handoff)};
      options.handoff = *h;
    }
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "c10m-server: {} (see --help)\n", e.what());
    return 2;
  } catch (const BadFlag& e) {
    fmt::print(stderr, "c10m-server: {} (see --help)\n", e.message);
    return 2;
  }

  options.config = cfg;
  options.kind = kind;
  options.metrics_addr = metrics_addr;
  options.metrics_addr_given = metrics_opt->count() > 0;
  options.workers = workers;
  // The memory budget is per process: 'auto' gives each worker its share of the box's.
  std::string memory_limit_how = memory_limit == "auto" ? "" : "--memory-limit";
  if (memory_limit == "auto") {
    const int n = workers == 0 ? c10m::server::resolved_workers(options) : workers;
    options.config.memory_limit =
        c10m::core::default_memory_limit(50, static_cast<uint32_t>(n), &memory_limit_how);
  }
  options.argv.assign(argv, argv + argc);
  if (options.handoff.index >= 0) return c10m::server::run_worker(options);
  // tcmalloc's heap sampling is set up before any fd or thread exists (may re-exec);
  // workers inherit the setting through the environment.
  const bool metrics_on = metrics_addr != "off" && !metrics_addr.empty();
  if (metrics_on) c10m::admin::ensure_heap_sampling(argv);
  {
    const auto& lv = options.config.overload_levels;
    if (options.config.memory_limit != 0) {
      c10m::log_info(
          "memory budget {}{} ({}): pause largest holders at {}%, shrink new queues at {}%, "
          "stop accepting at {}%, close largest holders past 100%",
          c10m::format_size(options.config.memory_limit), workers == 1 ? "" : " per worker",
          memory_limit_how, lv.pause, lv.shrink, lv.stop_accept);
    } else {
      c10m::log_info("memory budget: no limit (--memory-limit 0)");
    }
  }
  if (workers == 1) return c10m::server::run_single(options);
  return c10m::server::run_supervisor(options);
}
