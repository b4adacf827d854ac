// The admin side port in-process: routes, status codes, a live scrape accepted by
// `promtool check metrics`, and a real Prometheus server scraping it.
#include "admin/admin_server.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "admin/http_get.h"
#include "admin/profiling.h"
#include "metrics/heap_counter_slots.h"
#include "test_util.h"

namespace c10m::admin {
namespace {

namespace fs = std::filesystem;

struct Harness {
  metrics::HeapCounterSlots slots{2};
  AdminServer server{AdminConfig{"127.0.0.1:0"}, &slots};
  Harness() {
    const std::string err = server.start();
    EXPECT_EQ(err, "");
  }
  HttpResponse get(const std::string& path) { return http_get("127.0.0.1", server.port(), path); }
};

using test::make_temp_dir;
using test::run_command;

TEST(AdminServer, ServesMetricsHealthAndPprofIndex) {
  Harness h;
  ASSERT_NE(h.server.port(), 0);
  h.slots.slot(0)->conns_opened.add(3);
  h.slots.slot(1)->bytes_in.add(77);

  const HttpResponse m = h.get("/metrics");
  ASSERT_EQ(m.status, 200) << m.error;
  EXPECT_EQ(m.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(m.body.find("\nc10m_conns_open 3\n"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("\nc10m_bytes_in_total 77\n"), std::string::npos);

  const HttpResponse hz = h.get("/healthz");
  EXPECT_EQ(hz.status, 200);
  EXPECT_EQ(hz.body, "ok\n");

  h.server.set_draining();
  const HttpResponse draining = h.get("/healthz");
  EXPECT_EQ(draining.status, 503);
  EXPECT_EQ(draining.body, "draining\n");
  EXPECT_EQ(h.get("/metrics").status, 200) << "metrics keep answering while draining";

  const HttpResponse idx = h.get("/debug/pprof/");
  EXPECT_EQ(idx.status, 200);
  EXPECT_NE(idx.body.find("profile?seconds="), std::string::npos);
  EXPECT_NE(idx.body.find("heap"), std::string::npos);

  EXPECT_EQ(h.get("/nope").status, 404);
}

TEST(AdminServer, ProfilesAnswerClearlyWhenGperftoolsIsNotLinked) {
  Harness h;
  // Test binaries do not link gperftools (the server does; see metrics_e2e_test).
  const HttpResponse heap = h.get("/debug/pprof/heap");
  if (heap_profiler_available()) {
    EXPECT_EQ(heap.status, 200);
  } else {
    EXPECT_EQ(heap.status, 501);
    EXPECT_NE(heap.body.find("tcmalloc"), std::string::npos) << heap.body;
  }
  EXPECT_EQ(h.get("/debug/pprof/profile?seconds=abc").status, 400);
  EXPECT_EQ(h.get("/debug/pprof/profile?seconds=0").status, 400);
  EXPECT_EQ(h.get("/debug/pprof/profile?seconds=100000").status, 400);
  if (!cpu_profiler_available()) {
    EXPECT_EQ(h.get("/debug/pprof/profile?seconds=1").status, 501);
  }
}

TEST(AdminServer, SecondServerOnTheSamePortFailsToStart) {
  Harness h;
  metrics::HeapCounterSlots slots(1);
  AdminServer other(AdminConfig{"127.0.0.1:" + std::to_string(h.server.port())}, &slots);
  EXPECT_NE(other.start(), "");
  AdminServer bad(AdminConfig{"not-an-address"}, &slots);
  EXPECT_NE(bad.start(), "");
}

TEST(AdminServer, StopIsIdempotentAndFreesThePort) {
  metrics::HeapCounterSlots slots(1);
  auto s = std::make_unique<AdminServer>(AdminConfig{"127.0.0.1:0"}, &slots);
  ASSERT_EQ(s->start(), "");
  const uint16_t port = s->port();
  s->stop();
  s->stop();
  EXPECT_NE(http_get("127.0.0.1", port, "/healthz", 1000).status, 200);
  AdminServer again(AdminConfig{"127.0.0.1:" + std::to_string(port)}, &slots);
  EXPECT_EQ(again.start(), "");
}

TEST(AdminServer, PromtoolAcceptsALiveScrape) {
  if (access("/usr/bin/promtool", X_OK) != 0)
    GTEST_SKIP() << "promtool not installed (Debian: prometheus)";
  Harness h;
  h.slots.slot(0)->observe_service(123'456);
  h.slots.slot(1)->frames[2].add(9);
  const HttpResponse m = h.get("/metrics");
  ASSERT_EQ(m.status, 200);
  const fs::path dir = make_temp_dir("promtool");
  const fs::path file = dir / "scrape.txt";
  std::ofstream(file) << m.body;
  std::string out;
  const int rc = run_command("/usr/bin/promtool check metrics < " + file.string(), &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out.find("problem"), std::string::npos) << out;  // lint findings are printed
  fs::remove_all(dir);
}

TEST(AdminServer, RealPrometheusScrapesIt) {
  if (!test::PrometheusProcess::installed()) GTEST_SKIP() << "prometheus not installed";
  Harness h;
  h.slots.slot(0)->conns_opened.add(45);
  h.slots.slot(1)->conns_closed.add(3);  // conns_open = 42

  test::PrometheusProcess prometheus;
  ASSERT_EQ(prometheus.start(h.server.port()), "");
  // Poll its query API until the scraped value shows up (bounded).
  test::PrometheusProcess::Sample s =
      prometheus.query_first("c10m_conns_open", std::chrono::seconds(60));
  if (s.found) {
    EXPECT_EQ(s.result["metric"]["job"], "c10m");
  }
  const std::string log_text = prometheus.stop();
  EXPECT_EQ(s.value, "42") << "last answer: " << s.last_body << "\nprometheus log:\n" << log_text;
}

}  // namespace
}  // namespace c10m::admin
