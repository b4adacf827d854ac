// min_echo_client: the smallest closed-loop client there is, a yardstick for
// c10m-loadclient (experiments/client_efficiency.sh). N connections, K ECHO frames in
// flight on each, one epoll loop, and every byte read is written straight back: the reply
// to an ECHO is byte-identical to its request, so it is the next request. No validation,
// no latency, no schedule, no counters: what is left is the syscalls a closed loop needs.
//
//   min_echo_client --addr 127.0.0.1:7000 [--conns 100] [--inflight 8] [--payload 64]
//                   [--warmup 1] [--duration 5] [--server-pid P]
//
// Prints one JSON line: frames/s over the measured window, this thread's CPU per frame,
// and with --server-pid the server's (utime + stime from /proc/P/stat) per frame.
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "sys/socket.h"

namespace {

double now_s(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// utime + stime of a process, seconds; -1 when unreadable.
double process_cpu_s(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stod(field);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

int main(int argc, char** argv) {
  std::string addr_text;
  int conns = 100, inflight = 8, payload = 64, server_pid = 0;
  double warmup = 1, duration = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "--addr")
      addr_text = v;
    else if (flag == "--conns")
      conns = std::atoi(v);
    else if (flag == "--inflight")
      inflight = std::atoi(v);
    else if (flag == "--payload")
      payload = std::atoi(v);
    else if (flag == "--warmup")
      warmup = std::atof(v);
    else if (flag == "--duration")
      duration = std::atof(v);
    else if (flag == "--server-pid")
      server_pid = std::atoi(v);
    else {
      std::fprintf(stderr, "min_echo_client: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const auto addr = c10m::sys::parse_ipv4_endpoint(addr_text);
  if (!addr || conns < 1 || inflight < 1 || payload < 0 || payload > 65535 || duration <= 0) {
    std::fprintf(stderr,
                 "usage: min_echo_client --addr host:port [--conns N] [--inflight K] "
                 "[--payload B] [--warmup S] [--duration S] [--server-pid P]\n");
    return 2;
  }
  const size_t frame = 3 + static_cast<size_t>(payload);
  std::vector<uint8_t> requests(frame * static_cast<size_t>(inflight), 'x');
  for (int k = 0; k < inflight; ++k) {
    uint8_t* f = requests.data() + frame * static_cast<size_t>(k);
    f[0] = 0x02;  // ECHO
    f[1] = static_cast<uint8_t>(payload >> 8);
    f[2] = static_cast<uint8_t>(payload);
  }
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < conns; ++i) {
    const int fd = c10m::sys::connect_tcp(*addr, nullptr, /*nonblocking=*/false);
    if (fd < 0) {
      std::fprintf(stderr, "min_echo_client: connect: %s\n", std::strerror(-fd));
      return 1;
    }
    c10m::sys::apply_socket_options(fd, {});
    c10m::sys::set_nonblocking(fd, true);
    if (c10m::sys::write_some(fd, requests.data(), requests.size()) !=
        static_cast<ssize_t>(requests.size())) {
      std::fprintf(stderr, "min_echo_client: first write was short\n");
      return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  std::vector<uint8_t> buf(256 * 1024);
  epoll_event events[256];
  const double start = now_s(CLOCK_MONOTONIC);
  const double t_warm = start + warmup, t_end = t_warm + duration;
  bool warm = false;
  double cpu0 = 0, server0 = 0;
  uint64_t bytes = 0;
  for (;;) {
    const double now = now_s(CLOCK_MONOTONIC);
    if (!warm && now >= t_warm) {
      warm = true;
      bytes = 0;
      cpu0 = now_s(CLOCK_THREAD_CPUTIME_ID);
      server0 = process_cpu_s(server_pid);
    }
    if (now >= t_end) break;
    const int n = epoll_wait(ep, events, 256, 100);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      const ssize_t got = c10m::sys::read_some(fd, buf.data(), buf.size());
      if (got <= 0) continue;
      bytes += static_cast<uint64_t>(got);
      // Echo what came back: whole frames or not, the server reassembles them.
      for (ssize_t off = 0; off < got;) {
        const ssize_t w =
            c10m::sys::write_some(fd, buf.data() + off, static_cast<size_t>(got - off));
        if (w <= 0) break;  // a full socket buffer cannot happen with K frames in flight
        off += w;
      }
    }
  }
  const double cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
  const double server = server_pid > 0 ? process_cpu_s(server_pid) - server0 : -1;
  const double frames = static_cast<double>(bytes) / static_cast<double>(frame);
  std::printf(
      "{\"tool\": \"min_echo_client\", \"frames_per_s\": %.1f, \"client_us_per_frame\": %.4f, "
      "\"server_us_per_frame\": %s}\n",
      frames / duration, frames > 0 ? cpu * 1e6 / frames : 0.0,
      server >= 0 && frames > 0 ? std::to_string(server * 1e6 / frames).c_str() : "null");
  return 0;
}
