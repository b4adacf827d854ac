// echo_peer: a raw byte echo server (epoll, one thread) used as a test peer for the load
// client. Any byte echo server is a valid PING/ECHO peer (docs/PROTOCOL.md): replies are
// byte-identical to requests. --flip-every N corrupts one byte in every N echoed bytes of
// a connection (XOR 0xFF), to prove the load client counts mismatches. --threads N runs N
// such loops, each on its own thread with its own SO_REUSEPORT listener. TCP_NODELAY on.
//
//   echo_peer [--addr 127.0.0.1:0] [--threads N] [--flip-every N]
// Prints "listening on HOST:PORT" on stderr; exits on SIGTERM/SIGINT.
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "sys/socket.h"

namespace {

// Set by SIGTERM/SIGINT, read by every loop (lock-free, so async-signal-safe).
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true, std::memory_order_relaxed); }

struct PeerConn {
  std::vector<uint8_t> out;  // bytes the kernel refused; empty otherwise
  size_t off = 0;
  uint64_t echoed = 0;  // bytes echoed so far (for --flip-every)
};

// One event loop on listener `lfd` until SIGTERM/SIGINT; closes everything it owns.
void run_loop(int lfd, uint64_t flip_every) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::unordered_map<int, PeerConn> conns;
  std::vector<uint8_t> buf(64 * 1024);
  epoll_event events[256];
  c10m::sys::SocketOptions sock_opts;  // TCP_NODELAY on, kernel buffer sizes

  auto close_conn = [&](int fd) {
    ::close(fd);
    conns.erase(fd);
  };
  auto set_events = [&](int fd, uint32_t e) {
    epoll_event m{};
    m.events = e;
    m.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &m);
  };
  // Writes what is queued; returns false if the connection died.
  auto flush = [&](int fd, PeerConn& c) {
    while (c.off < c.out.size()) {
      const ssize_t n = c10m::sys::write_some(fd, c.out.data() + c.off, c.out.size() - c.off);
      if (n == -EAGAIN) return true;
      if (n < 0) return false;
      c.off += static_cast<size_t>(n);
    }
    c.out.clear();
    c.off = 0;
    set_events(fd, EPOLLIN | EPOLLRDHUP);  // all written: read again
    return true;
  };

  while (!g_stop.load(std::memory_order_relaxed)) {
    const int n = epoll_wait(ep, events, 256, 200);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          const int cfd = c10m::sys::accept_conn(lfd, true);
          if (cfd < 0) break;
          c10m::sys::apply_socket_options(cfd, sock_opts);
          conns[cfd];
          epoll_event m{};
          m.events = EPOLLIN | EPOLLRDHUP;
          m.data.fd = cfd;
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &m);
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      PeerConn& c = it->second;
      if (!c.out.empty()) {
        if (!flush(fd, c)) close_conn(fd);
        continue;
      }
      const ssize_t got = c10m::sys::read_some(fd, buf.data(), buf.size());
      if (got == -EAGAIN) continue;
      if (got <= 0) {
        close_conn(fd);
        continue;
      }
      if (flip_every > 0) {
        for (ssize_t k = 0; k < got; ++k)
          if ((c.echoed + static_cast<uint64_t>(k) + 1) % flip_every == 0)
            buf[static_cast<size_t>(k)] ^= 0xFF;
      }
      c.echoed += static_cast<uint64_t>(got);
      ssize_t w = c10m::sys::write_some(fd, buf.data(), static_cast<size_t>(got));
      if (w == -EAGAIN) w = 0;
      if (w < 0) {
        close_conn(fd);
        continue;
      }
      if (w < got) {
        // Backpressure: keep the rest, stop reading until it is written.
        c.out.assign(buf.begin() + w, buf.begin() + got);
        c.off = 0;
        set_events(fd, EPOLLOUT | EPOLLRDHUP);
      }
    }
  }
  for (auto& [fd, c] : conns) ::close(fd);
  ::close(ep);
  ::close(lfd);
}

}  // namespace

int main(int argc, char** argv) {
  std::string addr_text = "127.0.0.1:0";
  uint64_t flip_every = 0;
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--addr" && i + 1 < argc)
      addr_text = argv[++i];
    else if (a == "--flip-every" && i + 1 < argc)
      flip_every = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: echo_peer [--addr host:port] [--threads N] [--flip-every N]\n");
      return 2;
    }
  }
  auto addr = c10m::sys::parse_ipv4_endpoint(addr_text);
  if (!addr || threads < 1) {
    std::fprintf(stderr, "echo_peer: bad --addr %s or --threads\n", addr_text.c_str());
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  c10m::sys::raise_fd_limit();
  // One listener per loop; with more than one they share the port through SO_REUSEPORT
  // (the first resolves port 0).
  std::vector<int> listeners;
  for (int i = 0; i < threads; ++i) {
    c10m::sys::ListenOptions opts;
    opts.reuseport = threads > 1;
    const int lfd = c10m::sys::listen_tcp(*addr, opts);
    if (lfd < 0) {
      std::fprintf(stderr, "echo_peer: listen %s: %s\n", addr_text.c_str(), std::strerror(-lfd));
      return 1;
    }
    if (i == 0) addr = c10m::sys::local_endpoint(lfd);
    listeners.push_back(lfd);
  }
  std::fprintf(stderr, "listening on %s\n", c10m::sys::format_endpoint(*addr).c_str());
  std::fflush(stderr);
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back(run_loop, listeners[i], flip_every);
  run_loop(listeners[0], flip_every);
  for (auto& t : pool) t.join();
  return 0;
}
