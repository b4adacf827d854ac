#pragma once
// Helpers shared by the engine tests: running a command, temporary directories, a free
// loopback port, the clean-exit check for a ServerProcess, and a real Prometheus server
// (/usr/bin/prometheus) on loopback that scrapes one target. Every wait is bounded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "admin/http_get.h"
#include "engine/engine.h"
#include "sys/socket.h"
#include "test_client.h"

namespace c10m::test {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;  // slower: tests scale their loads down
#else
inline constexpr bool kSanitized = false;
#endif

/// A Prometheus text exposition as sample (name with its labels) -> value.
using Samples = std::map<std::string, double>;

inline Samples parse_samples(const std::string& text) {
  Samples s;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    s[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return s;
}

/// GET /metrics from 127.0.0.1:`port`, parsed; a failed GET is a test failure and empty.
inline Samples scrape_metrics(uint16_t port) {
  const admin::HttpResponse r = admin::http_get("127.0.0.1", port, "/metrics", 5000);
  EXPECT_EQ(r.status, 200) << r.error;
  return r.status == 200 ? parse_samples(r.body) : Samples{};
}

/// Runs `cmd` with /bin/sh, stderr folded into stdout. Returns the exit status (-1 when
/// popen fails or the shell did not exit normally); *output gets everything it printed.
inline int run_command(const std::string& cmd, std::string* output) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  output->clear();
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Creates a fresh directory /tmp/c10m-<tag>-XXXXXX; an empty path on failure. The caller
/// removes it.
inline std::filesystem::path make_temp_dir(const char* tag) {
  std::string tmpl = std::string("/tmp/c10m-") + tag + "-XXXXXX";
  const char* d = mkdtemp(tmpl.data());
  return d == nullptr ? std::filesystem::path() : std::filesystem::path(d);
}

/// A loopback TCP port that was free a moment ago (bound, then released); 0 on failure.
inline uint16_t free_loopback_port() {
  const auto ep = sys::parse_ipv4_endpoint("127.0.0.1:0");
  if (!ep) return 0;
  sys::ListenOptions opts;
  opts.nonblocking = false;
  sys::Fd fd(sys::listen_tcp(*ep, opts));
  const auto local = sys::local_endpoint(fd.get());
  return local ? ntohs(local->sin_port) : 0;
}

/// Why `engine` (an --engine name) cannot run on this machine, or "" when it can. Tests
/// parameterised over engines skip with this reason (GTEST_SKIP in SetUp), e.g. uring where
/// io_uring is disabled or the kernel is too old.
inline std::string engine_skip_reason(const std::string& engine) {
  if (engine == "default") return "";  // --engine auto runs wherever the server does
  engine::EngineKind kind;
  if (!engine::parse_engine_kind(engine, &kind)) return "unknown engine " + engine;
  const std::string why = engine::engine_unavailable_reason(kind);
  return why.empty() ? why : "--engine " + engine + " unavailable here: " + why;
}

/// The server arguments that select a parameterised test's engine: "default" is the
/// server's default configuration (no --engine flag: auto).
inline std::vector<std::string> engine_args(const std::string& engine) {
  if (engine == "default") return {};
  return {"--engine", engine};
}

/// The engine a parameter runs here: "default" is what --engine auto picks on this machine
/// for a configuration without epoll-only flags.
inline std::string effective_engine(const std::string& engine) {
  if (engine != "default") return engine;
  std::string why;
  return engine::engine_kind_name(engine::choose_engine(core::ServerConfig{}, &why));
}

/// The end of every server test: a still running server gets SIGTERM and must drain and
/// exit 0 within 20 s (under ASan: also no leak), and its stderr holds no sanitizer report.
/// Reports through gtest EXPECT_*; call it from TearDown.
inline void expect_clean_exit(ServerProcess& server) {
  if (server.running()) {
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit(milliseconds(20000)), 0) << server.stderr_text();
  }
  const std::string err = server.stderr_text();
  EXPECT_EQ(err.find("Sanitizer"), std::string::npos) << err;
  EXPECT_EQ(err.find("runtime error:"), std::string::npos) << err;
}

/// A real Prometheus server on 127.0.0.1 (free port) scraping one loopback target every
/// second as job "c10m", with its config, TSDB and log in a temporary directory. stop() (or
/// the destructor) sends SIGTERM, reaps it and removes the directory. Not thread-safe.
class PrometheusProcess {
 public:
  static constexpr const char* kBinary = "/usr/bin/prometheus";
  static bool installed() { return access(kBinary, X_OK) == 0; }

  /// The first non-empty answer to a query.
  struct Sample {
    bool found = false;     // a "success" answer with a non-empty result came
    std::string value;      // result[0].value[1] (the sample value as text)
    nlohmann::json result;  // result[0] (its "metric" holds the labels)
    std::string last_body;  // the last 200 body seen (for failure messages)
  };

  PrometheusProcess() = default;
  PrometheusProcess(const PrometheusProcess&) = delete;
  PrometheusProcess& operator=(const PrometheusProcess&) = delete;
  ~PrometheusProcess() { stop(); }

  /// Writes the config and starts Prometheus scraping 127.0.0.1:`scrape_port`. Returns ""
  /// or what failed. Call once.
  std::string start(uint16_t scrape_port) {
    dir_ = make_temp_dir("prometheus");
    if (dir_.empty()) return "mkdtemp failed";
    web_port_ = free_loopback_port();
    std::ofstream(dir_ / "prometheus.yml")
        << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        << "scrape_configs:\n  - job_name: c10m\n    scrape_interval: 1s\n"
        << "    static_configs:\n      - targets: ['127.0.0.1:" << scrape_port << "']\n";
    const std::string config = "--config.file=" + (dir_ / "prometheus.yml").string();
    const std::string storage = "--storage.tsdb.path=" + (dir_ / "data").string();
    const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(web_port_);
    const std::string log = log_path();
    pid_ = fork();
    if (pid_ < 0) return "fork failed";
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 1);
      dup2(fd, 2);
      execl(kBinary, kBinary, config.c_str(), storage.c_str(), listen.c_str(), "--log.level=warn",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    return "";
  }

  /// Polls /api/v1/query?query=`expr` (expr must be URL-safe) every 250 ms until an answer
  /// has a non-empty result, and returns that first one; found == false after `timeout`.
  Sample query_first(const std::string& expr, milliseconds timeout) {
    Sample s;
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      const admin::HttpResponse r =
          admin::http_get("127.0.0.1", web_port_, "/api/v1/query?query=" + expr, 2000);
      if (r.status == 200) {
        s.last_body = r.body;
        const auto j = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
        if (j.is_object() && j.value("status", "") == "success" && !j["data"]["result"].empty()) {
          s.found = true;
          s.result = j["data"]["result"][0];
          s.value = s.result["value"][1].get<std::string>();
          return s;
        }
      }
      std::this_thread::sleep_for(milliseconds(250));
    }
    return s;
  }

  /// SIGTERM, reap, read the log, remove the directory; returns the log text. Idempotent
  /// (later calls return "").
  std::string stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    std::string log_text;
    if (!dir_.empty()) {
      {
        std::ifstream in(log_path());
        log_text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
    return log_text;
  }

 private:
  std::string log_path() const { return (dir_ / "prometheus.log").string(); }

  std::filesystem::path dir_;
  uint16_t web_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace c10m::test
