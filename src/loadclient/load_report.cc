#include "loadclient/load_report.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/build_info.h"
#include "base/units.h"
#include "loadclient/load_worker.h"
#include "sys/socket.h"

namespace c10m::loadclient {

SeriesPoint SeriesBuilder::add(int t, const Totals& cur, const HdrHistogram& interval) {
  so_far_.merge(interval);
  SeriesPoint p;
  p.t = t;
  p.conns_open = cur.conns_open;
  p.sent = cur.ops_sent - prev_.ops_sent;
  p.completed = cur.ops_done - prev_.ops_done;
  p.errors = cur.errors() - prev_.errors();
  p.mismatches = cur.mismatches - prev_.mismatches;
  p.p50_ns = interval.value_at_percentile(50);
  p.p99_ns = interval.value_at_percentile(99);
  p.p99_so_far_ns = so_far_.value_at_percentile(99);
  prev_ = cur;
  points_.push_back(p);
  return p;
}

nlohmann::json ProcessResult::to_json() const {
  return {{"index", index},
          {"pid", pid},
          {"conns_target", conns_target},
          {"active_target", active_target},
          {"conns_open", totals.conns_open},
          {"conns_opened", totals.conns_opened},
          {"ops_completed", totals.done_measured},
          {"p99_us", static_cast<double>(histogram.value_at_percentile(99)) / 1e3},
          {"connect_errors", connect_errors},
          {"rss_before_bytes", rss_before_bytes},
          {"rss_end_bytes", rss_end_bytes},
          {"totals", totals.to_json()},
          {"histogram", histogram.to_json()}};
}

bool ProcessResult::from_json(const nlohmann::json& j, ProcessResult* out, std::string* error) {
  try {
    out->index = j.at("index").get<int>();
    out->pid = j.at("pid").get<int>();
    out->conns_target = j.at("conns_target").get<uint64_t>();
    out->active_target = j.at("active_target").get<uint64_t>();
    out->connect_errors = j.at("connect_errors").get<std::string>();
    out->rss_before_bytes = j.at("rss_before_bytes").get<uint64_t>();
    out->rss_end_bytes = j.at("rss_end_bytes").get<uint64_t>();
    out->totals = Totals::from_json(j.at("totals"));
    auto h = HdrHistogram::from_json(j.at("histogram"), error);
    if (!h) return false;
    out->histogram = std::move(*h);
    return true;
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return false;
  }
}

ProcSample sample_process(int pid) {
  ProcSample s;
  if (pid <= 0) return s;
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(stat, line)) return s;
  const size_t close = line.rfind(')');  // comm may contain spaces
  if (close == std::string::npos) return s;
  std::istringstream in(line.substr(close + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {  // fields 14 and 15 are utime, stime
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      s.rss_bytes = std::stoull(line.substr(6)) * 1024;  // "VmRSS:   1234 kB"
      s.ok = true;
    }
  }
  return s;
}

double self_cpu_seconds() {
  auto secs = [](const rusage& r) {
    return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
  };
  rusage self{}, kids{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  return secs(self) + secs(kids);
}

void RunReport::merge_processes() {
  totals = Totals{};
  histogram.reset();
  for (const auto& p : processes) {
    totals.add(p.totals);
    histogram.merge(p.histogram);
  }
}

double RunReport::target_rate() const {
  return config.closed_loop() ? 0.0 : static_cast<double>(config.active_target()) * config.rate;
}

// A loop that waited in the run queue for more than this share of the window was starved
// (the per-second threshold of the worker is the same).
constexpr double kStarvedWindowShare = 0.10;
constexpr double kBusyWindowShare = 0.90;

static double loop_seconds(const RunReport& r) {
  return r.measured_s * static_cast<double>(std::max(1, r.config.threads)) *
         static_cast<double>(std::max(1, r.config.procs));
}

double RunReport::loop_cpu_share() const {
  const double s = loop_seconds(*this);
  return s > 0 ? static_cast<double>(totals.cpu_ns) / 1e9 / s : 0.0;
}

double RunReport::loop_wait_share() const {
  const double s = loop_seconds(*this);
  if (totals.schedstat_loops == 0 || s <= 0) return -1;
  return static_cast<double>(totals.run_delay_ns) / 1e9 / s;
}

bool RunReport::client_behind() const {
  if (config.closed_loop() || config.active_frac <= 0) return false;  // no schedule to keep
  const bool late =
      totals.sent_measured > 0 &&
      static_cast<double>(totals.late_sends) > 0.01 * static_cast<double>(totals.sent_measured);
  return late || totals.saturated_ticks > 0 || totals.starved_ticks > 0 ||
         loop_wait_share() > kStarvedWindowShare;
}

std::string RunReport::behind_cause() const {
  if (!client_behind()) return "";
  const bool busy = totals.saturated_ticks > 0 || loop_cpu_share() > kBusyWindowShare;
  const bool starved = totals.starved_ticks > 0 || loop_wait_share() > kStarvedWindowShare;
  if (busy && starved) return "busy loop and starved by the scheduler";
  if (busy) return "busy loop";
  if (starved) return "starved by the scheduler";
  return "short stalls";
}

void RunReport::compute_warnings() {
  warnings.clear();
  if (client_behind()) {
    const double wait = loop_wait_share();
    warnings.push_back(fmt::format(
        "WARNING: THE CLIENT FELL BEHIND ITS SCHEDULE ({}: {} of {} sends started > 1 ms late, "
        "{} loop-seconds CPU-saturated, {} loop-seconds starved; loops used {:.0f}% CPU and "
        "waited {} in the run queue): latencies include the client's own delay; {}",
        behind_cause(), totals.late_sends, totals.sent_measured, totals.saturated_ticks,
        totals.starved_ticks, 100 * loop_cpu_share(),
        wait < 0 ? std::string("an unknown share") : fmt::format("{:.0f}%", 100 * wait),
        totals.starved_ticks > 0 || wait > kStarvedWindowShare
            ? "the box is busy: give the client a core of its own (fewer other processes, or "
              "pin it), then add --threads or --procs"
            : "add --threads or --procs, or lower the rate"));
  }
  for (size_t i = 0; i < kConnectFailKinds; ++i) {
    if (totals.connect_fail[i] == 0) continue;
    warnings.push_back(fmt::format("{} connects failed ({}): {}", totals.connect_fail[i],
                                   connect_fail_name(static_cast<ConnectFail>(i)),
                                   connect_fail_hint(static_cast<ConnectFail>(i))));
  }
  if (totals.mismatches)
    warnings.push_back(fmt::format("{} replies did not match their requests", totals.mismatches));
  if (totals.incomplete_at_end)
    warnings.push_back(
        fmt::format("{} measured requests were still unanswered {} after the last send",
                    totals.incomplete_at_end, format_duration(config.grace)));
  if (histogram.clamped_high())
    warnings.push_back(
        fmt::format("{} latencies above 60 s were clamped to 60 s", histogram.clamped_high()));
}

static double us(int64_t ns) { return static_cast<double>(ns) / 1e3; }

static std::string fmt_latency(int64_t ns) {
  if (ns >= 1'000'000) return fmt::format("{:.2f}ms", static_cast<double>(ns) / 1e6);
  return fmt::format("{:.1f}us", static_cast<double>(ns) / 1e3);
}

static std::string fmt_bytes(double b) {
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:.1f} MiB", b / (1024.0 * 1024));
  if (b >= 1024.0) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{:.0f} B", b);
}

static double per(uint64_t a, uint64_t b) {
  return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0;
}

// Kernel entries on connections: plain reads and writes, epoll waits, io_uring enters
// (the ring's reads and writes ride in those). Connects and closes are not counted.
static uint64_t syscalls(const Totals& t) {
  return t.read_calls + t.write_calls - t.batched_ops + t.wait_calls + t.enter_calls;
}

// Byte rates of the measured window: payload = the STREAM/FETCH totals (or ECHO/SINK
// payloads) of the measured requests completed; wire = every byte written and read on the
// sockets during the window, headers and acknowledgements included. MB = 10^6 bytes.
struct Throughput {
  double payload_mb_s, payload_gbit_s, wire_mb_s, wire_gbit_s, out_mb_s, in_mb_s;
};

static Throughput throughput(const RunReport& r, double window) {
  const double payload = static_cast<double>(r.totals.payload_bytes) / window;
  const double out = static_cast<double>(r.totals.wire_out) / window;
  const double in = static_cast<double>(r.totals.wire_in) / window;
  return {payload / 1e6,        payload * 8 / 1e9, (out + in) / 1e6,
          (out + in) * 8 / 1e9, out / 1e6,         in / 1e6};
}

static nlohmann::json throughput_json(const RunReport& r, double window) {
  const Throughput t = throughput(r, window);
  return {{"payload_bytes", r.totals.payload_bytes}, {"wire_bytes_out", r.totals.wire_out},
          {"wire_bytes_in", r.totals.wire_in},       {"payload_MB_per_s", t.payload_mb_s},
          {"payload_Gbit_per_s", t.payload_gbit_s},  {"wire_MB_per_s", t.wire_mb_s},
          {"wire_Gbit_per_s", t.wire_gbit_s}};
}

nlohmann::json RunReport::to_json() const {
  using nlohmann::json;
  const LoadConfig& c = config;
  json cfg = {{"addrs", c.addr_text},
              {"conns", c.conns},
              {"active_frac", c.active_frac},
              {"rate_per_conn", c.rate},
              {"inflight", c.inflight},
              {"op", op_name(c.op)},
              {"payload", c.payload.to_string()},
              {"chunk", c.chunk},
              {"schedule", schedule_kind_name(c.schedule.kind)},
              {"jitter", c.schedule.jitter},
              {"duration_s", static_cast<double>(c.duration) / 1e9},
              {"warmup_s", static_cast<double>(c.warmup) / 1e9},
              {"sends_from_s", static_cast<double>(c.sends_from) / 1e9},
              {"ramp_per_s", c.ramp},
              {"threads", c.threads},
              {"procs", c.procs},
              {"seed", c.seed},
              {"io", io_mode_name(c.io)},
              {"nodelay", c.nodelay},
              {"reconnect", c.reconnect},
              {"pack_active", c.pack_active},
              {"srcips", c.srcips.size()},
              {"connect_timeout_s", static_cast<double>(c.connect_timeout) / 1e9},
              {"grace_s", static_cast<double>(c.grace) / 1e9},
              {"send_slack_us", static_cast<double>(c.send_slack) / 1e3},
              {"sndbuf", c.sndbuf},
              {"rcvbuf", c.rcvbuf},
              {"server_pid", c.server_pid}};
  json host = {{"kernel", kernel_release()},
               {"cpu", cpu_model()},
               {"cores", std::thread::hardware_concurrency()},
               {"compiler", compiler_string()},
               {"git_commit", git_commit()},
               {"version", version_string()}};
  const double window = measured_s > 0 ? measured_s : 1.0;
  json latency = {{"count", histogram.total_count()},
                  {"p50", us(histogram.value_at_percentile(50))},
                  {"p90", us(histogram.value_at_percentile(90))},
                  {"p99", us(histogram.value_at_percentile(99))},
                  {"p99_9", us(histogram.value_at_percentile(99.9))},
                  {"p99_99", us(histogram.value_at_percentile(99.99))},
                  {"max", us(histogram.max())},
                  {"mean", histogram.mean() / 1e3},
                  {"min", us(histogram.min())}};
  json cpu = {{"client_s", static_cast<double>(totals.cpu_ns) / 1e9},
              {"client_ns_per_frame",
               totals.done_measured
                   ? static_cast<double>(totals.cpu_ns) / static_cast<double>(totals.done_measured)
                   : 0.0},
              {"server_s", nullptr},
              {"server_ns_per_frame", nullptr}};
  json server = nullptr;
  if (config.server_pid > 0 && server_start.ok && server_end.ok) {
    const double server_cpu = server_end.cpu_s - server_start.cpu_s;
    cpu["server_s"] = server_cpu;
    if (totals.done_measured)
      cpu["server_ns_per_frame"] = server_cpu * 1e9 / static_cast<double>(totals.done_measured);
    const double grown =
        static_cast<double>(server_end.rss_bytes) - static_cast<double>(server_base.rss_bytes);
    server = {{"pid", config.server_pid},
              {"rss_before_bytes", server_base.rss_bytes},
              {"rss_end_bytes", server_end.rss_bytes},
              {"bytes_per_conn",
               totals.conns_open ? grown / static_cast<double>(totals.conns_open) : 0.0},
              {"cpu_s", server_cpu}};
  }
  uint64_t rss_before = 0, rss_end = 0;
  for (const auto& p : processes) {
    rss_before += p.rss_before_bytes;
    rss_end += p.rss_end_bytes;
  }
  const double connect_s = static_cast<double>(totals.connect_phase_ns) / 1e9;
  json summary = {
      {"conns",
       {{"target", c.conns},
        {"active_target", c.active_target()},
        {"open", totals.conns_open},
        {"opened", totals.conns_opened},
        {"connect_failures", totals.connect_failures()},
        {"connect_s", totals.connect_phase_ns ? json(connect_s) : json(nullptr)},
        {"connects_per_s", totals.connect_phase_ns
                               ? json(static_cast<double>(totals.conns_opened) / connect_s)
                               : json(nullptr)}}},
      {"rate",
       {{"target_per_s", target_rate()},
        {"achieved_per_s", static_cast<double>(totals.sent_measured) / window},
        {"completed_per_s", static_cast<double>(totals.done_measured) / window}}},
      {"latency_us", latency},
      {"errors", totals.errors()},
      {"mismatches", totals.mismatches},
      {"client_behind", client_behind()},
      {"behind_cause", behind_cause().empty() ? json(nullptr) : json(behind_cause())},
      {"late_sends", totals.late_sends},
      {"early_sends", totals.early_sends},
      {"send_lag_us_mean", totals.sent_measured ? static_cast<double>(totals.send_lag_ns) / 1e3 /
                                                      static_cast<double>(totals.sent_measured)
                                                : 0.0},
      {"saturated_loop_seconds", totals.saturated_ticks},
      {"starved_loop_seconds", totals.starved_ticks},
      {"client_loops",
       {{"loops", std::max(1, c.threads) * std::max(1, c.procs)},
        {"cpu_share", loop_cpu_share()},
        {"run_queue_wait_share", loop_wait_share() < 0 ? json(nullptr) : json(loop_wait_share())},
        {"run_queue_wait_s", totals.schedstat_loops
                                 ? json(static_cast<double>(totals.run_delay_ns) / 1e9)
                                 : json(nullptr)},
        {"conn_struct_bytes", LoadWorker::conn_struct_bytes()},
        {"context_switches_per_frame", per(totals.context_switches, totals.done_measured)},
        {"rings", totals.rings},
        {"rss_before_bytes", rss_before},
        {"rss_end_bytes", rss_end},
        {"rss_bytes_per_conn",
         totals.conns_open ? (static_cast<double>(rss_end) - static_cast<double>(rss_before)) /
                                 static_cast<double>(totals.conns_open)
                           : 0.0}}},
      {"syscalls",
       {{"write_calls", totals.write_calls},
        {"read_calls", totals.read_calls},
        {"wait_calls", totals.wait_calls},
        {"enter_calls", totals.enter_calls},
        {"batched_ops", totals.batched_ops},
        {"syscalls_per_frame", per(syscalls(totals), totals.frames_in)},
        {"measured_syscalls_per_frame", per(totals.window_syscalls, totals.done_measured)},
        {"partial_writes", totals.partial_writes},
        {"frames_out", totals.frames_out},
        {"frames_in", totals.frames_in},
        {"frames_per_write", per(totals.frames_out, totals.write_calls)},
        {"frames_per_read", per(totals.frames_in, totals.read_calls)}}},
      {"throughput", throughput_json(*this, window)},
      {"measured_s", measured_s},
      {"cpu", cpu},
      {"server", server}};
  json series_json = json::array();
  for (const auto& p : series)
    series_json.push_back({{"t", p.t},
                           {"conns_open", p.conns_open},
                           {"sent", p.sent},
                           {"completed", p.completed},
                           {"errors", p.errors},
                           {"mismatches", p.mismatches},
                           {"p50_us", us(p.p50_ns)},
                           {"p99_us", us(p.p99_ns)},
                           {"p99_so_far_us", us(p.p99_so_far_ns)}});
  json procs = json::array();
  for (const auto& p : processes) procs.push_back(p.to_json());
  return {
      {"tool", "c10m-loadclient"},
      {"mode", c.closed_loop() ? "closed-loop" : "open"},
      {"closed_loop", c.closed_loop()},
      {"label", c.closed_loop()
                    ? std::string(kClosedLoopLabel)
                    : fmt::format("OPEN MODEL ({} schedule; latency from the intended send time)",
                                  schedule_kind_name(c.schedule.kind))},
      {"config", cfg},
      {"host", host},
      {"summary", summary},
      {"totals", totals.to_json()},
      {"warnings", warnings},
      {"series", series_json},
      {"histogram", histogram.to_json()},
      {"processes", procs}};
}

std::string RunReport::table() const {
  const LoadConfig& c = config;
  const double window = measured_s > 0 ? measured_s : 1.0;
  std::string out;
  out += fmt::format(
      "c10m-loadclient: {}\n",
      c.closed_loop() ? std::string(kClosedLoopLabel)
                      : fmt::format("OPEN MODEL ({} schedule; latency from the intended send time)",
                                    schedule_kind_name(c.schedule.kind)));
  out += fmt::format("  {:<16}{} {} x {}, {:.1f}s measured after {} warm-up\n", "workload",
                     op_name(c.op), c.payload.to_string(),
                     c.closed_loop() ? fmt::format("inflight {}", c.inflight)
                                     : fmt::format("{:g}/s per conn", c.rate),
                     measured_s, format_duration(c.warmup));
  out += fmt::format("  {:<16}{} open / {} target ({} active), {} procs x {} threads\n", "conns",
                     totals.conns_open, c.conns, c.active_target(), c.procs, c.threads);
  if (c.closed_loop())
    out += fmt::format("  {:<16}achieved {:.0f}/s (closed loop: no target)\n", "rate",
                       static_cast<double>(totals.done_measured) / window);
  else
    out += fmt::format("  {:<16}target {:.0f}/s, achieved {:.0f}/s sent, {:.0f}/s completed\n",
                       "rate", target_rate(), static_cast<double>(totals.sent_measured) / window,
                       static_cast<double>(totals.done_measured) / window);
  const HdrHistogram& h = histogram;
  if (h.total_count() == 0)
    out += fmt::format(
        "  {:<16}no samples ({})\n", "latency",
        c.active_target() == 0 ? "no active connections: an idle run" : "no reply completed");
  else
    out += fmt::format(
        "  {:<16}p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  (n={})\n", "latency",
        fmt_latency(h.value_at_percentile(50)), fmt_latency(h.value_at_percentile(90)),
        fmt_latency(h.value_at_percentile(99)), fmt_latency(h.value_at_percentile(99.9)),
        fmt_latency(h.value_at_percentile(99.99)), fmt_latency(h.max()), h.total_count());
  out += fmt::format(
      "  {:<16}{} (connect failures {}, ERROR frames {}, unexpected closes {}, unanswered {})\n",
      "errors", totals.errors(), totals.connect_failures(), totals.error_frame_count(),
      totals.unexpected_closes, totals.unanswered);
  out += fmt::format("  {:<16}{}\n", "mismatches", totals.mismatches);
  if (c.op == Op::kStream || c.op == Op::kFetch) {
    const Throughput t = throughput(*this, window);
    out += fmt::format(
        "  {:<16}payload {:.1f} MB/s ({:.2f} Gbit/s); wire {:.1f} MB/s ({:.2f} Gbit/s) = {:.1f} "
        "out + {:.1f} in\n",
        "throughput", t.payload_mb_s, t.payload_gbit_s, t.wire_mb_s, t.wire_gbit_s, t.out_mb_s,
        t.in_mb_s);
  }
  out += fmt::format(
      "  {:<16}{:.1f} frames per write, {:.1f} per read, {:.1f} per wait ({} writes, {} reads, "
      "{} waits, {} partial writes)\n",
      "syscalls", per(totals.frames_out, totals.write_calls),
      per(totals.frames_in, totals.read_calls), per(totals.frames_in, totals.wait_calls),
      totals.write_calls, totals.read_calls, totals.wait_calls, totals.partial_writes);
  out += fmt::format(
      "  {:<16}{:.3f} syscalls per frame (--io {}: {} io_uring enters carried {} of the reads "
      "and writes{}); {:.3f} in the measured window\n",
      "", per(syscalls(totals), totals.frames_in), io_mode_name(c.io), totals.enter_calls,
      totals.batched_ops,
      totals.rings ? fmt::format("; {} rings, {} receives re-armed, {} for want of a buffer",
                                 totals.rings, totals.recv_rearms, totals.recv_enobufs)
                   : std::string(),
      per(totals.window_syscalls, totals.done_measured));
  if (!c.closed_loop())
    out += fmt::format("  {:<16}mean {}, {} sends > 1 ms late, {} early (within --send-slack {})\n",
                       "send lateness",
                       fmt_latency(totals.sent_measured ? static_cast<int64_t>(totals.send_lag_ns /
                                                                               totals.sent_measured)
                                                        : 0),
                       totals.late_sends, totals.early_sends, format_duration(c.send_slack));
  {
    const double wait = loop_wait_share();
    out += fmt::format(
        "  {:<16}CPU {:.0f}% of the window, run-queue wait {} ({} loop-s saturated, {} starved), "
        "{:.2f} context switches per frame\n",
        "client loops", 100 * loop_cpu_share(),
        wait < 0 ? std::string("unknown") : fmt::format("{:.1f}%", 100 * wait),
        totals.saturated_ticks, totals.starved_ticks,
        per(totals.context_switches, totals.done_measured));
    uint64_t before = 0, end = 0;
    for (const auto& p : processes) {
      before += p.rss_before_bytes;
      end += p.rss_end_bytes;
    }
    out += fmt::format(
        "  {:<16}RSS {} (was {} before its loops), {} per conn ({} B record); connects {}\n",
        "client", fmt_bytes(static_cast<double>(end)), fmt_bytes(static_cast<double>(before)),
        fmt_bytes(totals.conns_open ? (static_cast<double>(end) - static_cast<double>(before)) /
                                          static_cast<double>(totals.conns_open)
                                    : 0),
        LoadWorker::conn_struct_bytes(),
        totals.connect_phase_ns
            ? fmt::format("{} in {:.2f} s ({:.0f}/s)", totals.conns_opened,
                          static_cast<double>(totals.connect_phase_ns) / 1e9,
                          static_cast<double>(totals.conns_opened) * 1e9 /
                              static_cast<double>(totals.connect_phase_ns))
            : std::string("not finished"));
  }
  if (totals.goaways)
    out +=
        fmt::format("  {:<16}{} (reconnects {})\n", "goaways", totals.goaways, totals.reconnects);
  const double client_per = totals.done_measured ? static_cast<double>(totals.cpu_ns) /
                                                       static_cast<double>(totals.done_measured)
                                                 : 0;
  if (c.server_pid > 0 && server_start.ok && server_end.ok) {
    const double grown =
        static_cast<double>(server_end.rss_bytes) - static_cast<double>(server_base.rss_bytes);
    out += fmt::format(
        "  {:<16}RSS {} (was {} before connecting), {} per conn\n", "server",
        fmt_bytes(static_cast<double>(server_end.rss_bytes)),
        fmt_bytes(static_cast<double>(server_base.rss_bytes)),
        fmt_bytes(totals.conns_open ? grown / static_cast<double>(totals.conns_open) : 0));
    const double server_per = totals.done_measured ? (server_end.cpu_s - server_start.cpu_s) * 1e9 /
                                                         static_cast<double>(totals.done_measured)
                                                   : 0;
    out += fmt::format("  {:<16}client {:.2f}us, server {:.2f}us (CPU time / completed request)\n",
                       "CPU per frame", client_per / 1e3, server_per / 1e3);
  } else {
    out += fmt::format(
        "  {:<16}client {:.2f}us (CPU time / completed request; --server-pid adds the server's)\n",
        "CPU per frame", client_per / 1e3);
  }
  for (const auto& w : warnings) out += "  " + w + "\n";
  return out;
}

}  // namespace c10m::loadclient
