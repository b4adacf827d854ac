// Hostile peers against the real c10m-server, for every engine: the memory budget and its
// overload actions under a fleet of non-reading FETCH clients, the write timeout as a
// minimum read rate, fairness between bulk transfers and small requests on one loop, and
// a timeout that must not blame a peer for the server's own delay. Behaviour only: every
// wait is bounded with generous limits; rates sit at 2x either side of an edge.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "admin/http_get.h"
#include "test_client.h"
#include "test_util.h"

namespace c10m::test {
namespace {

std::string action_key(const char* a) {
  return std::string("c10m_overload_actions_total{action=\"") + a + "\"}";
}

class OverloadTest : public ::testing::TestWithParam<std::string> {
 protected:
  void start(std::vector<std::string> args) {
    args.insert(args.begin(), {"--engine", GetParam(), "--metrics-addr", "127.0.0.1:0"});
    ASSERT_TRUE(server_.start(args)) << server_.stderr_text();
    const std::string err = server_.stderr_text();
    const size_t at = err.find("metrics on 127.0.0.1:");
    ASSERT_NE(at, std::string::npos) << err;
    metrics_port_ = static_cast<uint16_t>(std::stoi(err.substr(at + 21)));
  }
  void TearDown() override { expect_clean_exit(server_); }
  Samples scrape() { return scrape_metrics(metrics_port_); }
  /// A connection with a small receive window (it will never read). -1 on failure.
  int quiet_client() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int small = 4096;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(server_.port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }
  /// Asks for an endless FETCH on `fd` (never read).
  static bool ask_fetch(int fd) {
    const Bytes f = fetch(uint64_t{1} << 40, 16000);
    return ::send(fd, f.data(), f.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(f.size());
  }

  ServerProcess server_;
  uint16_t metrics_port_ = 0;
};

// A fleet of clients that each ask for an endless FETCH and never read: the server's
// budget gauge never passes --memory-limit plus the stated slack, the overload actions
// fire in their order and are counted, and a well-behaved client is served throughout.
TEST_P(OverloadTest, NonReadingFetchFleetStaysWithinTheBudget) {
  const uint64_t limit = 16 << 20;
  // Pause begins well before shrink: the thread engine notices a pause only when the
  // connection's thread next wakes (one 100 ms write slice), while the fleet grows.
  start({"--threads", "1", "--memory-limit", "16MiB", "--overload-levels", "30,70,85",
         "--write-timeout", "0", "--sndbuf", "4096"});
  // Slack (docs/PROTOCOL.md): epoll, per loop: one reservation chunk (1 MiB) and what one
  // connection event may add (4 blocks of 128 KiB). The thread engine sheds a connection
  // when its thread next wakes (at most one 100 ms write slice): add the blocks the fleet
  // can take meanwhile (here about ten 128 KiB blocks per 100 ms).
  const uint64_t slack = GetParam() == "epoll" ? (1 << 20) + 4 * (128 << 10) : 4 << 20;
  const uint64_t rss_before = server_.rss_kib() * 1024;

  // A well-behaved client, connected first, pinging all along.
  std::atomic<bool> stop{false};
  std::atomic<int> pongs{0}, failures{0};
  std::string failure;  // what went wrong, written by the good thread, read after join()
  std::thread good([&] {
    TestClient c;
    if (c.connect(server_.port()) != 0) {
      failure = "connect failed";
      ++failures;
      return;
    }
    while (!stop) {
      if (!c.write_all(ping())) {
        failure = "PING write failed after " + std::to_string(pongs.load()) + " PONGs";
        ++failures;
        return;
      }
      const auto f = c.read_frame(milliseconds(10000));
      if (!f || f->type != 0x01) {
        failure = (f ? "frame type " + std::to_string(f->type)
                     : std::string("no frame (closed, reset or 10 s)")) +
                  " instead of PONG after " + std::to_string(pongs.load()) + " PONGs";
        ++failures;
        return;
      }
      ++pongs;
      std::this_thread::sleep_for(milliseconds(20));
    }
  });

  const char* kActions[] = {"pause_read", "shrink_queue", "stop_accept", "close_reset"};
  std::map<std::string, int> first_seen;  // sample index where each action was first > 0
  double max_budget = 0;
  uint64_t max_rss = 0;
  int sample = 0;
  auto observe = [&] {
    const Samples s = scrape();
    max_budget = std::max(
        max_budget, s.count("c10m_memory_budget_bytes") ? s.at("c10m_memory_budget_bytes") : 0.0);
    max_rss = std::max<uint64_t>(max_rss, server_.rss_kib() * 1024);
    if (std::getenv("C10M_TEST_DEBUG") != nullptr) {
      std::fprintf(stderr, "sample %d budget %.0f", sample,
                   s.count("c10m_memory_budget_bytes") ? s.at("c10m_memory_budget_bytes") : -1.0);
      for (const char* a : kActions)
        std::fprintf(stderr, " %s=%.0f", a, s.count(action_key(a)) ? s.at(action_key(a)) : -1.0);
      std::fprintf(stderr, "\n");
    }
    for (const char* a : kActions) {
      const auto it = s.find(action_key(a));
      if (it != s.end() && it->second > 0 && !first_seen.count(a)) first_seen[a] = sample;
    }
    ++sample;
  };

  // 150 connections accepted while the budget is empty; then one by one they ask for an
  // endless FETCH they never read (each takes at least one 128 KiB block: 150 of them need
  // more than the limit), and every third step a new non-reading connection arrives. The
  // budget passes 30% (pause), 70% (new arrivals shrunk), 85% (accepting stops) and 100%
  // (the largest holders are closed).
  std::vector<int> fleet;
  for (int i = 0; i < 150; ++i) {
    const int fd = quiet_client();
    if (fd >= 0) fleet.push_back(fd);
  }
  std::this_thread::sleep_for(milliseconds(300));  // all accepted
  observe();
  const size_t accepted_idle = fleet.size();
  for (size_t i = 0; i < accepted_idle; ++i) {
    ask_fetch(fleet[i]);
    if (i % 3 == 2) {
      // connect() completes in the backlog even when the server stops accepting.
      const int fd = quiet_client();
      if (fd >= 0) {
        ask_fetch(fd);
        fleet.push_back(fd);
      }
    }
    std::this_thread::sleep_for(milliseconds(10));
    observe();
  }
  const auto end = Clock::now() + milliseconds(1000);
  while (Clock::now() < end) {
    observe();
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_GE(fleet.size(), 190u);
  EXPECT_LE(max_budget, static_cast<double>(limit + slack));
  if (GetParam() == "epoll") {
    // Blocks are never all touched, so RSS stays below the budget; allow the pools' caches
    // and the allocator's own rounding on top.
    EXPECT_LE(max_rss - rss_before, limit + slack + (16 << 20)) << max_rss << " " << rss_before;
  }
  // Every action fired, in order.
  std::string seen;
  for (const auto& [a, i] : first_seen) seen += a + "@" + std::to_string(i) + " ";
  for (const char* a : kActions)
    EXPECT_TRUE(first_seen.count(a)) << a << " never counted; seen: " << seen;
  // The first sample in which each was counted never decreases along the order. Epoll
  // only: a thread-engine connection notices a level when its thread next wakes (one
  // 100 ms write slice), so on 2 busy cores its pause may show after a later level's
  // action; that engine is held to "every action fired" and the bound.
  if (GetParam() == "epoll") {
    int previous = 0;
    for (const char* a : kActions) {
      const auto it = first_seen.find(a);
      if (it == first_seen.end()) continue;
      EXPECT_LE(previous, it->second) << a << " counted before the action ahead of it: " << seen;
      previous = it->second;
    }
  }

  stop = true;
  good.join();
  if (std::getenv("C10M_TEST_DEBUG") != nullptr)
    std::fprintf(stderr, "%s\n", server_.stderr_text().c_str());
  EXPECT_EQ(failures.load(), 0) << failure << "\n" << server_.stderr_text();
  EXPECT_GT(pongs.load(), 10);
  for (int fd : fleet) ::close(fd);
  // Once the fleet is gone, new connections are accepted and served.
  const auto until = Clock::now() + milliseconds(10000);
  bool served = false;
  while (!served && Clock::now() < until) {
    TestClient c;
    if (c.connect(server_.port()) == 0 && c.write_all(ping())) {
      const auto f = c.read_frame(milliseconds(2000));
      served = f && f->type == 0x01;
    }
    if (!served) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(served);
}

/// Reads an endless FETCH at `rate` bytes/s in `piece`-byte reads for `seconds`; returns
/// true if the server closed the connection meanwhile.
bool reader_dropped(uint16_t port, double rate, size_t piece, double seconds) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return true;
  }
  const Bytes f = fetch(uint64_t{1} << 40, 4093);
  ::send(fd, f.data(), f.size(), MSG_NOSIGNAL);
  const auto start = Clock::now();
  const auto end = start + milliseconds(static_cast<int64_t>(seconds * 1000));
  std::vector<uint8_t> buf(piece);
  uint64_t got = 0;
  bool closed = false;
  while (Clock::now() < end) {
    // Read on schedule: `got` may not run ahead of rate * elapsed.
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (static_cast<double>(got) + static_cast<double>(piece) <= rate * elapsed) {
      const ssize_t n = ::recv(fd, buf.data(), piece, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN)) {
        closed = true;
        break;
      }
      if (n > 0) got += static_cast<uint64_t>(n);
      continue;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  ::close(fd);
  return closed;
}

// docs/PROTOCOL.md: with --write-queue Q and --write-timeout T a reader must sustain Q/T
// (here 64 KiB/s); one at half of that is dropped, one at twice (Q + 4 KiB)/T is served.
TEST_P(OverloadTest, ReaderBelowTheMinimumReadRateIsDroppedAndOneAboveIsServed) {
  start({"--write-queue", "64KiB", "--write-timeout", "1s", "--sndbuf", "4096"});
  const double q = 64 * 1024;
  std::atomic<bool> slow_dropped{false}, fast_dropped{true};
  std::thread slow([&] { slow_dropped = reader_dropped(server_.port(), 0.5 * q, 1024, 6); });
  std::thread fast(
      [&] { fast_dropped = reader_dropped(server_.port(), 2.0 * (q + 4096), 4096, 6); });
  slow.join();
  fast.join();
  EXPECT_TRUE(slow_dropped.load());
  EXPECT_FALSE(fast_dropped.load());
  const Samples s = scrape();
  EXPECT_EQ(s.at("c10m_write_queue_drops_total"), 1);
}

// The server is stopped between the two halves of a frame for longer than the frame
// timeout; when it runs again the rest is waiting in its socket. Reading 7 bytes at a time
// it must read what is there before timing the peer out, and answer.
TEST_P(OverloadTest, FrameTimeoutReadsWhatIsWaitingFirst) {
  start({"--readbuf", "7", "--frame-timeout", "1s"});
  TestClient c;
  ASSERT_EQ(c.connect(server_.port()), 0);
  const Bytes req = echo(std::string(195, 'x'));  // 198 bytes
  ASSERT_TRUE(c.write_all(req.data(), 5));
  std::this_thread::sleep_for(milliseconds(200));  // the server has read the first part
  server_.signal(SIGSTOP);
  ASSERT_TRUE(c.write_all(req.data() + 5, req.size() - 5));
  std::this_thread::sleep_for(milliseconds(1500));  // past the frame deadline
  server_.signal(SIGCONT);
  const auto f = c.read_frame(milliseconds(5000));
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->wire(), req) << "type " << int(f->type) << " code " << int(f->error_code());
}

// Bulk FETCH readers and one PING client on the same event loop: every PING is answered
// while the bulk transfers are still running (no connection monopolises the loop).
TEST_P(OverloadTest, PingsAreAnsweredWhileBulkFetchesRun) {
  start({"--threads", "1"});
  std::atomic<bool> stop{false};
  std::atomic<int> bulk_done{0};
  std::atomic<uint64_t> bulk_bytes{0};
  std::vector<std::thread> bulk;
  for (int i = 0; i < 4; ++i) {
    bulk.emplace_back([&] {
      TestClient c;
      if (c.connect(server_.port()) != 0) return;
      if (!c.write_all(fetch(uint64_t{1} << 40, 65535))) return;
      uint8_t buf[65536];
      while (!stop) {
        const ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);
        if (n <= 0) break;
        bulk_bytes += static_cast<uint64_t>(n);
      }
      ++bulk_done;
    });
  }
  // Wait until the bulk transfers are flowing.
  const auto flowing = Clock::now() + milliseconds(5000);
  while (bulk_bytes.load() < (8u << 20) && Clock::now() < flowing)
    std::this_thread::sleep_for(milliseconds(10));
  EXPECT_GE(bulk_bytes.load(), 8u << 20);
  TestClient p;
  ASSERT_EQ(p.connect(server_.port()), 0);
  int answered = 0;
  for (int i = 0; i < 200; ++i) {
    if (!p.write_all(ping())) break;
    const auto f = p.read_frame(milliseconds(5000));
    if (!f || f->type != 0x01) break;
    ++answered;
  }
  const uint64_t during = bulk_bytes.load();
  EXPECT_EQ(answered, 200);
  EXPECT_EQ(bulk_done.load(), 0) << "a bulk transfer ended";
  stop = true;
  p.close();
  for (auto& t : bulk) t.join();
  EXPECT_GT(bulk_bytes.load(), during);
}

// --accept-rate: a burst of connects is accepted no faster than the rate (the rest wait in
// the listen backlog; none is refused or lost), each pause is counted as an accept_rate
// action, and an open connection is answered meanwhile.
TEST_P(OverloadTest, AcceptRateLeavesAConnectBurstInTheBacklog) {
  constexpr double kRate = 20;  // per second; the bucket holds at most max(1, kRate / 10)
  start({"--threads", "1", "--accept-rate", "20"});
  TestClient first;
  ASSERT_EQ(first.connect(server_.port()), 0);
  ASSERT_TRUE(first.write_all(ping()));
  ASSERT_TRUE(first.read_frame().has_value());
  const double accepted_before = scrape()["c10m_accept_total"];
  const auto t0 = Clock::now();
  std::vector<TestClient> burst(40);
  for (auto& c : burst) {
    ASSERT_EQ(c.connect(server_.port()), 0);  // completes in the backlog
    ASSERT_TRUE(c.write_all(ping()));
  }
  std::this_thread::sleep_for(milliseconds(500));
  // The open connection is served while the burst waits.
  ASSERT_TRUE(first.write_all(ping()));
  const auto pong = first.read_frame(milliseconds(5000));
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->type, 0x01);
  Samples s = scrape();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_LE(s["c10m_accept_total"] - accepted_before, kRate / 10 + kRate * elapsed + 1)
      << "accepted faster than --accept-rate in " << elapsed << " s";
  EXPECT_GT(s[action_key("accept_rate")], 0);
  for (size_t i = 0; i < burst.size(); ++i) {
    const auto f = burst[i].read_frame(milliseconds(15000));
    ASSERT_TRUE(f.has_value()) << "connection " << i << " never served";
    EXPECT_EQ(f->type, 0x01);
  }
  s = scrape();
  EXPECT_EQ(s["c10m_accept_total"] - accepted_before, burst.size());
  EXPECT_EQ(s["c10m_overloaded_total"], 0);
}

INSTANTIATE_TEST_SUITE_P(Engines, OverloadTest, ::testing::Values("epoll", "thread", "uring"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace c10m::test
