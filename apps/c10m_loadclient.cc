// c10m-loadclient: open-model load generator with HDR latency (docs/LOADCLIENT.md).
// main() and flags only; the work is in src/loadclient.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "base/build_info.h"
#include "base/process_name.h"
#include "base/units.h"
#include "loadclient/direct_ring.h"
#include "loadclient/io_batch.h"
#include "loadclient/load_runner.h"
#include "sys/socket.h"

namespace {

int usage_error(const std::string& msg) {
  fmt::print(stderr, "c10m-loadclient: {}\nRun with --help for usage.\n", msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace c10m;
  using namespace c10m::loadclient;
  name_process(argv[0]);  // --procs workers start as /proc/self/exe
  CLI::App app{"c10m-loadclient: open-model load generator with HDR latency histograms"};
  LoadConfig cfg;
  std::vector<std::string> addrs;
  std::string op = "echo", payload = "64", schedule = "fixed", srcips, io = "auto";
  std::string duration = "10s", warmup = "0", sends_from = "0", connect_timeout = "5s",
              grace = "2s", chunk = "16KiB", send_slack = "50us", sndbuf = "0", rcvbuf = "0";
  bool quiet = false, version = false;
  int64_t worker_t0 = 0;

  app.add_option("--addr", addrs,
                 "server address host:port; several (repeated or comma separated): "
                 "connections are spread round-robin")
      ->delimiter(',');
  app.add_option("--conns", cfg.conns, "connections to open (all processes)")
      ->capture_default_str();
  app.add_option("--active-frac", cfg.active_frac,
                 "share of connections that send; the rest stay idle")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--rate", cfg.rate, "requests/s per active connection (open model)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option(
      "--inflight", cfg.inflight,
      "CLOSED-LOOP mode: keep K requests in flight per connection (peak throughput; latency "
      "excludes queueing, not for SLO claims)");
  app.add_option("--op", op, "request type: ping|echo|sink|stream|fetch")->capture_default_str();
  app.add_option("--payload", payload,
                 "payload size, or a seeded mix like 64:0.9,4096:0.08,65535:0.02 (stream/fetch: "
                 "total bytes)")
      ->capture_default_str();
  app.add_option("--chunk", chunk, "STREAM/FETCH chunk size (1..65535)")->capture_default_str();
  app.add_option("--schedule", schedule,
                 "send schedule: fixed (interval with seeded jitter) | poisson")
      ->capture_default_str();
  app.add_option("--jitter", cfg.schedule.jitter, "fixed schedule: each gap scaled by U[1-j, 1+j]")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--send-slack", send_slack,
                 "open model: one wake-up sends everything due within this; a send that goes "
                 "early is timed from when it left, a late one from when it was due")
      ->capture_default_str();
  app.add_option("--duration", duration, "measured time after warm-up (the run always ends)")
      ->capture_default_str();
  app.add_option("--warmup", warmup, "leading time whose samples are left out")
      ->capture_default_str();
  app.add_option("--sends-from", sends_from,
                 "open model: no active connection sends before this time after the start "
                 "(0: each from its connect); with --ramp, the ramp's length keeps the "
                 "connects and the load apart")
      ->capture_default_str();
  app.add_option("--ramp", cfg.ramp,
                 "connections opened per second, all processes (0: as fast as possible)")
      ->capture_default_str();
  app.add_option("--threads", cfg.threads, "event loops per process")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--procs", cfg.procs, "processes (each has its own fd table; results are merged)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--srcips", srcips,
                 "source IPs, list or range: 127.0.0.2-127.0.0.60 (IP_BIND_ADDRESS_NO_PORT)");
  app.add_option("--seed", cfg.seed, "seed for payload bytes, mixes and schedules")
      ->capture_default_str();
  app.add_option("--io", io,
                 "how each loop moves bytes: epoll (a read/write syscall per connection), "
                 "uring (every read of an epoll batch and every write of a turn in one "
                 "io_uring_enter each; Linux 6.1+), direct (connections are io_uring direct "
                 "descriptors, outside the fd table, so one process holds more than its fd "
                 "limit: sockets created, bound and connected by the ring, replies by "
                 "multishot receive, each loop drives one ring per fd-limit of connections; "
                 "Linux 6.12+), auto (direct where a process's connections exceed its fd "
                 "limit, else uring where the kernel has it, else epoll)")
      ->capture_default_str();
  app.add_flag("--nodelay,!--no-nodelay", cfg.nodelay,
               "TCP_NODELAY on client sockets (default on)");
  app.add_option("--sndbuf", sndbuf, "SO_SNDBUF of client sockets (0: kernel default, autotuned)")
      ->capture_default_str();
  app.add_option("--rcvbuf", rcvbuf, "SO_RCVBUF of client sockets (0: kernel default, autotuned)")
      ->capture_default_str();
  app.add_flag("--pack-active", cfg.pack_active,
               "--procs with --active-frac: put the active connections in the fewest "
               "processes (the rest hold idle ones), so each wake-up serves more sends");
  app.add_flag("--reconnect", cfg.reconnect,
               "after GOAWAY or a server close, open a new connection");
  app.add_option("--connect-timeout", connect_timeout, "give up on a connect after this long")
      ->capture_default_str();
  app.add_option("--grace", grace, "after the last send, wait this long for owed replies")
      ->capture_default_str();
  app.add_option("--json", cfg.json_path, "write the full result as JSON to this file");
  app.add_option("--hgrm", cfg.hgrm_path,
                 "write the latency percentile distribution (HdrHistogram format)");
  app.add_option("--server-pid", cfg.server_pid,
                 "sample this server process's CPU and RSS (Linux /proc)");
  app.add_flag("--quiet", quiet, "no live line on stderr");
  app.add_flag("--version", version, "print the version and exit");
  app.add_option("--worker-index", cfg.worker_index)->group("");
  app.add_option("--worker-count", cfg.worker_count)->group("");
  app.add_option("--worker-t0", worker_t0)->group("");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (version) {
    fmt::print("c10m-loadclient {} ({}, {})\n", version_string(), git_commit(), compiler_string());
    return 0;
  }
  if (addrs.empty()) return usage_error("--addr is required");
  for (const auto& a : addrs) {
    auto ep = sys::parse_ipv4_endpoint(a);
    if (!ep || ep->sin_port == 0)
      return usage_error(fmt::format("--addr '{}': expected host:port", a));
    cfg.addrs.push_back(*ep);
    cfg.addr_text.push_back(a);
  }
  auto o = parse_op(op);
  if (!o) return usage_error(fmt::format("--op '{}': expected ping|echo|sink|stream|fetch", op));
  cfg.op = *o;
  const auto io_mode = parse_io_mode(io);
  if (!io_mode)
    return usage_error(fmt::format("--io '{}': expected auto|epoll|uring|direct", io));
  cfg.io = *io_mode;
  if (cfg.io == IoMode::kUring && !IoBatch::unavailable().empty())
    return usage_error("--io uring: " + IoBatch::unavailable());
  if (cfg.io == IoMode::kDirect && !DirectRing::unavailable().empty()) {
    // The kernel, not the command line: a fatal set-up error (exit 1), one line.
    fmt::print(stderr, "c10m-loadclient: {}\n", DirectRing::unavailable());
    return 1;
  }
  std::string err;
  // A frame payload is at most 65535 bytes; a FETCH total is any u32 here (the client
  // needs no buffer for it); a STREAM is built whole in the loop's scratch buffer.
  const uint64_t max_payload = cfg.op == Op::kFetch    ? 0xFFFFFFFFull
                               : cfg.op == Op::kStream ? 16u << 20
                                                       : 65535u;
  auto mix = PayloadMix::parse(payload, &err, max_payload);
  if (!mix) return usage_error(err);
  cfg.payload = *mix;
  if ((cfg.op == Op::kPing) && payload != "64" && payload != "0")
    return usage_error("--payload does not apply to --op ping (PING has no payload)");
  auto c = parse_size(chunk);
  if (!c || *c < 1 || *c > 65535)
    return usage_error(fmt::format("--chunk '{}': expected 1..65535", chunk));
  cfg.chunk = static_cast<uint32_t>(*c);
  auto sk = parse_schedule_kind(schedule);
  if (!sk) return usage_error(fmt::format("--schedule '{}': expected fixed|poisson", schedule));
  cfg.schedule.kind = *sk;
  cfg.schedule.rate = cfg.rate;
  struct {
    const char* flag;
    std::string* text;
    Nanos* out;
  } durations[] = {{"--duration", &duration, &cfg.duration},
                   {"--warmup", &warmup, &cfg.warmup},
                   {"--sends-from", &sends_from, &cfg.sends_from},
                   {"--connect-timeout", &connect_timeout, &cfg.connect_timeout},
                   {"--grace", &grace, &cfg.grace},
                   {"--send-slack", &send_slack, &cfg.send_slack}};
  for (auto& d : durations) {
    auto v = parse_duration(*d.text);
    if (!v)
      return usage_error(
          fmt::format("{} '{}': expected a duration like 500ms, 10s, 5m", d.flag, *d.text));
    *d.out = *v;
  }
  if (cfg.duration <= 0) return usage_error("--duration must be > 0 (every run ends by itself)");
  if (cfg.connect_timeout <= 0) return usage_error("--connect-timeout must be > 0");
  if (cfg.sends_from > 0 && cfg.closed_loop())
    return usage_error("--sends-from applies to the open model only (not with --inflight)");
  if (cfg.sends_from >= cfg.warmup + cfg.duration)
    return usage_error("--sends-from must end before the run does (--warmup + --duration)");
  if (cfg.send_slack > kMillisecond) return usage_error("--send-slack must be 0..1ms");
  for (auto [flag, text, out] : {std::tuple{"--sndbuf", &sndbuf, &cfg.sndbuf},
                                 std::tuple{"--rcvbuf", &rcvbuf, &cfg.rcvbuf}}) {
    auto v = parse_size(*text);
    if (!v || *v > (1u << 30))
      return usage_error(fmt::format("{} '{}': expected a size like 64KiB", flag, *text));
    *out = static_cast<int>(*v);
  }
  if (!srcips.empty()) {
    auto s = parse_source_ips(srcips, &err);
    if (!s) return usage_error(err);
    cfg.srcips = *s;
  }
  if (cfg.conns == 0) return usage_error("--conns must be >= 1");
  if (cfg.ramp < 0) return usage_error("--ramp must be >= 0");
  if (cfg.worker_index >= 0) {
    if (cfg.worker_count < 1 || cfg.worker_index >= cfg.worker_count || worker_t0 <= 0)
      return usage_error("bad --worker-* flags (internal to --procs)");
    cfg.t0 = worker_t0;
    cfg.live = false;
  } else {
    cfg.live = !quiet;
  }
  std::vector<std::string> args(argv, argv + argc);
  return run_load(cfg, args);
}
