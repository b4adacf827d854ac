// The admin side port in-process: routes, status codes, a live scrape accepted by
// `promtool check metrics`, and a real Prometheus server scraping it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "admin/admin_server.h"
#include "admin/http_get.h"
#include "admin/profiling.h"
#include "metrics/heap_counter_slots.h"
#include "sys/socket.h"

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

/// Runs a command, returns its exit status and combined output.
int run_command(const std::string& cmd, std::string* output) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  output->clear();
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

fs::path make_temp_dir(const char* tag) {
  char tmpl[128];
  snprintf(tmpl, sizeof tmpl, "/tmp/c10m-%s-XXXXXX", tag);
  const char* d = mkdtemp(tmpl);
  return d == nullptr ? fs::path() : fs::path(d);
}

uint16_t free_port() {
  const auto ep = sys::parse_ipv4_endpoint("127.0.0.1:0");
  sys::ListenOptions opts;
  opts.nonblocking = false;
  sys::Fd fd(sys::listen_tcp(*ep, opts));
  const auto local = sys::local_endpoint(fd.get());
  return local ? ntohs(local->sin_port) : 0;
}

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
  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool not installed (Debian: prometheus)";
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
  const char* prometheus = "/usr/bin/prometheus";
  if (access(prometheus, X_OK) != 0) GTEST_SKIP() << "prometheus not installed";
  Harness h;
  h.slots.slot(0)->conns_opened.add(45);
  h.slots.slot(1)->conns_closed.add(3);  // conns_open = 42

  const fs::path dir = make_temp_dir("prometheus");
  ASSERT_FALSE(dir.empty());
  const uint16_t web_port = free_port();
  std::ofstream(dir / "prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n  - job_name: c10m\n    scrape_interval: 1s\n"
      << "    static_configs:\n      - targets: ['127.0.0.1:" << h.server.port() << "']\n";
  const std::string config = "--config.file=" + (dir / "prometheus.yml").string();
  const std::string storage = "--storage.tsdb.path=" + (dir / "data").string();
  const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(web_port);
  const std::string log = (dir / "prometheus.log").string();

  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1);
    dup2(fd, 2);
    execl(prometheus, prometheus, config.c_str(), storage.c_str(), listen.c_str(),
          "--log.level=warn", static_cast<char*>(nullptr));
    _exit(127);
  }

  // Poll its query API until the scraped value shows up (bounded).
  std::string value;
  std::string last;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    const HttpResponse r =
        http_get("127.0.0.1", web_port, "/api/v1/query?query=c10m_conns_open", 2000);
    if (r.status == 200) {
      last = r.body;
      const auto j = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.value("status", "") == "success" &&
          !j["data"]["result"].empty()) {
        value = j["data"]["result"][0]["value"][1].get<std::string>();
        EXPECT_EQ(j["data"]["result"][0]["metric"]["job"], "c10m");
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  std::string log_text;
  {
    std::ifstream in(log);
    log_text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  fs::remove_all(dir);
  EXPECT_EQ(value, "42") << "last answer: " << last << "\nprometheus log:\n" << log_text;
}

}  // namespace
}  // namespace c10m::admin
