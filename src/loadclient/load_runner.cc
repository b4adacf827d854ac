#include "loadclient/load_runner.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/log.h"
#include "loadclient/direct_ring.h"
#include "loadclient/io_batch.h"
#include "loadclient/load_worker.h"
#include "sys/socket.h"

namespace c10m::loadclient {
namespace {

std::atomic<bool> g_interrupted{false};
constexpr Nanos kPublishLag = 50 * kMillisecond;

void on_interrupt(int) { g_interrupted.store(true); }

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

void sleep_until(Nanos when) {
  const Nanos now = mono_now();
  if (when <= now) return;
  std::this_thread::sleep_for(std::chrono::nanoseconds(when - now));
}

// Samples the server at the run's start, the measured window's start and its end.
struct ServerProbe {
  const LoadConfig& cfg;
  RunReport& report;
  bool started = false, ended = false;
  void base() {
    if (cfg.server_pid > 0) report.server_base = sample_process(cfg.server_pid);
  }
  void poll(Nanos now) {
    if (cfg.server_pid <= 0) return;
    if (!started && now >= cfg.t0 + cfg.warmup) {
      report.server_start = sample_process(cfg.server_pid);
      started = true;
    }
    if (!ended && now >= cfg.t0 + cfg.warmup + cfg.duration) {
      report.server_end = sample_process(cfg.server_pid);
      ended = true;
    }
  }
  void finish(Nanos now) {
    if (cfg.server_pid <= 0) return;
    if (!started) report.server_start = sample_process(cfg.server_pid);
    if (!ended) report.server_end = sample_process(cfg.server_pid);
    started = ended = true;
    (void)now;
  }
  Nanos next_due() const {
    if (cfg.server_pid <= 0) return kNever;
    if (!started) return cfg.t0 + cfg.warmup;
    if (!ended) return cfg.t0 + cfg.warmup + cfg.duration;
    return kNever;
  }
};

std::string live_line(const LoadConfig& cfg, const SeriesPoint& p) {
  auto lat = [](int64_t ns) {
    return ns >= 1'000'000 ? fmt::format("{:.1f}ms", static_cast<double>(ns) / 1e6)
                           : fmt::format("{:.0f}us", static_cast<double>(ns) / 1e3);
  };
  const std::string target =
      cfg.closed_loop()
          ? std::string("closed loop")
          : fmt::format("target {:.0f}/s", static_cast<double>(cfg.active_target()) * cfg.rate);
  return fmt::format(
      "[{:>4}s] conns {}/{}  rate {}/s ({})  p99 {} (so far {})  errors {}  mismatches {}", p.t,
      p.conns_open, cfg.conns, p.sent, target, lat(p.p99_ns), lat(p.p99_so_far_ns), p.errors,
      p.mismatches);
}

using TickFn = std::function<void(int, const Totals&, const HdrHistogram&)>;

// Runs this process's workers; calls on_tick each second and probe->poll when due.
ProcessResult run_workers(const LoadConfig& cfg, const TickFn& on_tick, ServerProbe* probe,
                          double* measured_s, std::string* fatal) {
  const int index = cfg.worker_index < 0 ? 0 : cfg.worker_index;
  const int count = cfg.worker_index < 0 ? 1 : cfg.worker_count;
  const std::vector<uint64_t> ids =
      process_conn_ids(cfg.conns, index, count, cfg.pack_active ? cfg.active_frac : 0);
  const int threads = std::max(1, cfg.threads);
  std::vector<std::vector<uint64_t>> shares(static_cast<size_t>(threads));
  for (size_t i = 0; i < ids.size(); ++i) shares[i % shares.size()].push_back(ids[i]);
  const PayloadPattern pattern(cfg.seed);
  const double ramp_per_loop =
      cfg.ramp > 0 ? cfg.ramp / (static_cast<double>(count) * threads) : 0.0;

  ProcessResult r;
  r.rss_before_bytes = sample_process(static_cast<int>(getpid())).rss_bytes;
  std::vector<std::unique_ptr<LoadWorker>> workers;
  for (auto& share : shares)
    workers.push_back(std::make_unique<LoadWorker>(cfg, pattern, std::move(share), ramp_per_loop));
  std::vector<std::string> errors(workers.size());
  std::atomic<int> done{0};
  std::vector<std::thread> pool;
  for (size_t i = 0; i < workers.size(); ++i)
    pool.emplace_back([&, i] {
      errors[i] = workers[i]->run();
      done.fetch_add(1);
    });

  Nanos stopped_at = kNever;
  Nanos next_tick = cfg.t0 + kSecond;
  int tick = 1;
  // This process's RSS as the measured window ends (every connection still open).
  const Nanos t_end = cfg.t0 + cfg.warmup + cfg.duration;
  bool rss_sampled = false;
  auto sample_rss = [&] {
    r.rss_end_bytes = sample_process(static_cast<int>(getpid())).rss_bytes;
    rss_sampled = true;
  };
  while (done.load() < static_cast<int>(workers.size())) {
    const Nanos now = mono_now();
    if (!rss_sampled && now >= t_end) sample_rss();
    if (g_interrupted.load() && stopped_at == kNever) {
      stopped_at = now;
      for (auto& w : workers) w->stop();
    }
    if (probe) probe->poll(now);
    // Workers publish their samples at each whole second; read them a little after.
    if (now >= next_tick + kPublishLag) {
      Totals cur;
      HdrHistogram interval;
      for (auto& w : workers) {
        cur.add(w->counters());
        w->take_interval(&interval);
      }
      on_tick(tick++, cur, interval);
      next_tick += kSecond;
    }
    Nanos wake = std::min(next_tick + kPublishLag, now + 20 * kMillisecond);
    if (probe) wake = std::min(wake, probe->next_due());
    if (!rss_sampled) wake = std::min(wake, t_end);
    sleep_until(wake);
  }
  if (!rss_sampled) sample_rss();  // stopped early
  for (auto& t : pool) t.join();
  if (probe) probe->finish(mono_now());
  {
    // The last (partial) second, so short runs still have a series and a live line.
    Totals cur;
    HdrHistogram interval;
    for (auto& w : workers) {
      cur.add(w->counters());
      w->take_interval(&interval);
    }
    on_tick(tick, cur, interval);
  }

  r.index = index;
  r.pid = static_cast<int>(getpid());
  r.conns_target = ids.size();
  for (uint64_t g : ids) r.active_target += is_active_conn(g, cfg.active_frac) ? 1 : 0;
  for (auto& w : workers) {
    r.totals.add(w->counters());
    r.histogram.merge(w->measured());
    const std::string e = w->first_connect_error();
    if (!e.empty() && r.connect_errors.find(e) == std::string::npos)
      r.connect_errors += (r.connect_errors.empty() ? "" : "; ") + e;
  }
  for (auto& e : errors)
    if (!e.empty() && fatal) *fatal = e;
  const Nanos t_warm = cfg.t0 + cfg.warmup;
  const Nanos end = std::min(stopped_at, t_warm + cfg.duration);
  *measured_s = end > t_warm ? static_cast<double>(end - t_warm) / 1e9 : 0.0;
  return r;
}

void write_outputs(RunReport& report) {
  report.compute_warnings();
  fmt::print(stdout, "{}", report.table());
  std::fflush(stdout);
  for (const auto& w : report.warnings)
    if (w.rfind("WARNING", 0) == 0) fmt::print(stderr, "c10m-loadclient: {}\n", w);
  if (!report.config.json_path.empty()) {
    std::ofstream out(report.config.json_path);
    out << report.to_json().dump(2) << "\n";
    if (!out) log_warn("could not write --json {}", report.config.json_path);
  }
  if (!report.config.hgrm_path.empty()) {
    std::ofstream out(report.config.hgrm_path);
    out << report.hgrm();
    if (!out) log_warn("could not write --hgrm {}", report.config.hgrm_path);
  }
}

// ---- --procs: the parent ----------------------------------------------------------------
struct Child {
  pid_t pid = -1;
  int fd = -1;
  std::string buf;
  bool eof = false;
  bool final_seen = false;
  ProcessResult result;
  double measured_s = 0;
};

struct TickAcc {
  int n = 0;
  Totals sum;
  HdrHistogram hist;
};

int run_parent(LoadConfig cfg, const std::vector<std::string>& argv) {
  RunReport report;
  cfg.t0 = mono_now();
  report.config = cfg;
  ServerProbe probe{report.config, report};
  probe.base();
  std::vector<Child> children(static_cast<size_t>(cfg.procs));
  for (int i = 0; i < cfg.procs; ++i) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      log_warn("pipe2: {}", std::strerror(errno));
      return 1;
    }
    std::vector<std::string> args = argv;
    args.insert(args.end(), {"--worker-index", std::to_string(i), "--worker-count",
                             std::to_string(cfg.procs), "--worker-t0", std::to_string(cfg.t0)});
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
      log_warn("fork: {}", std::strerror(errno));
      return 1;
    }
    if (pid == 0) {
      dup2(fds[1], STDOUT_FILENO);
      execv("/proc/self/exe", cargs.data());
      _exit(127);
    }
    ::close(fds[1]);
    children[static_cast<size_t>(i)].pid = pid;
    children[static_cast<size_t>(i)].fd = fds[0];
  }

  SeriesBuilder series;
  std::map<int, TickAcc> ticks;
  int next_emit = 1;
  auto emit_ready = [&](bool flush_all) {
    while (!ticks.empty() && ticks.begin()->first == next_emit &&
           (flush_all || ticks.begin()->second.n == cfg.procs)) {
      const SeriesPoint p =
          series.add(next_emit, ticks.begin()->second.sum, ticks.begin()->second.hist);
      if (cfg.live) fmt::print(stderr, "{}\n", live_line(cfg, p));
      ticks.erase(ticks.begin());
      ++next_emit;
    }
  };
  auto handle_line = [&](Child& ch, const std::string& line) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) return;
    if (j.contains("tick")) {
      std::string err;
      auto h = HdrHistogram::from_json(j.at("interval"), &err);
      TickAcc& acc = ticks[j.at("tick").get<int>()];
      ++acc.n;
      acc.sum.add(Totals::from_json(j.at("totals")));
      if (h) acc.hist.merge(*h);
      emit_ready(false);
    } else if (j.contains("final")) {
      std::string err;
      if (ProcessResult::from_json(j.at("final"), &ch.result, &err)) {
        ch.final_seen = true;
        ch.measured_s = j.at("measured_s").get<double>();
      } else {
        log_warn("worker {}: bad result: {}", ch.pid, err);
      }
    }
  };

  size_t open = children.size();
  char buf[65536];
  while (open > 0) {
    std::vector<pollfd> pfds;
    std::vector<size_t> which;
    for (size_t i = 0; i < children.size(); ++i) {
      if (children[i].eof) continue;
      pfds.push_back({children[i].fd, POLLIN, 0});
      which.push_back(i);
    }
    const Nanos now = mono_now();
    probe.poll(now);
    const Nanos due = probe.next_due();
    const int timeout_ms =
        due == kNever ? 200
                      : static_cast<int>(std::clamp<Nanos>((due - now) / kMillisecond + 1, 0, 200));
    const int n = ::poll(pfds.data(), pfds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) break;
    for (size_t k = 0; k < pfds.size() && n > 0; ++k) {
      if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Child& ch = children[which[k]];
      const ssize_t got = ::read(ch.fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        ch.eof = true;
        ::close(ch.fd);
        --open;
        continue;
      }
      ch.buf.append(buf, static_cast<size_t>(got));
      size_t start = 0;
      for (size_t nl; (nl = ch.buf.find('\n', start)) != std::string::npos; start = nl + 1)
        handle_line(ch, ch.buf.substr(start, nl - start));
      ch.buf.erase(0, start);
    }
  }
  probe.finish(mono_now());
  emit_ready(true);
  int status_code = 0;
  for (auto& ch : children) {
    int status = 0;
    waitpid(ch.pid, &status, 0);
    if (!ch.final_seen) {
      log_warn("worker process {} ended without a result (status {})", ch.pid,
               WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
      status_code = 1;
      continue;
    }
    report.measured_s = std::max(report.measured_s, ch.measured_s);
    report.processes.push_back(std::move(ch.result));
  }
  report.merge_processes();
  report.series = series.points();
  write_outputs(report);
  return status_code;
}

}  // namespace

uint64_t LoadConfig::active_target() const {
  uint64_t n = 0;
  if (active_frac >= 1.0) return conns;
  for (uint64_t g = 0; g < conns; ++g) n += is_active_conn(g, active_frac) ? 1 : 0;
  return n;
}

std::optional<Op> parse_op(std::string_view name) {
  if (name == "ping") return Op::kPing;
  if (name == "echo") return Op::kEcho;
  if (name == "sink") return Op::kSink;
  if (name == "stream") return Op::kStream;
  if (name == "fetch") return Op::kFetch;
  return std::nullopt;
}

std::optional<IoMode> parse_io_mode(std::string_view name) {
  if (name == "auto") return IoMode::kAuto;
  if (name == "epoll") return IoMode::kEpoll;
  if (name == "uring") return IoMode::kUring;
  if (name == "direct") return IoMode::kDirect;
  return std::nullopt;
}

const char* io_mode_name(IoMode mode) {
  switch (mode) {
    case IoMode::kAuto:
      return "auto";
    case IoMode::kEpoll:
      return "epoll";
    case IoMode::kUring:
      return "uring";
    case IoMode::kDirect:
      return "direct";
  }
  return "?";
}

const char* op_name(Op op) {
  switch (op) {
    case Op::kPing:
      return "ping";
    case Op::kEcho:
      return "echo";
    case Op::kSink:
      return "sink";
    case Op::kStream:
      return "stream";
    case Op::kFetch:
      return "fetch";
  }
  return "?";
}

std::vector<uint64_t> process_conn_ids(uint64_t conns, int worker_index, int worker_count,
                                       double pack_active_frac) {
  const auto index = static_cast<uint64_t>(worker_index);
  const auto count = static_cast<uint64_t>(worker_count);
  std::vector<uint64_t> ids;
  if (pack_active_frac <= 0 || pack_active_frac >= 1) {
    for (uint64_t g = index; g < conns; g += count) ids.push_back(g);
    return ids;
  }
  // Positions in the dealt order: actives take 0..n_active-1, idle ones follow. Process k
  // takes the positions [begin, begin + its striped count).
  uint64_t n_active = 0;
  for (uint64_t g = 0; g < conns; ++g) n_active += is_active_conn(g, pack_active_frac) ? 1 : 0;
  const uint64_t base = conns / count, extra = conns % count;
  const uint64_t begin = index * base + std::min(index, extra);
  const uint64_t end = begin + base + (index < extra ? 1 : 0);
  uint64_t active_pos = 0, idle_pos = n_active;
  for (uint64_t g = 0; g < conns; ++g) {
    uint64_t& pos = is_active_conn(g, pack_active_frac) ? active_pos : idle_pos;
    if (pos >= begin && pos < end) ids.push_back(g);
    ++pos;
  }
  return ids;
}

IoMode resolve_io_mode(const LoadConfig& cfg, uint64_t fd_limit) {
  if (cfg.io != IoMode::kAuto) return cfg.io;
  const uint64_t procs = static_cast<uint64_t>(std::max(1, cfg.procs));
  const uint64_t per_process = (cfg.conns + procs - 1) / procs;
  if (per_process + kFdReserve > fd_limit && DirectRing::unavailable().empty())
    return IoMode::kDirect;
  return IoBatch::unavailable().empty() ? IoMode::kUring : IoMode::kEpoll;
}

namespace {
void resolve_io_mode(LoadConfig& cfg) { cfg.io = resolve_io_mode(cfg, sys::raise_fd_limit()); }
}  // namespace

RunReport run_in_process(const LoadConfig& config, std::string* fatal) {
  RunReport report;
  report.config = config;
  resolve_io_mode(report.config);
  if (report.config.t0 == 0) report.config.t0 = mono_now();
  const LoadConfig& cfg = report.config;
  ServerProbe probe{cfg, report};
  probe.base();
  SeriesBuilder series;
  auto on_tick = [&](int t, const Totals& cur, const HdrHistogram& interval) {
    const SeriesPoint p = series.add(t, cur, interval);
    if (cfg.live) fmt::print(stderr, "{}\n", live_line(cfg, p));
  };
  ProcessResult r = run_workers(cfg, on_tick, &probe, &report.measured_s, fatal);
  report.processes.push_back(std::move(r));
  report.merge_processes();
  report.series = series.points();
  return report;
}

int run_load(LoadConfig cfg, const std::vector<std::string>& argv) {
  install_interrupt_handler();
  resolve_io_mode(cfg);
  if (cfg.worker_index >= 0) {
    // A --procs worker: JSON lines to the parent on stdout.
    const Nanos late = mono_now() - (cfg.t0 + cfg.warmup + cfg.duration);
    if (late > 0)
      log_warn(
          "worker {}: started {:.2f} s after the run's window ended: it opens no connection and "
          "sends nothing (the box took too long to start {} processes; use a longer "
          "--duration or fewer --procs)",
          cfg.worker_index, static_cast<double>(late) / 1e9, cfg.worker_count);
    auto on_tick = [](int t, const Totals& cur, const HdrHistogram& interval) {
      nlohmann::json j = {{"tick", t}, {"totals", cur.to_json()}, {"interval", interval.to_json()}};
      fmt::print(stdout, "{}\n", j.dump());
      std::fflush(stdout);
    };
    double measured_s = 0;
    std::string fatal;
    ProcessResult r = run_workers(cfg, on_tick, nullptr, &measured_s, &fatal);
    if (!fatal.empty()) {
      log_warn("worker {}: {}", cfg.worker_index, fatal);
      return 1;
    }
    nlohmann::json j = {{"final", r.to_json()}, {"measured_s", measured_s}};
    fmt::print(stdout, "{}\n", j.dump());
    std::fflush(stdout);
    return 0;
  }
  if (cfg.procs > 1) return run_parent(cfg, argv);
  std::string fatal;
  RunReport report = run_in_process(cfg, &fatal);
  if (!fatal.empty()) {
    log_warn("{}", fatal);
    return 1;
  }
  write_outputs(report);
  return 0;
}

}  // namespace c10m::loadclient
