// Integration tests over real loopback sockets, run against the c10m-server binary for
// every engine and for its default configuration, no --engine flag (INSTANTIATE_TEST_SUITE_P).
// Behaviour only; every wait is bounded with generous limits, no timing goals.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_client.h"
#include "test_util.h"

namespace c10m::test {
namespace {

using std::chrono::milliseconds;

class ServerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (const std::string why = engine_skip_reason(GetParam()); !why.empty()) GTEST_SKIP() << why;
  }
  /// Starts the server with the engine under test and `args`.
  void start(std::vector<std::string> args = {}, uint64_t nofile = 0) {
    const std::vector<std::string> e = engine_args(GetParam());
    args.insert(args.begin(), e.begin(), e.end());
    ASSERT_TRUE(server_.start(args, nofile)) << server_.stderr_text();
  }
  // Every server ends with a clean drain (exit 0; under ASan also no leak) and no
  // sanitizer report on its stderr.
  void TearDown() override { expect_clean_exit(server_); }
  TestClient connect() {
    TestClient c;
    EXPECT_EQ(c.connect(server_.port()), 0);
    return c;
  }
  static void expect_frame(TestClient& c, uint8_t type, const Bytes& payload = {}) {
    auto f = c.read_frame();
    ASSERT_TRUE(f.has_value()) << "no frame";
    EXPECT_EQ(f->type, type);
    EXPECT_EQ(f->payload, payload);
  }
  static void expect_error(TestClient& c, uint8_t code) {
    auto f = c.read_frame();
    ASSERT_TRUE(f.has_value()) << "no ERROR frame";
    EXPECT_EQ(f->type, 0xFF);
    EXPECT_EQ(f->error_code(), code);
    EXPECT_TRUE(c.wait_closed()) << "connection not closed after ERROR";
  }

  ServerProcess server_;
};

// A mix of every request type, and the exact bytes the server must answer.
Bytes mixed_requests() {
  return cat({ping(), echo("hello"), sink(100), stream(10, 4), chunk(4), chunk(4), chunk(2),
              fetch(20, 7), echo(""), fetch(0, 5), ping()});
}
Bytes mixed_replies() {
  Bytes data7a, data7b, data6;
  for (int i = 0; i < 7; ++i) data7a.push_back(static_cast<uint8_t>(i));
  for (int i = 7; i < 14; ++i) data7b.push_back(static_cast<uint8_t>(i));
  for (int i = 14; i < 20; ++i) data6.push_back(static_cast<uint8_t>(i));
  return cat({ping(), echo("hello"), frame(0x03), frame(0x04), frame(0x05), frame(0x05),
              frame(0x05), frame(0x06, data7a), frame(0x06, data7b), frame(0x06, data6),
              frame(0x06), echo(""), frame(0x06), ping()});
}

TEST_P(ServerTest, OneBytePerWriteGetsTheSameRepliesAsOneWrite) {
  start();
  const Bytes req = mixed_requests();
  const Bytes want = mixed_replies();
  TestClient whole = connect();
  ASSERT_TRUE(whole.write_all(req));
  EXPECT_EQ(whole.read_bytes(want.size()), want);
  TestClient bytewise = connect();
  ASSERT_TRUE(bytewise.write_bytewise(req));
  EXPECT_EQ(bytewise.read_bytes(want.size()), want);
}

TEST_P(ServerTest, TuningFlagsKeepTheProtocolIntact) {
  // One-byte reads, no pooling, no TCP_NODELAY, two SO_REUSEPORT loops, tiny write queue.
  start({"--threads", "2", "--reuseport", "--pool=false", "--readbuf", "1", "--nodelay=false",
         "--write-queue", "16", "--rcvbuf", "64KiB", "--sndbuf", "64KiB"});
  const Bytes req = mixed_requests();
  const Bytes want = mixed_replies();
  std::vector<TestClient> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(connect());
    ASSERT_TRUE(clients.back().write_all(req));
  }
  for (auto& c : clients) EXPECT_EQ(c.read_bytes(want.size()), want);
}

TEST_P(ServerTest, TenFramesInOneWrite) {
  start();
  TestClient c = connect();
  Bytes req, want;
  for (int i = 0; i < 10; ++i) {
    const Bytes f = i % 2 == 0 ? ping() : echo("frame " + std::to_string(i));
    req.insert(req.end(), f.begin(), f.end());
    want.insert(want.end(), f.begin(), f.end());
  }
  ASSERT_TRUE(c.write_all(req));
  EXPECT_EQ(c.read_bytes(want.size()), want);
}

TEST_P(ServerTest, OversizeHeaderGetsFrameTooLargeWithoutPayload) {
  start({"--max-frame", "100"});
  TestClient c = connect();
  ASSERT_TRUE(c.write_all(Bytes{0x02, 0x00, 101}));  // header only: ECHO of 101 bytes
  expect_error(c, 0x01);
}

TEST_P(ServerTest, EveryErrorCode) {
  start({"--max-frame", "1000", "--idle-timeout", "300ms", "--max-conns", "3"});
  {
    TestClient c = connect();
    ASSERT_TRUE(c.write_all(cat({ping(), Bytes{0x03, 0x10, 0x00}})));  // SINK 4096 > 1000
    expect_frame(c, 0x01);
    expect_error(c, 0x01);
  }
  {
    TestClient c = connect();
    ASSERT_TRUE(c.write_all(Bytes{0x07, 0x00, 0x00}));
    expect_error(c, 0x02);
  }
  {
    TestClient c = connect();
    ASSERT_TRUE(c.write_all(Bytes{0x01, 0x00, 0x01, 0x00}));  // PING with a payload
    expect_error(c, 0x03);
  }
  {
    TestClient c = connect();
    ASSERT_TRUE(c.write_all(chunk(4)));  // CHUNK with no open stream
    expect_error(c, 0x04);
  }
  {
    TestClient c = connect();
    ASSERT_TRUE(c.write_all(fetch(10, 0)));  // chunk 0
    expect_error(c, 0x04);
  }
  {
    TestClient c = connect();  // says nothing: idle timeout
    expect_error(c, 0x05);
  }
  {
    // --max-conns 3: three held, the fourth is refused. (Wait until the server has
    // closed the earlier ones: they were closed on its side already.)
    std::vector<TestClient> held;
    for (int i = 0; i < 3; ++i) {
      held.push_back(connect());
      ASSERT_TRUE(held.back().write_all(ping()));
      expect_frame(held.back(), 0x01);
    }
    TestClient c = connect();
    expect_error(c, 0x06);
  }
}

TEST_P(ServerTest, StreamAndFetch) {
  start({"--max-frame", "1000"});
  TestClient c = connect();
  // STREAM of 2500 in chunks of 1000, with a PING in between.
  ASSERT_TRUE(c.write_all(cat({stream(2500, 1000), chunk(1000), ping(), chunk(1000), chunk(500)})));
  for (uint8_t t : {0x04, 0x05, 0x01, 0x05, 0x05}) expect_frame(c, t);
  // Zero-total STREAM opens and closes at once: a CHUNK after it is BAD_STREAM later.
  ASSERT_TRUE(c.write_all(stream(0, 10)));
  expect_frame(c, 0x04);
  // FETCH: pattern content, pieces of `chunk`, short last piece, end frame.
  const uint64_t total = 100000;
  ASSERT_TRUE(c.write_all(cat({fetch(total, 999), fetch(0, 7), ping()})));
  uint64_t got = 0;
  for (;;) {
    auto f = c.read_frame();
    ASSERT_TRUE(f.has_value());
    ASSERT_EQ(f->type, 0x06);
    if (f->payload.empty()) break;
    const uint64_t left = total - got;
    ASSERT_EQ(f->payload.size(), std::min<uint64_t>(999, left));
    for (size_t i = 0; i < f->payload.size(); ++i)
      ASSERT_EQ(f->payload[i], (got + i) % 251) << "byte " << got + i;
    got += f->payload.size();
  }
  EXPECT_EQ(got, total);
  expect_frame(c, 0x06);  // FETCH total 0: only the end frame
  expect_frame(c, 0x01);
}

TEST_P(ServerTest, TenThousandPipelinedRequestsBeforeReading) {
  start();
  TestClient c = connect();
  Bytes req, want;
  for (int i = 0; i < 10000; ++i) {
    const Bytes f = i % 3 == 0 ? ping() : echo("req" + std::to_string(i));
    req.insert(req.end(), f.begin(), f.end());
  }
  want = req;  // PING and ECHO replies are byte-identical to the requests
  std::atomic<bool> written{false};
  std::thread writer([&] { written = c.write_all(req); });
  writer.join();  // everything written before anything is read
  ASSERT_TRUE(written.load());
  EXPECT_EQ(c.read_bytes(want.size(), milliseconds(10000)), want);
}

TEST_P(ServerTest, HalfCloseGetsAllRepliesThenEof) {
  start();
  TestClient c = connect();
  ASSERT_TRUE(c.write_all(cat({ping(), echo("a"), fetch(5000, 1000), sink(10)})));
  c.shutdown_write();
  expect_frame(c, 0x01);
  expect_frame(c, 0x02, Bytes{'a'});
  for (int i = 0; i < 5; ++i) {
    auto f = c.read_frame();
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->payload.size(), 1000u);
  }
  expect_frame(c, 0x06);
  expect_frame(c, 0x03);
  EXPECT_TRUE(c.wait_closed());
  EXPECT_EQ(c.buffered(), 0u);
}

TEST_P(ServerTest, IdleTimeout) {
  start({"--idle-timeout", "300ms"});
  TestClient c = connect();
  ASSERT_TRUE(c.write_all(ping()));
  expect_frame(c, 0x01);
  expect_error(c, 0x05);
}

TEST_P(ServerTest, FrameTimeout) {
  start({"--idle-timeout", "0", "--frame-timeout", "300ms"});
  TestClient c = connect();
  ASSERT_TRUE(c.write_all(Bytes{0x02, 0x00}));  // a header that never completes
  expect_error(c, 0x05);
}

TEST_P(ServerTest, NonReaderIsDroppedWhileOthersAreServed) {
  start({"--write-timeout", "1s"});
  const uint64_t rss_start = server_.rss_kib();
  TestClient slow = connect();
  slow.set_rcvbuf(64 * 1024);
  ASSERT_TRUE(slow.write_all(fetch(uint64_t{1} << 30, 65535)));  // 1 GiB, never read
  TestClient fast = connect();
  const auto until = Clock::now() + milliseconds(2500);
  int pongs = 0;
  while (Clock::now() < until) {
    ASSERT_TRUE(fast.write_all(ping()));
    expect_frame(fast, 0x01);
    ++pongs;
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_GT(pongs, 10);
  // The server dropped the non-reader (RST): reading now ends with reset or EOF long
  // before 1 GiB, with at most the kernel buffers' worth of data.
  uint64_t discarded = 0;
  EXPECT_TRUE(slow.wait_closed(milliseconds(10000), &discarded, uint64_t{256} << 20));
  EXPECT_LT(discarded, uint64_t{256} << 20);
  const uint64_t rss_end = server_.rss_kib();
  const uint64_t bound_kib = kSanitized ? 512 * 1024 : 64 * 1024;  // sanitizers: shadow, quarantine
  EXPECT_LT(rss_end, rss_start + bound_kib) << "start " << rss_start << " end " << rss_end;
  ASSERT_TRUE(fast.write_all(ping()));
  expect_frame(fast, 0x01);
}

/// The kernel queues of the server's end of `c`, from /proc/net/tcp: the send queue (written,
/// not yet acknowledged) and the receive queue (received, not yet read); -1 if not found.
struct KernelQueues {
  int64_t send = -1;
  int64_t receive = -1;
};
KernelQueues server_queues(uint16_t server_port, const TestClient& c) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(c.fd(), reinterpret_cast<sockaddr*>(&a), &len) != 0) return {};
  char local[16], remote[16];
  std::snprintf(local, sizeof local, ":%04X", server_port);
  std::snprintf(remote, sizeof remote, ":%04X", ntohs(a.sin_port));
  std::ifstream in("/proc/net/tcp");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, loc, rem, st, queues;
    f >> sl >> loc >> rem >> st >> queues;
    if (loc.size() > 5 && rem.size() > 5 && loc.substr(loc.size() - 5) == local &&
        rem.substr(rem.size() - 5) == remote) {
      const size_t colon = queues.find(':');
      return {std::stoll(queues.substr(0, colon), nullptr, 16),
              std::stoll(queues.substr(colon + 1), nullptr, 16)};
    }
  }
  return {};
}

TEST_P(ServerTest, NotsentLowatBoundsWhatTheKernelQueuesForANonReader) {
  // A peer that asks for 1 GiB and never reads (a 4 KiB receive buffer): without the flag
  // the server's kernel send queue grows to the autotuned send buffer (2.8-4.1 MB on this
  // box's loopback, every engine); with --notsent-lowat 16KiB the kernel takes one 64 KiB
  // segment (it checks the limit before each segment), on top of the peer's small window.
  start({"--notsent-lowat", "16KiB", "--write-timeout", "0"});
  TestClient slow = connect();
  slow.set_rcvbuf(4096);
  ASSERT_TRUE(slow.write_all(fetch(uint64_t{1} << 30, 65535)));
  std::this_thread::sleep_for(milliseconds(500));
  const int64_t queued = server_queues(server_.port(), slow).send;
  ASSERT_GE(queued, 0) << "the server's socket is not in /proc/net/tcp";
  std::printf("  the server's kernel send queue: %lld B\n", static_cast<long long>(queued));
  EXPECT_GT(queued, 0);
  EXPECT_LT(queued, 160 << 10);
  // The connection still works: a second client is served.
  TestClient fast = connect();
  ASSERT_TRUE(fast.write_all(ping()));
  expect_frame(fast, 0x01);
}

TEST_P(ServerTest, TrickledFrameWaitsInTheKernelUntilItCanComplete) {
  // An ECHO of 1,000 bytes whose first 10 came at once, then 50 bytes one segment at a time
  // (a slowloris peer). With --rcvlowat (default 16KiB) the server is not woken for them:
  // they wait unread in its kernel receive queue until the frame can complete. With
  // --rcvlowat 0 it reads each one as it comes.
  const Bytes frame = echo(std::string(1000, 'e'));
  // Polls the server's receive queue until it equals `want` (bounded: a slow sanitized
  // server may take a while to read); returns the last value seen.
  auto unread_becomes = [](ServerProcess& server, const TestClient& c, int64_t want) {
    int64_t unread = -1;
    for (int i = 0; i < 100 && unread != want; ++i) {
      if (i > 0) std::this_thread::sleep_for(milliseconds(50));
      unread = server_queues(server.port(), c).receive;
    }
    return unread;
  };
  auto trickle = [&](ServerProcess& server, int64_t want_unread) {
    TestClient c;
    EXPECT_EQ(c.connect(server.port()), 0);
    EXPECT_TRUE(c.write_all(Bytes(frame.begin(), frame.begin() + 13)));
    EXPECT_EQ(unread_becomes(server, c, 0), 0) << "the server never read the frame's start";
    std::this_thread::sleep_for(milliseconds(50));  // and has set the mark after that read
    for (size_t i = 13; i < 63; ++i) {
      EXPECT_TRUE(c.write_all(Bytes{frame[i]}));
      std::this_thread::sleep_for(milliseconds(2));
    }
    std::this_thread::sleep_for(milliseconds(200));
    EXPECT_EQ(unread_becomes(server, c, want_unread), want_unread);
    // The rest completes the frame: answered in full, and the next frames are not held
    // back (a PING; an empty ECHO whose header comes in two pieces).
    EXPECT_TRUE(c.write_all(Bytes(frame.begin() + 63, frame.end())));
    expect_frame(c, 0x02, Bytes(frame.begin() + 3, frame.end()));
    EXPECT_TRUE(c.write_all(ping()));
    expect_frame(c, 0x01);
    EXPECT_TRUE(c.write_all(Bytes{0x02, 0x00}));
    std::this_thread::sleep_for(milliseconds(50));
    EXPECT_TRUE(c.write_all(Bytes{0x00}));
    expect_frame(c, 0x02, Bytes{});
  };
  start();
  trickle(server_, 50);  // the trickled bytes wait unread in the kernel
  ServerProcess per_segment;
  std::vector<std::string> per_segment_args = engine_args(GetParam());
  per_segment_args.insert(per_segment_args.end(), {"--rcvlowat", "0"});
  ASSERT_TRUE(per_segment.start(per_segment_args)) << per_segment.stderr_text();
  trickle(per_segment, 0);  // each segment is read as it comes
  expect_clean_exit(per_segment);
}

TEST_P(ServerTest, DrainAnswersWholeRequestsAndForceClosesTheRest) {
  start({"--drain-timeout", "1s"});
  TestClient a = connect();  // will hold a half-received request at the deadline
  TestClient b = connect();  // closes during the drain
  ASSERT_TRUE(b.write_all(ping()));
  expect_frame(b, 0x01);
  // a: a FETCH whose replies are in flight, a PING, then half an ECHO.
  const uint64_t total = 200000;
  ASSERT_TRUE(a.write_all(cat({fetch(total, 1000), ping(), Bytes{0x02, 0x00, 0x0a, 'x', 'y'}})));
  std::this_thread::sleep_for(milliseconds(200));  // let the server receive it all
  server_.signal(SIGTERM);
  ASSERT_TRUE(server_.wait_stderr("draining"));
  // b sees GOAWAY, is still served, then closes.
  expect_frame(b, 0xFE);
  ASSERT_TRUE(b.write_all(echo("after goaway")));
  expect_frame(b, 0x02, Bytes{'a', 'f', 't', 'e', 'r', ' ', 'g', 'o', 'a', 'w', 'a', 'y'});
  b.close();
  // New connections are refused.
  {
    TestClient late;
    bool refused = false;
    for (int i = 0; i < 50 && !refused; ++i) {
      refused = late.connect(server_.port()) == -ECONNREFUSED;
      if (!refused) std::this_thread::sleep_for(milliseconds(20));
    }
    EXPECT_TRUE(refused);
  }
  // a: every frame parses (GOAWAY at a frame boundary), the FETCH and PING are answered
  // in full, GOAWAY comes exactly once, the half ECHO never, then the connection closes.
  uint64_t data = 0;
  int goaways = 0, ends = 0, pongs = 0;
  for (;;) {
    auto f = a.read_frame(milliseconds(10000));
    if (!f) break;
    if (f->type == 0xFE) {
      ++goaways;
    } else if (f->type == 0x06) {
      if (f->payload.empty()) ++ends;
      data += f->payload.size();
    } else if (f->type == 0x01) {
      ++pongs;
    } else {
      ADD_FAILURE() << "unexpected frame type " << int{f->type};
    }
  }
  EXPECT_EQ(goaways, 1);
  EXPECT_EQ(data, total);
  EXPECT_EQ(ends, 1);
  EXPECT_EQ(pongs, 1);
  EXPECT_EQ(server_.wait_exit(), 0);
  const std::string err = server_.stderr_text();
  EXPECT_NE(err.find("drain: open=2 closed_by_peer=1 force_closed=1 in_flight=1"),
            std::string::npos)
      << err;
}

TEST_P(ServerTest, AcceptAtTheFdLimitDoesNotSpin) {
  // One loop: its limit is the process fd limit (epoll, thread) or its direct-descriptor
  // table, which the fd limit sizes (uring).
  start({"--threads", "1"}, 64);
  EXPECT_TRUE(server_.wait_stderr("fd limit 64"));
  TestClient first = connect();
  ASSERT_TRUE(first.write_all(ping()));
  expect_frame(first, 0x01);
  // More connections than the server has fds: the kernel completes them (backlog), the
  // server's accept() fails with EMFILE.
  std::vector<TestClient> flood(100);
  for (auto& c : flood) ASSERT_EQ(c.connect(server_.port()), 0);
  ASSERT_TRUE(server_.wait_stderr(effective_engine(GetParam()) == "uring"
                                      ? "direct-descriptor table of a loop is full"
                                      : "EMFILE"));
  const double cpu0 = server_.cpu_seconds();
  std::this_thread::sleep_for(milliseconds(1000));
  const double cpu1 = server_.cpu_seconds();
  EXPECT_LT(cpu1 - cpu0, 0.3) << "accept loop spins at the fd limit";
  ASSERT_TRUE(first.write_all(ping()));
  expect_frame(first, 0x01);
  // Freeing fds lets the backlog in again.
  flood.clear();
  TestClient later;
  ASSERT_EQ(later.connect(server_.port()), 0);
  ASSERT_TRUE(later.write_all(ping()));
  auto f = later.read_frame(milliseconds(10000));
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->type, 0x01);
}

TEST_P(ServerTest, PortInUseIsAClearError) {
  start();
  ServerProcess second;
  std::vector<std::string> second_args = engine_args(GetParam());
  second_args.insert(second_args.end(), {"--addr", "127.0.0.1:" + std::to_string(server_.port())});
  EXPECT_FALSE(second.start(second_args));
  EXPECT_EQ(second.wait_exit(), 1);
  EXPECT_NE(second.stderr_text().find("is in use"), std::string::npos) << second.stderr_text();
}

// "default": no --engine flag (auto), the configuration a user gets.
INSTANTIATE_TEST_SUITE_P(Engines, ServerTest,
                         ::testing::Values("epoll", "thread", "uring", "default"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace c10m::test
