// Large transfers on the real server, every engine: the zero-copy send paths
// (--fetch-send writev|sendfile|zerocopy) put exactly the copy path's bytes on the wire,
// --ingest trunc answers every SINK/CHUNK, a steady load does not allocate per request
// (c10m_allocations_total), and a reader that stops is dropped by --write-timeout while
// the others stay served with bounded server memory. Behaviour only, bounded waits.
#include <gtest/gtest.h>
#include <unistd.h>

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

using std::chrono::milliseconds;

const char* const kSendModes[] = {"copy", "writev", "sendfile", "zerocopy"};

/// A temporary file of `n` bytes (byte i = (i * 31 + i / 256 + seed) mod 256).
struct ContentFile {
  ContentFile(size_t n, uint8_t seed) : bytes(n) {
    for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(i * 31 + i / 256 + seed);
    char tmpl[] = "/tmp/c10m-bigdata-XXXXXX";
    const int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, bytes.data(), n), static_cast<ssize_t>(n));
    close(fd);
    path = tmpl;
  }
  ~ContentFile() { unlink(path.c_str()); }
  Bytes bytes;
  std::string path;
};

/// Reads one FETCH's answer and checks it against `content` (wrapping), chunk by chunk.
::testing::AssertionResult read_fetch(TestClient& c, const Bytes& content, uint64_t total,
                                      uint32_t chunk) {
  uint64_t off = 0;
  for (;;) {
    auto f = c.read_frame(milliseconds(10000));
    if (!f) return ::testing::AssertionFailure() << "no frame at offset " << off;
    if (f->type != 0x06) return ::testing::AssertionFailure() << "type " << int(f->type);
    if (f->payload.empty()) break;
    const uint64_t want = std::min<uint64_t>(chunk, total - off);
    if (f->payload.size() != want)
      return ::testing::AssertionFailure()
             << "piece of " << f->payload.size() << " at " << off << ", expected " << want;
    for (size_t i = 0; i < f->payload.size(); ++i) {
      if (f->payload[i] != content[(off + i) % content.size()])
        return ::testing::AssertionFailure() << "byte " << off + i << " differs";
    }
    off += f->payload.size();
  }
  if (off != total) return ::testing::AssertionFailure() << "got " << off << " of " << total;
  return ::testing::AssertionSuccess();
}

/// The c10m_allocations_total sample, whatever its hook label; -1 when absent.
double allocations(const std::map<std::string, double>& s) {
  for (const auto& [k, v] : s)
    if (k.rfind("c10m_allocations_total{", 0) == 0) return v;
  return -1;
}

class BigDataTest : public ::testing::TestWithParam<std::string> {
 protected:
  void start(std::vector<std::string> args) {
    args.insert(args.begin(), {"--engine", GetParam()});
    ASSERT_TRUE(server_.start(args)) << server_.stderr_text();
  }
  uint16_t metrics_port() {
    const std::string err = server_.stderr_text();
    const size_t at = err.find("metrics on 127.0.0.1:");
    EXPECT_NE(at, std::string::npos) << err;
    return at == std::string::npos ? 0 : static_cast<uint16_t>(std::stoi(err.substr(at + 21)));
  }
  void SetUp() override {
    if (const std::string why = engine_skip_reason(GetParam()); !why.empty()) GTEST_SKIP() << why;
  }
  void TearDown() override { expect_clean_exit(server_); }
  // The io_uring engine takes --fetch-send copy|writev and --ingest read only.
  bool uring() const { return GetParam() == "uring"; }
  TestClient connect() {
    TestClient c;
    EXPECT_EQ(c.connect(server_.port()), 0);
    return c;
  }
  ServerProcess server_;
};

// Sizes that do not divide the chunk, a file shorter than one chunk, wraps at the end of
// the file, partial sends (a small receive buffer), several FETCHes pipelined on one
// connection: every --fetch-send mode answers with the file's bytes.
TEST_P(BigDataTest, FetchFromAFileIsByteIdenticalInEverySendMode) {
  const ContentFile files[] = {{7, 1}, {16385, 2}, {100003, 3}};
  for (const ContentFile& file : files) {
    for (const char* mode : kSendModes) {
      if (uring() && std::string(mode) != "copy" && std::string(mode) != "writev") continue;
      SCOPED_TRACE(std::string(mode) + " file " + std::to_string(file.bytes.size()));
      ServerProcess server;
      ASSERT_TRUE(
          server.start({"--engine", GetParam(), "--fetch-file", file.path, "--fetch-send", mode,
                        "--write-queue", "64KiB", "--fetch-ref-min", "1", "--metrics-addr", "off"}))
          << server.stderr_text();
      TestClient c;
      ASSERT_EQ(c.connect(server.port()), 0);
      c.set_rcvbuf(32 * 1024);
      struct Fetch {
        uint64_t total;
        uint32_t chunk;
      };
      const Fetch fetches[] = {{0, 5},         {1, 65535}, {300001, 65535}, {250000, 16384},
                               {100000, 4096}, {12345, 7}, {65535, 65535},  {3 * 16385 + 1, 16384}};
      Bytes req;
      for (const Fetch& f : fetches) req = cat({req, fetch(f.total, f.chunk)});
      req = cat({req, ping()});
      ASSERT_TRUE(c.write_all(req));
      for (const Fetch& f : fetches)
        ASSERT_TRUE(read_fetch(c, file.bytes, f.total, f.chunk))
            << "total " << f.total << " chunk " << f.chunk;
      auto pong = c.read_frame();
      ASSERT_TRUE(pong.has_value());
      EXPECT_EQ(pong->type, 0x01);
      c.close();
      expect_clean_exit(server);
    }
  }
}

// The same bytes by sendfile whatever the write sizes: a reader that takes a little at a
// time makes every send partial.
TEST_P(BigDataTest, SendfileSurvivesPartialSends) {
  if (uring()) GTEST_SKIP() << "no sendfile in the io_uring engine";
  const ContentFile file(70001, 9);
  start({"--fetch-file", file.path, "--fetch-send", "sendfile", "--sndbuf", "8KiB",
         "--metrics-addr", "off"});
  TestClient c = connect();
  ASSERT_TRUE(c.write_all(fetch(2'000'000, 65535)));
  EXPECT_TRUE(read_fetch(c, file.bytes, 2'000'000, 65535));
}

// --ingest trunc: large SINK and CHUNK payloads are dropped in the kernel, small ones are
// read; every request is answered in order, and the discarded bytes are counted.
TEST_P(BigDataTest, IngestTruncAnswersEverySinkAndChunk) {
  if (uring()) GTEST_SKIP() << "no --ingest trunc in the io_uring engine";
  start({"--ingest", "trunc", "--metrics-addr", "127.0.0.1:0"});
  TestClient c = connect();
  Bytes req, want;
  const uint32_t piece = 65535;
  const uint64_t total = 10 * uint64_t{piece} + 1234;
  req = cat({ping(), sink(50000), stream(total, piece)});
  want = cat({ping(), frame(0x03), frame(0x04)});
  for (uint64_t off = 0; off < total; off += piece) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(piece, total - off));
    for (const Bytes& b : {chunk(k), sink(k % 3 == 0 ? 10 : 20000), echo("x")})
      req.insert(req.end(), b.begin(), b.end());
    for (const Bytes& b : {frame(0x05), frame(0x03), echo("x")})
      want.insert(want.end(), b.begin(), b.end());
  }
  req = cat({req, ping()});
  want = cat({want, ping()});
  ASSERT_TRUE(c.write_all(req));
  EXPECT_EQ(c.read_bytes(want.size(), milliseconds(10000)), want);
  // The thread engine adds its counters to the shared block after each I/O batch: the
  // client may see the last reply first.
  std::map<std::string, double> s;
  for (int i = 0; i < 200; ++i) {
    s = scrape_metrics(metrics_port());
    if (s["c10m_bytes_in_total"] == static_cast<double>(req.size())) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_GT(s["c10m_ingest_discarded_bytes_total"], 0);
  EXPECT_EQ(s["c10m_bytes_in_total"], static_cast<double>(req.size()));
}

// Thousands of requests of every type on a steady connection move c10m_allocations_total
// by no more than an idle scrape does (the scrape itself allocates): the request path does
// not allocate per request.
TEST_P(BigDataTest, SteadyLoadDoesNotAllocatePerRequest) {
  start({"--metrics-addr", "127.0.0.1:0", "--fetch-send", "writev"});
  const uint16_t mport = metrics_port();
  ASSERT_NE(mport, 0);
  if (allocations(scrape_metrics(mport)) < 0)
    GTEST_SKIP() << "no allocator hook in this server build";
  TestClient c = connect();
  const Bytes payload64(64, 1), payload4k(4096, 2), payload64k(65535, 3);
  auto batch = [&](int n) {
    const Bytes one =
        cat({ping(), frame(0x02, payload64), frame(0x02, payload4k), frame(0x02, payload64k),
             sink(16384), stream(32768, 16384), chunk(16384), chunk(16384), fetch(100000, 16384)});
    Bytes req;
    req.reserve(one.size() * static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) req.insert(req.end(), one.begin(), one.end());
    uint64_t want_bytes = 0;
    for (int i = 0; i < n; ++i)
      want_bytes += 3 + (3 + 64) + (3 + 4096) + (3 + 65535) + 3 + 3 + 3 + 3 + (100000 + 7 * 3 + 3);
    std::thread writer([&] { EXPECT_TRUE(c.write_all(req)); });
    const Bytes got = c.read_bytes(want_bytes, milliseconds(30000));
    writer.join();
    EXPECT_EQ(got.size(), want_bytes);
  };
  batch(20);  // warm the pools and the kernel buffers
  const double a0 = allocations(scrape_metrics(mport));
  const double a1 = allocations(scrape_metrics(mport));
  const double per_scrape = a1 - a0;
  batch(300);  // 2,700 requests, 33 MB each way
  const double a2 = allocations(scrape_metrics(mport));
  const double during = a2 - a1 - per_scrape;
  std::printf("allocations: %.0f per idle scrape, %.0f more while serving 2,700 requests\n",
              per_scrape, during);
  EXPECT_LT(during, 100) << "per scrape " << per_scrape << ", total " << (a2 - a1);
}

// A reader that stops reading in the middle of a large FETCH is dropped by the write
// timeout; another connection keeps getting its FETCHes at full size meanwhile, and the
// server's memory stays bounded (by reference: no copies are queued for the slow one).
TEST_P(BigDataTest, StoppedReaderIsDroppedWhileOthersStream) {
  start({"--write-timeout", "1s", "--metrics-addr", "127.0.0.1:0"});
  const uint64_t rss_start = server_.rss_kib();
  TestClient slow = connect();
  slow.set_rcvbuf(64 * 1024);
  ASSERT_TRUE(slow.write_all(fetch(uint64_t{4} << 30, 65535)));  // 4 GiB
  ASSERT_EQ(slow.read_bytes(100000).size(), 100000u);            // reads a little, then stops
  TestClient fast = connect();
  const Bytes pattern = [] {
    Bytes b(251);
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i);
    return b;
  }();
  const auto until = Clock::now() + milliseconds(2500);
  int fetches = 0;
  while (Clock::now() < until) {
    ASSERT_TRUE(fast.write_all(fetch(4 << 20, 65535)));
    ASSERT_TRUE(read_fetch(fast, pattern, 4 << 20, 65535));
    ++fetches;
  }
  EXPECT_GT(fetches, 2);
  uint64_t discarded = 0;
  EXPECT_TRUE(slow.wait_closed(milliseconds(10000), &discarded, uint64_t{256} << 20));
  const auto s = scrape_metrics(metrics_port());
  EXPECT_EQ(s.at("c10m_write_queue_drops_total"), 1);
  EXPECT_EQ(s.at("c10m_write_queue_bytes"), 0);
  const uint64_t bound_kib = kSanitized ? 512 * 1024 : 32 * 1024;
  EXPECT_LT(server_.rss_kib(), rss_start + bound_kib);
}

INSTANTIATE_TEST_SUITE_P(Engines, BigDataTest, ::testing::Values("epoll", "thread", "uring"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace c10m::test
