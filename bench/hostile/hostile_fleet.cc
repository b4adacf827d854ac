// hostile_fleet: a fleet of misbehaving clients for the experiments in experiments/hostile/.
// One process, one epoll loop, up to ~19,900 connections (the fd limit); run several with
// different --srcips for more. Uses src/sys and src/proto only (never the server's code).
//
// Modes (each connection, over and over while the run lasts; a connection the server
// closes is opened again unless --no-reconnect):
//   idle         connect and say nothing
//   slow-header  send one byte of an ECHO header, then one more byte every --trickle
//   slow-echo    send an ECHO header of --echo-len and --prefix payload bytes, then one
//                more byte every --trickle
//   slow-read    send FETCH --fetch-total in --chunk pieces with SO_RCVBUF --rcvbuf, then
//                read --read-rate bytes/s (0: never read)
//   rst          connect, send a FETCH, reset the connection at once (SO_LINGER 0)
//   flood        open --conns connections as fast as possible and hold them (beyond the
//                server's capacity: what is refused, what waits in the backlog)
//   garbage      send --garbage-bytes random bytes, read until the server closes
// Prints a JSON report (--json FILE, else stdout): connects, failures by errno, server
// closes and resets, ERROR frames by code, bytes, and one sample per second.
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/units.h"
#include "proto/frame.h"
#include "proto/frame_reader.h"
#include "sys/socket.h"

namespace {

using c10m::kMillisecond;
using c10m::kSecond;
using c10m::mono_now;
using c10m::Nanos;
using json = nlohmann::json;

enum class Mode { kIdle, kSlowHeader, kSlowEcho, kSlowRead, kRst, kFlood, kGarbage };

struct Options {
  std::string addr = "127.0.0.1:7000";
  std::string mode = "idle";
  uint32_t conns = 100;
  double rate = 0;  // connects per second (0: as fast as possible)
  Nanos duration = 10 * kSecond;
  Nanos trickle = 1 * kSecond;
  uint32_t echo_len = 60000;
  uint32_t prefix = 4000;
  uint64_t fetch_total = uint64_t{1} << 30;
  uint32_t chunk = 16384;
  int rcvbuf = 4096;
  uint64_t read_rate = 0;
  uint32_t garbage_bytes = 4096;
  bool reconnect = true;
  Nanos connect_timeout = 5 * kSecond;
  std::vector<sockaddr_in> srcips;
  std::string json_path;
  uint64_t seed = 1;
};

struct Conn {
  int fd = -1;
  bool connected = false;
  Nanos started = 0;      // connect() time
  Nanos next_action = 0;  // trickle / read / reconnect time
  uint32_t sent = 0;      // bytes of the script sent
  c10m::proto::FrameReader reader;
  bool in_error = false;  // reading an ERROR frame's payload
  bool error_code_next = false;
};

struct Stats {
  uint64_t connects_started = 0, connects_ok = 0, closes_by_server = 0, resets = 0, resets_sent = 0,
           bytes_in = 0, bytes_out = 0, connect_timeouts = 0;
  std::map<std::string, uint64_t> connect_errors;
  std::map<std::string, uint64_t> errors_received;  // ERROR frames by code name
  uint64_t goaways = 0;
  uint64_t open = 0;
  uint64_t peak_open = 0;
};

const char* code_name(uint8_t c) {
  return c10m::proto::error_code_name(static_cast<c10m::proto::ErrorCode>(c));
}

bool parse_srcips(const std::string& text, std::vector<sockaddr_in>* out) {
  if (text.empty()) return true;
  const auto dash = text.find('-');
  const std::string a = text.substr(0, dash);
  const std::string b = dash == std::string::npos ? a : text.substr(dash + 1);
  in_addr ia{}, ib{};
  if (inet_pton(AF_INET, a.c_str(), &ia) != 1 || inet_pton(AF_INET, b.c_str(), &ib) != 1)
    return false;
  for (uint32_t v = ntohl(ia.s_addr); v <= ntohl(ib.s_addr); ++v) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    s.sin_addr.s_addr = htonl(v);
    out->push_back(s);
  }
  return !out->empty();
}

class Fleet {
 public:
  Fleet(const Options& o, Mode mode, sockaddr_in dest)
      : o_(o), mode_(mode), dest_(dest), conns_(o.conns), rng_(o.seed) {}

  int run() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    const Nanos start = mono_now();
    const Nanos end = start + o_.duration;
    Nanos next_sample = start + kSecond;
    Nanos next_tick = start;
    double connect_credit = 0;
    Nanos last_credit = start;
    size_t cursor = 0;  // next slot to (re)open
    epoll_event events[512];
    for (;;) {
      Nanos now = mono_now();
      if (now >= end) break;
      // Open connections, rate-limited.
      if (o_.rate > 0) {
        connect_credit += o_.rate * static_cast<double>(now - last_credit) / kSecond;
        connect_credit = std::min(connect_credit, std::max(1.0, o_.rate / 10));
      }
      last_credit = now;
      for (size_t k = 0; k < conns_.size(); ++k) {
        if (o_.rate > 0 && connect_credit < 1) break;
        Conn& c = conns_[cursor];
        const size_t idx = cursor;
        cursor = (cursor + 1) % conns_.size();
        if (c.fd >= 0 || now < c.next_action) continue;
        if (c.sent == UINT32_MAX) continue;  // closed for good (no reconnect)
        open(idx, now);
        if (o_.rate > 0) connect_credit -= 1;
      }
      if (now >= next_tick) {
        tick(now);
        next_tick = now + 10 * kMillisecond;
      }
      if (now >= next_sample) {
        series_.push_back({{"t", (now - start) / 1e9},
                           {"open", s_.open},
                           {"connects_ok", s_.connects_ok},
                           {"closes_by_server", s_.closes_by_server},
                           {"resets", s_.resets},
                           {"errors_received", s_.errors_received}});
        next_sample += kSecond;
      }
      const int n = epoll_wait(epfd_, events, 512, 10);
      now = mono_now();
      for (int i = 0; i < n; ++i) on_event(events[i].data.u32, events[i].events, now);
    }
    for (size_t i = 0; i < conns_.size(); ++i) {
      if (conns_[i].fd >= 0) close_conn(i, /*reset=*/false);
    }
    return 0;
  }

  json report(Nanos elapsed) const {
    return {{"mode", o_.mode},
            {"conns", o_.conns},
            {"seconds", elapsed / 1e9},
            {"connects_started", s_.connects_started},
            {"connects_ok", s_.connects_ok},
            {"connect_timeouts", s_.connect_timeouts},
            {"connect_errors", s_.connect_errors},
            {"closes_by_server", s_.closes_by_server},
            {"resets_received", s_.resets},
            {"resets_sent", s_.resets_sent},
            {"errors_received", s_.errors_received},
            {"goaways", s_.goaways},
            {"bytes_in", s_.bytes_in},
            {"bytes_out", s_.bytes_out},
            {"peak_open", s_.peak_open},
            {"series", series_}};
  }

 private:
  void open(size_t i, Nanos now) {
    Conn& c = conns_[i];
    c = Conn{};
    const sockaddr_in* src = o_.srcips.empty() ? nullptr : &o_.srcips[i % o_.srcips.size()];
    ++s_.connects_started;
    int fd = -1;
    if (mode_ == Mode::kSlowRead) {
      // SO_RCVBUF before connect, so the window is small from the start.
      fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd >= 0) {
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o_.rcvbuf, sizeof o_.rcvbuf);
        if (src != nullptr) {
          const int one = 1;
          ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
          ::bind(fd, reinterpret_cast<const sockaddr*>(src), sizeof *src);
        }
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&dest_), sizeof dest_) != 0 &&
            errno != EINPROGRESS) {
          const int err = errno;
          ::close(fd);
          fd = -err;
        }
      } else {
        fd = -errno;
      }
    } else {
      fd = c10m::sys::connect_tcp(dest_, src, /*nonblocking=*/true);
    }
    if (fd < 0) {
      ++s_.connect_errors[std::strerror(-fd)];
      c.next_action = now + 100 * kMillisecond;  // e.g. EADDRNOTAVAIL, EMFILE: back off
      return;
    }
    c.fd = fd;
    c.started = now;
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  }

  void on_connected(size_t i, Nanos now) {
    Conn& c = conns_[i];
    c.connected = true;
    ++s_.connects_ok;
    ++s_.open;
    s_.peak_open = std::max(s_.peak_open, s_.open);
    c.next_action = now + o_.trickle;
    uint8_t buf[64];
    switch (mode_) {
      case Mode::kIdle:
      case Mode::kFlood:
        break;
      case Mode::kSlowHeader:
        buf[0] = 0x02;
        send_bytes(i, buf, 1);
        break;
      case Mode::kSlowEcho: {
        std::vector<uint8_t> b(3 + o_.prefix);
        c10m::proto::write_header(b.data(), c10m::proto::FrameType::kEcho,
                                  static_cast<uint16_t>(o_.echo_len));
        for (size_t k = 3; k < b.size(); ++k) b[k] = static_cast<uint8_t>(k);
        send_bytes(i, b.data(), b.size());
        break;
      }
      case Mode::kSlowRead:
      case Mode::kRst: {
        c10m::proto::write_header(buf, c10m::proto::FrameType::kFetch, 12);
        c10m::proto::write_stream_spec(buf + 3, {o_.fetch_total, o_.chunk});
        send_bytes(i, buf, 15);
        if (mode_ == Mode::kRst) {
          ++s_.resets_sent;
          close_conn(i, /*reset=*/true);
          return;
        }
        break;
      }
      case Mode::kGarbage: {
        std::vector<uint8_t> b(o_.garbage_bytes);
        for (auto& x : b) x = static_cast<uint8_t>(rng_());
        send_bytes(i, b.data(), b.size());
        break;
      }
    }
    if (c.fd < 0) return;
    epoll_event ev{};
    // Slow readers read on the tick only; HUP/ERR are always reported.
    ev.events = mode_ == Mode::kSlowRead ? 0u : static_cast<uint32_t>(EPOLLIN);
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void send_bytes(size_t i, const uint8_t* p, size_t n) {
    Conn& c = conns_[i];
    const ssize_t k = c10m::sys::write_some(c.fd, p, n);
    if (k > 0) {
      s_.bytes_out += static_cast<uint64_t>(k);
      c.sent += static_cast<uint32_t>(k);
    }
  }

  void on_event(size_t i, uint32_t ev, Nanos now) {
    Conn& c = conns_[i];
    if (c.fd < 0) return;
    if (!c.connected) {
      const int err = c10m::sys::socket_error(c.fd);
      if (err != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
        ++s_.connect_errors[std::strerror(err != 0 ? -err : ECONNREFUSED)];
        close_conn(i, false, /*was_open=*/false);
        c.next_action = now + 100 * kMillisecond;
        return;
      }
      on_connected(i, now);
      return;
    }
    if (mode_ == Mode::kSlowRead) {
      if (ev & (EPOLLERR | EPOLLHUP)) server_closed(i, now, true);
      return;
    }
    read_all(i, SIZE_MAX, now);
  }

  /// Reads up to `max` bytes; notes ERROR frames; handles the server's close.
  void read_all(size_t i, size_t max, Nanos now) {
    Conn& c = conns_[i];
    uint8_t buf[65536];
    while (max > 0 && c.fd >= 0) {
      const ssize_t n = c10m::sys::read_some(c.fd, buf, std::min(max, sizeof buf));
      if (n > 0) {
        s_.bytes_in += static_cast<uint64_t>(n);
        max -= static_cast<size_t>(n);
        scan(c, {buf, static_cast<size_t>(n)});
        continue;
      }
      if (n == -EAGAIN) return;
      server_closed(i, now, n != 0);
      return;
    }
  }

  void scan(Conn& c, std::span<const uint8_t> in) {
    std::span<const uint8_t> piece;
    for (;;) {
      const auto ev = c.reader.next(in, &piece);
      if (ev == c10m::proto::FrameReader::Event::kNeedMore) return;
      if (ev == c10m::proto::FrameReader::Event::kHeader) {
        const uint8_t t = c.reader.header().type;
        if (t == 0xFE) ++s_.goaways;
        c.in_error = t == 0xFF;
        c.error_code_next = c.in_error;
      } else if (ev == c10m::proto::FrameReader::Event::kPayload && c.error_code_next) {
        ++s_.errors_received[code_name(piece[0])];
        c.error_code_next = false;
      }
    }
  }

  void server_closed(size_t i, Nanos now, bool reset) {
    if (reset) {
      ++s_.resets;
    } else {
      ++s_.closes_by_server;
    }
    close_conn(i, false);
    conns_[i].next_action = now;
  }

  void close_conn(size_t i, bool reset, bool was_open = true) {
    Conn& c = conns_[i];
    if (c.fd < 0) return;
    if (reset) {
      c10m::sys::close_with_reset(c.fd);
    } else {
      ::close(c.fd);
    }
    c.fd = -1;
    if (was_open && c.connected && s_.open > 0) --s_.open;
    c.connected = false;
    if (!o_.reconnect) c.sent = UINT32_MAX;
  }

  void tick(Nanos now) {
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = conns_[i];
      if (c.fd < 0) continue;
      if (!c.connected) {
        if (now - c.started > o_.connect_timeout) {
          ++s_.connect_timeouts;
          close_conn(i, false, false);
          c.next_action = now;
        }
        continue;
      }
      if (now < c.next_action) continue;
      switch (mode_) {
        case Mode::kSlowHeader: {
          const uint8_t b =
              c.sent == 1 ? 0xFF : (c.sent == 2 ? 0xFF : static_cast<uint8_t>(c.sent));
          send_bytes(i, &b, 1);
          c.next_action = now + o_.trickle;
          break;
        }
        case Mode::kSlowEcho: {
          const uint8_t b = static_cast<uint8_t>(c.sent);
          send_bytes(i, &b, 1);
          c.next_action = now + o_.trickle;
          break;
        }
        case Mode::kSlowRead:
          if (o_.read_rate > 0) {
            read_all(i, std::max<uint64_t>(1, o_.read_rate * 10 * kMillisecond / kSecond), now);
          } else {
            // Never read; still notice a server close (RST arrives as an error on a probe).
            uint8_t b;
            const ssize_t n = ::recv(c.fd, &b, 0, MSG_DONTWAIT);
            (void)n;
          }
          c.next_action = now + 10 * kMillisecond;
          break;
        default:
          c.next_action = now + kSecond;
          break;
      }
    }
  }

  const Options& o_;
  Mode mode_;
  sockaddr_in dest_;
  std::vector<Conn> conns_;
  std::mt19937_64 rng_;
  int epfd_ = -1;
  Stats s_;
  json series_ = json::array();
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string duration = "10s", trickle = "1s", fetch_total = "1GiB", srcips,
              connect_timeout = "5s";
  CLI::App app{"hostile_fleet: misbehaving clients for experiments/hostile/", "hostile_fleet"};
  app.add_option("--addr", o.addr, "server host:port");
  app.add_option("--mode", o.mode, "idle|slow-header|slow-echo|slow-read|rst|flood|garbage")
      ->check(CLI::IsMember(
          {"idle", "slow-header", "slow-echo", "slow-read", "rst", "flood", "garbage"}));
  app.add_option("--conns", o.conns, "connections (slots) kept open");
  app.add_option("--rate", o.rate, "connects per second (0: as fast as possible)");
  app.add_option("--duration", duration, "how long to run");
  app.add_option("--trickle", trickle, "slow-header/slow-echo: one more byte this often");
  app.add_option("--echo-len", o.echo_len, "slow-echo: ECHO payload length");
  app.add_option("--prefix", o.prefix, "slow-echo: payload bytes sent at once");
  app.add_option("--fetch-total", fetch_total, "slow-read/rst: FETCH total");
  app.add_option("--chunk", o.chunk, "slow-read/rst: FETCH chunk");
  app.add_option("--rcvbuf", o.rcvbuf, "slow-read: SO_RCVBUF");
  app.add_option("--read-rate", o.read_rate, "slow-read: bytes/s read per connection (0: never)");
  app.add_option("--garbage-bytes", o.garbage_bytes, "garbage: random bytes per connection");
  app.add_flag("--reconnect,!--no-reconnect", o.reconnect, "reopen what the server closes");
  app.add_option("--connect-timeout", connect_timeout, "give up on a connect after this");
  app.add_option("--srcips", srcips, "source IPs a.b.c.d-a.b.c.e (round-robin)");
  app.add_option("--json", o.json_path, "write the report here (default: stdout)");
  app.add_option("--seed", o.seed, "garbage seed");
  CLI11_PARSE(app, argc, argv);
  auto d = c10m::parse_duration(duration);
  auto t = c10m::parse_duration(trickle);
  auto ct = c10m::parse_duration(connect_timeout);
  auto ft = c10m::parse_size(fetch_total);
  auto dest = c10m::sys::parse_ipv4_endpoint(o.addr);
  if (!d || !t || !ct || !ft || !dest || !parse_srcips(srcips, &o.srcips)) {
    std::fprintf(stderr, "hostile_fleet: bad flag value (see --help)\n");
    return 2;
  }
  o.duration = *d;
  o.trickle = *t;
  o.connect_timeout = *ct;
  o.fetch_total = *ft;
  c10m::sys::raise_fd_limit();
  const std::map<std::string, Mode> modes = {{"idle", Mode::kIdle},
                                             {"slow-header", Mode::kSlowHeader},
                                             {"slow-echo", Mode::kSlowEcho},
                                             {"slow-read", Mode::kSlowRead},
                                             {"rst", Mode::kRst},
                                             {"flood", Mode::kFlood},
                                             {"garbage", Mode::kGarbage}};
  Fleet fleet(o, modes.at(o.mode), *dest);
  const Nanos start = mono_now();
  fleet.run();
  const std::string out = fleet.report(mono_now() - start).dump(2);
  if (o.json_path.empty()) {
    std::printf("%s\n", out.c_str());
  } else {
    std::ofstream(o.json_path) << out << "\n";
  }
  return 0;
}
