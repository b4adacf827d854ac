// accept_storm: a connect-and-close storm client for the accept experiments
// (experiments/accept_storm.sh, experiments/port_exhaustion.sh). Not a load client: it
// never speaks the protocol beyond closing.
//
// Each of --threads threads keeps --inflight connections cycling, each cycle:
//   connect (non-blocking, optional source IP) -> once established, shutdown(SHUT_WR)
//   (--close fin, the default: the server accepts, reads EOF and closes; we read its EOF
//   and close, so this side holds the TIME_WAIT) or close with SO_LINGER 0 at once
//   (--close rst: no TIME_WAIT anywhere, and the server may never see the connection
//   before it is reset) -> start the next one.
// A cycle counts as done when the server closed it (fin) or when it was established
// (rst). It prints one JSON object: cycles, cycles/s, errors by errno, cycle-time
// percentiles (fin: connect start to the server's close).
//
//   accept_storm --addr 127.0.0.1:19000 --threads 2 --inflight 64 --duration 5s
//                [--srcips 127.0.0.2-127.0.0.9] [--close fin|rst]
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/units.h"
#include "sys/socket.h"

namespace {

using c10m::Nanos;

struct Options {
  sockaddr_in dest{};
  std::vector<sockaddr_in> srcips;
  int threads = 1;
  int inflight = 32;
  Nanos duration = 5 * c10m::kSecond;
  Nanos timeout = 5 * c10m::kSecond;  // a cycle not done by then fails (ETIMEDOUT)
  bool rst = false;
};

struct Result {
  uint64_t cycles = 0;
  std::map<int, uint64_t> errors;  // errno -> count
  std::vector<Nanos> samples;      // cycle times (every 16th cycle)
};

struct Slot {
  int fd = -1;
  bool established = false;
  Nanos started = 0;
};

void run_thread(const Options& o, int index, const std::atomic<bool>& stop, Result* r) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<Slot> slots(static_cast<size_t>(o.inflight));
  uint64_t next_src = static_cast<uint64_t>(index);
  auto fail = [&](Slot& s, int err) {
    ++r->errors[err];
    if (s.fd >= 0) ::close(s.fd);
    s.fd = -1;
  };
  auto start = [&](size_t i) {
    Slot& s = slots[i];
    const sockaddr_in* src = nullptr;
    if (!o.srcips.empty()) src = &o.srcips[next_src++ % o.srcips.size()];
    s.started = c10m::mono_now();
    s.established = false;
    const int fd = c10m::sys::connect_tcp(o.dest, src, /*nonblocking=*/true);
    if (fd < 0) {
      ++r->errors[-fd];
      s.fd = -1;
      return;
    }
    s.fd = fd;
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  };
  auto done = [&](Slot& s) {
    ++r->cycles;
    if ((r->cycles & 15) == 0) r->samples.push_back(c10m::mono_now() - s.started);
  };
  for (size_t i = 0; i < slots.size(); ++i) start(i);
  epoll_event events[256];
  Nanos last_sweep = c10m::mono_now();
  while (!stop.load(std::memory_order_relaxed)) {
    const int n = ::epoll_wait(ep, events, 256, 50);
    for (int k = 0; k < n; ++k) {
      const size_t i = events[k].data.u64;
      Slot& s = slots[i];
      if (s.fd < 0) continue;
      if (!s.established) {
        const int err = c10m::sys::socket_error(s.fd);
        if (err != 0) {
          fail(s, -err);
          start(i);
          continue;
        }
        s.established = true;
        if (o.rst) {
          c10m::sys::close_with_reset(s.fd);
          s.fd = -1;
          done(s);
          start(i);
          continue;
        }
        c10m::sys::shutdown_write(s.fd);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
        continue;
      }
      char buf[256];
      const ssize_t got = c10m::sys::read_some(s.fd, buf, sizeof buf);
      if (got > 0) continue;  // the server said something (an ERROR): keep reading to EOF
      if (got == 0) {
        ::close(s.fd);
        s.fd = -1;
        done(s);
      } else if (got != -EAGAIN) {
        fail(s, static_cast<int>(-got));
      } else {
        continue;
      }
      start(i);
    }
    const Nanos now = c10m::mono_now();
    if (now - last_sweep > 100 * c10m::kMillisecond) {
      last_sweep = now;
      for (size_t i = 0; i < slots.size(); ++i) {
        Slot& s = slots[i];
        if (s.fd >= 0 && now - s.started > o.timeout) {
          fail(s, ETIMEDOUT);
          start(i);
        } else if (s.fd < 0) {
          start(i);  // a connect that failed at once (EADDRNOTAVAIL ...): try again
        }
      }
    }
  }
  for (Slot& s : slots)
    if (s.fd >= 0) ::close(s.fd);
  ::close(ep);
}

bool parse_srcips(const std::string& text, std::vector<sockaddr_in>* out) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(pos, comma - pos);
    pos = comma + 1;
    const size_t dash = item.find('-');
    in_addr a{}, b{};
    if (inet_pton(AF_INET, item.substr(0, dash).c_str(), &a) != 1) return false;
    b = a;
    if (dash != std::string::npos && inet_pton(AF_INET, item.substr(dash + 1).c_str(), &b) != 1)
      return false;
    for (uint32_t v = ntohl(a.s_addr); v <= ntohl(b.s_addr); ++v) {
      sockaddr_in s{};
      s.sin_family = AF_INET;
      s.sin_addr.s_addr = htonl(v);
      out->push_back(s);
    }
  }
  return !out->empty();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string addr, srcips, duration = "5s", timeout = "5s", close_mode = "fin";
  CLI::App app{"accept_storm: connect-and-close storm (see the header of bench/accept_storm.cc)"};
  app.add_option("--addr", addr, "server host:port")->required();
  app.add_option("--threads", o.threads, "client threads")->check(CLI::Range(1, 256));
  app.add_option("--inflight", o.inflight, "connections cycling per thread")
      ->check(CLI::Range(1, 65536));
  app.add_option("--duration", duration, "how long to storm");
  app.add_option("--timeout", timeout, "a cycle not done by then counts as ETIMEDOUT");
  app.add_option("--srcips", srcips, "source IPs, e.g. 127.0.0.2-127.0.0.9 (default: kernel's)");
  app.add_option("--close", close_mode, "fin: half-close, wait for the server's close; rst: reset")
      ->check(CLI::IsMember({"fin", "rst"}));
  CLI11_PARSE(app, argc, argv);
  auto dest = c10m::sys::parse_ipv4_endpoint(addr);
  auto d = c10m::parse_duration(duration);
  auto t = c10m::parse_duration(timeout);
  if (!dest || !d || !t || (!srcips.empty() && !parse_srcips(srcips, &o.srcips))) {
    std::fprintf(stderr, "accept_storm: bad --addr, --duration, --timeout or --srcips\n");
    return 2;
  }
  o.dest = *dest;
  o.duration = *d;
  o.timeout = *t;
  o.rst = close_mode == "rst";
  c10m::sys::raise_fd_limit();

  std::atomic<bool> stop{false};
  std::vector<Result> results(static_cast<size_t>(o.threads));
  std::vector<std::thread> threads;
  const Nanos t0 = c10m::mono_now();
  for (int i = 0; i < o.threads; ++i)
    threads.emplace_back(run_thread, std::cref(o), i, std::cref(stop), &results[size_t(i)]);
  std::this_thread::sleep_for(std::chrono::nanoseconds(o.duration));
  stop = true;
  for (auto& th : threads) th.join();
  const double secs = static_cast<double>(c10m::mono_now() - t0) / 1e9;

  nlohmann::json j;
  uint64_t cycles = 0;
  std::map<int, uint64_t> errors;
  std::vector<Nanos> samples;
  nlohmann::json per_thread = nlohmann::json::array();
  for (const Result& r : results) {
    cycles += r.cycles;
    per_thread.push_back(r.cycles);
    for (auto [e, n] : r.errors) errors[e] += n;
    samples.insert(samples.end(), r.samples.begin(), r.samples.end());
  }
  std::sort(samples.begin(), samples.end());
  auto pct = [&](double p) {
    if (samples.empty()) return 0.0;
    const size_t i = std::min(samples.size() - 1, static_cast<size_t>(p * samples.size()));
    return static_cast<double>(samples[i]) / 1e3;
  };
  j["addr"] = addr;
  j["threads"] = o.threads;
  j["inflight_per_thread"] = o.inflight;
  j["close"] = close_mode;
  j["srcips"] = o.srcips.size();
  j["seconds"] = secs;
  j["cycles"] = cycles;
  j["cycles_per_second"] = static_cast<double>(cycles) / secs;
  j["per_thread_cycles"] = per_thread;
  nlohmann::json errs = nlohmann::json::object();
  uint64_t error_total = 0;
  for (auto [e, n] : errors) {
    errs[strerrorname_np(e) ? strerrorname_np(e) : std::to_string(e)] = n;
    error_total += n;
  }
  j["errors"] = errs;
  j["error_total"] = error_total;
  j["cycle_us"] = {{"p50", pct(0.5)}, {"p99", pct(0.99)}, {"p999", pct(0.999)}};
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  j["user_seconds"] = static_cast<double>(ru.ru_utime.tv_sec) + ru.ru_utime.tv_usec / 1e6;
  j["sys_seconds"] = static_cast<double>(ru.ru_stime.tv_sec) + ru.ru_stime.tv_usec / 1e6;
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
