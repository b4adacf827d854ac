// End to end: the real c10m-server with --metrics-addr 127.0.0.1:0, driven with known
// traffic over raw sockets; its /metrics must equal that traffic, pass `promtool check
// metrics`, be scraped by a real Prometheus, and its profiles must parse in google-pprof.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
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

namespace fs = std::filesystem;
using admin::http_get;
using admin::HttpResponse;

class MetricsE2E : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (const std::string why = engine_skip_reason(GetParam()); !why.empty()) GTEST_SKIP() << why;
  }
  void start(std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"--engine", GetParam(), "--metrics-addr", "127.0.0.1:0"});
    ASSERT_TRUE(server_.start(args)) << server_.stderr_text();
    const std::string err = server_.stderr_text();
    const size_t at = err.find("metrics on 127.0.0.1:");
    ASSERT_NE(at, std::string::npos) << err;
    metrics_port_ = static_cast<uint16_t>(std::stoi(err.substr(at + 21)));
  }
  void TearDown() override { expect_clean_exit(server_); }
  HttpResponse get(const std::string& path, int timeout_ms = 5000) {
    return http_get("127.0.0.1", metrics_port_, path, timeout_ms);
  }
  Samples scrape() { return scrape_metrics(metrics_port_); }
  /// Scrapes until every expected value is there (the server counts a reply just after
  /// the kernel took it, so the client may see the bytes first). Bounded.
  Samples scrape_until(const Samples& want) {
    Samples got;
    const auto end = Clock::now() + milliseconds(10000);
    do {
      got = scrape();
      bool all = true;
      for (const auto& [k, v] : want) all = all && got.count(k) && got.at(k) == v;
      if (all) return got;
      std::this_thread::sleep_for(milliseconds(20));
    } while (Clock::now() < end);
    return got;
  }
  TestClient connect() {
    TestClient c;
    EXPECT_EQ(c.connect(server_.port()), 0);
    return c;
  }

  ServerProcess server_;
  uint16_t metrics_port_ = 0;
};

TEST_P(MetricsE2E, CountersEqualTheTrafficSent) {
  start({"--max-frame", "1000", "--frame-timeout", "500ms", "--max-conns", "3"});
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t connections = 0;

  // Well-formed requests of every type on one connection, replies checked byte-exact.
  {
    TestClient c = connect();
    ++connections;
    const Bytes pings = cat({ping(), ping(), ping(), ping(), ping(), ping(), ping()});  // 7
    const Bytes echos = cat({echo(std::string(100, 'e')), echo("abc"), echo("")});      // 3
    const Bytes rest = cat({sink(50), stream(10, 5), chunk(5), chunk(5), fetch(1000, 100)});
    const Bytes req = cat({pings, echos, rest});
    ASSERT_TRUE(c.write_all(req));
    sent += req.size();
    // 7 PONG + echoes + ACK + STREAM ACK + 2 CHUNK ACKs + FETCH: 10 x (3+100) + end frame.
    const size_t want = 7 * 3 + (103 + 6 + 3) + 3 + 3 + 2 * 3 + 10 * 103 + 3;
    const Bytes got = c.read_bytes(want);
    ASSERT_EQ(got.size(), want);
    received += got.size();
  }

  // One bad frame per error code the client can provoke on its own connection.
  struct Bad {
    const char* code;
    uint8_t value;
    Bytes bytes;
  };
  const std::vector<Bad> bad = {
      {"FRAME_TOO_LARGE", 0x01, {0x02, 0x07, 0xD0}},  // ECHO of 2000 > --max-frame 1000
      {"UNKNOWN_TYPE", 0x02, {0x42, 0x00, 0x00}},
      {"BAD_LENGTH", 0x03, {0x01, 0x00, 0x01}},  // PING with a payload (header only sent)
      {"BAD_STREAM", 0x04, {0x05, 0x00, 0x00}},  // CHUNK with no open stream
      {"TIMEOUT", 0x05, {0x01}},                 // a frame never completed: frame timeout
  };
  for (const Bad& b : bad) {
    TestClient c = connect();
    ++connections;
    ASSERT_TRUE(c.write_all(b.bytes));
    sent += b.bytes.size();
    const auto f = c.read_frame();
    ASSERT_TRUE(f.has_value()) << b.code;
    EXPECT_EQ(f->type, 0xFF) << b.code;
    EXPECT_EQ(f->error_code(), b.value) << b.code;
    received += 3 + f->payload.size();
    uint64_t more = 0;
    EXPECT_TRUE(c.wait_closed(milliseconds(5000), &more)) << b.code;
    received += more;
  }
  // Every connection so far is closed on both sides.
  scrape_until({{"c10m_conns_open", 0}});

  // conns_open follows opens and closes; the one over --max-conns gets OVERLOADED.
  std::vector<TestClient> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(connect());
    ++connections;
  }
  Samples s = scrape_until({{"c10m_conns_open", 3}});
  EXPECT_EQ(s["c10m_conns_open"], 3);
  {
    TestClient c = connect();
    ++connections;
    const auto f = c.read_frame();
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->error_code(), 0x06);
    received += 3 + f->payload.size();
    uint64_t more = 0;
    EXPECT_TRUE(c.wait_closed(milliseconds(5000), &more));
    received += more;
  }
  idle.pop_back();
  s = scrape_until({{"c10m_conns_open", 2}});
  EXPECT_EQ(s["c10m_conns_open"], 2);
  idle.clear();

  s = scrape_until({{"c10m_conns_open", 0},
                    {"c10m_bytes_in_total", static_cast<double>(sent)},
                    {"c10m_bytes_out_total", static_cast<double>(received)}});
  EXPECT_EQ(s["c10m_conns_open"], 0);
  EXPECT_EQ(s["c10m_bytes_in_total"], sent);
  EXPECT_EQ(s["c10m_bytes_out_total"], received);
  EXPECT_EQ(s["c10m_accept_total"], connections);
  EXPECT_EQ(s["c10m_conns_opened_total"], connections - 1);  // the refused one is not kept
  EXPECT_EQ(s["c10m_conns_closed_total"], connections - 1);
  EXPECT_EQ(s["c10m_frames_total{type=\"PING\"}"], 7);
  EXPECT_EQ(s["c10m_frames_total{type=\"ECHO\"}"], 3);
  EXPECT_EQ(s["c10m_frames_total{type=\"SINK\"}"], 1);
  EXPECT_EQ(s["c10m_frames_total{type=\"STREAM\"}"], 1);
  EXPECT_EQ(s["c10m_frames_total{type=\"CHUNK\"}"], 2);
  EXPECT_EQ(s["c10m_frames_total{type=\"FETCH\"}"], 1);
  for (const Bad& b : bad) {
    EXPECT_EQ(s[std::string("c10m_protocol_errors_total{code=\"") + b.code + "\"}"], 1) << b.code;
  }
  EXPECT_EQ(s["c10m_protocol_errors_total{code=\"OVERLOADED\"}"], 1);
  EXPECT_EQ(s["c10m_overloaded_total"], 1);
  EXPECT_EQ(s["c10m_timeouts_total{kind=\"frame\"}"], 1);
  EXPECT_EQ(s["c10m_timeouts_total{kind=\"idle\"}"], 0);
  EXPECT_EQ(s["c10m_timeouts_total{kind=\"write\"}"], 0);
  EXPECT_EQ(s["c10m_truncated_frames_total"], 0);
  EXPECT_EQ(s["c10m_write_queue_bytes"], 0);
  EXPECT_EQ(s["c10m_write_queue_drops_total"], 0);
  EXPECT_GE(s["c10m_frame_service_seconds_count"], 15);  // every request answered
  EXPECT_EQ(s["c10m_frame_service_seconds_count"],
            s["c10m_frame_service_seconds_bucket{le=\"+Inf\"}"]);
  EXPECT_EQ(s["c10m_worker_processes"], 1);
  EXPECT_GE(s["c10m_threads"], 2);
  EXPECT_GT(s["process_resident_memory_bytes"], 0);
  EXPECT_GE(s["process_open_fds"], 3);
  EXPECT_GT(s["c10m_allocator_bytes_in_use"], 0);
}

TEST_P(MetricsE2E, HealthzSaysDrainingOnceTheDrainStarts) {
  start({"--drain-timeout", "30s"});
  EXPECT_EQ(get("/healthz").status, 200);
  {
    TestClient c = connect();  // keeps the drain going until it closes
    ASSERT_TRUE(c.write_all(ping()));
    ASSERT_EQ(c.read_bytes(3).size(), 3u);
    server_.signal(SIGTERM);
    HttpResponse hz;
    const auto end = Clock::now() + milliseconds(10000);
    do {
      hz = get("/healthz");
      if (hz.status == 503) break;
      std::this_thread::sleep_for(milliseconds(20));
    } while (Clock::now() < end);
    EXPECT_EQ(hz.status, 503);
    EXPECT_EQ(hz.body, "draining\n");
    EXPECT_EQ(get("/metrics").status, 200);
  }
  // The peer closed: the drain ends and the server exits 0 on its own.
  EXPECT_EQ(server_.wait_exit(milliseconds(20000)), 0) << server_.stderr_text();
}

TEST_P(MetricsE2E, PromtoolAcceptsALiveScrape) {
  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool not installed";
  start();
  {
    TestClient c = connect();
    ASSERT_TRUE(c.write_all(cat({ping(), echo("x"), fetch(10, 3)})));
    ASSERT_EQ(c.read_bytes(3 + 4 + 4 * 3 + 10 + 3).size(), 32u);
  }
  const HttpResponse r = get("/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  const fs::path dir = make_temp_dir("promtool");
  std::ofstream(dir / "scrape.txt") << r.body;
  std::string out;
  EXPECT_EQ(run_command("/usr/bin/promtool check metrics < " + (dir / "scrape.txt").string(), &out),
            0)
      << out;
  fs::remove_all(dir);
  EXPECT_EQ(get("/healthz").body, "ok\n");
}

TEST_P(MetricsE2E, GooglePprofParsesTheHeapAndCpuProfiles) {
  if (access("/usr/bin/google-pprof", X_OK) != 0) GTEST_SKIP() << "google-pprof not installed";
  start();
  const fs::path dir = make_temp_dir("pprof");
  std::string out;

  // Heap: hold connections with a partial frame each (the bytes they keep live).
  std::vector<TestClient> held;
  for (int i = 0; i < 100; ++i) {
    held.push_back(connect());
    ASSERT_TRUE(held.back().write_all(Bytes{0x02, 0x00, 0x10, 'p'}));
  }
  scrape_until({{"c10m_conns_open", 100}});
  const HttpResponse heap = get("/debug/pprof/heap");
  if (kSanitized) {
    EXPECT_EQ(heap.status, 501) << "sanitizer builds link no tcmalloc";
  } else {
    ASSERT_EQ(heap.status, 200) << heap.body;
    EXPECT_EQ(heap.body.rfind("heap profile:", 0), 0u) << heap.body.substr(0, 300);
    EXPECT_NE(heap.body.find("heap_v2/"), std::string::npos);
    std::ofstream(dir / "heap.prof") << heap.body;
    const int rc = run_command(std::string("/usr/bin/google-pprof --text ") + C10M_SERVER_BIN +
                                   " " + (dir / "heap.prof").string(),
                               &out);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("Heap version 2"), std::string::npos) << out;
  }
  held.clear();

  // CPU: a 1-second profile while a client keeps the server busy.
  std::atomic<bool> stop{false};
  std::thread load([&] {
    TestClient c = connect();
    const Bytes burst = cat({ping(), ping(), ping(), ping(), echo(std::string(500, 'z'))});
    while (!stop) {
      if (!c.write_all(burst) || c.read_bytes(4 * 3 + 503).size() != 515) break;
    }
  });
  const HttpResponse cpu = get("/debug/pprof/profile?seconds=1", 15000);
  stop = true;
  load.join();
  ASSERT_EQ(cpu.status, 200) << cpu.body;
  ASSERT_GT(cpu.body.size(), 0u);
  std::ofstream(dir / "cpu.prof", std::ios::binary) << cpu.body;
  const int rc = run_command(std::string("/usr/bin/google-pprof --text ") + C10M_SERVER_BIN + " " +
                                 (dir / "cpu.prof").string(),
                             &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("Total: "), std::string::npos) << out;
  EXPECT_NE(out.find("samples"), std::string::npos) << out;
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Engines, MetricsE2E, ::testing::Values("epoll", "thread", "uring"),
                         [](const auto& info) { return info.param; });

TEST(MetricsE2EPrometheus, RealPrometheusScrapesTheServer) {
  if (!PrometheusProcess::installed()) GTEST_SKIP() << "prometheus not installed";
  ServerProcess server;
  ASSERT_TRUE(server.start({"--metrics-addr", "127.0.0.1:0"})) << server.stderr_text();
  const std::string err = server.stderr_text();
  const uint16_t metrics_port =
      static_cast<uint16_t>(std::stoi(err.substr(err.find("metrics on 127.0.0.1:") + 21)));
  std::vector<TestClient> open(5);
  for (auto& c : open) ASSERT_EQ(c.connect(server.port()), 0);

  PrometheusProcess prometheus;
  ASSERT_EQ(prometheus.start(metrics_port), "");
  const PrometheusProcess::Sample s =
      prometheus.query_first("c10m_conns_open", milliseconds(60000));
  const std::string log_text = prometheus.stop();
  EXPECT_EQ(s.value, "5") << "last answer: " << s.last_body << "\nprometheus log:\n" << log_text;
  open.clear();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(milliseconds(20000)), 0) << server.stderr_text();
}

}  // namespace
}  // namespace c10m::test
