// cpp-httplib is included here only (it is heavy to compile and built as a shared
// library in Debian: the defines below must match libcpp-httplib.so, given by pkg-config).
#include "admin/admin_server.h"

#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "admin/http_get.h"
#include "admin/profiling.h"
#include "metrics/exposition.h"
#include "sys/socket.h"

namespace c10m::admin {
namespace {

constexpr const char* kPprofIndex =
    "<html><head><title>/debug/pprof/</title></head><body>\n"
    "<p>Profiles (gperftools, read them with google-pprof; see docs/OBSERVABILITY.md):</p>\n"
    "<ul>\n"
    "<li><a href=\"heap\">heap</a>: tcmalloc heap sample of live objects "
    "(google-pprof --text BINARY heap.prof)</li>\n"
    "<li><a href=\"profile?seconds=30\">profile?seconds=N</a>: CPU profile over N seconds "
    "(google-pprof --text BINARY cpu.prof)</li>\n"
    "</ul>\n"
    "<p><a href=\"/metrics\">/metrics</a> &middot; <a href=\"/healthz\">/healthz</a></p>\n"
    "</body></html>\n";

}  // namespace

AdminServer::AdminServer(AdminConfig config, const metrics::CounterSource* source)
    : config_(std::move(config)), source_(source), http_(std::make_unique<httplib::Server>()) {}

AdminServer::~AdminServer() { stop(); }

bool AdminServer::forward_to_worker(const httplib::Request& req, httplib::Response& res) {
  if (!req.has_param("worker")) return false;
  const std::string v = req.get_param_value("worker");
  char* end = nullptr;
  const long w = std::strtol(v.c_str(), &end, 10);
  const uint16_t port =
      (!config_.worker_port || v.empty() || *end != '\0' || w < 0 || w >= config_.workers)
          ? 0
          : config_.worker_port(static_cast<int>(w));
  if (port == 0) {
    res.status = 404;
    res.set_content("no such worker (?worker=0.." + std::to_string(config_.workers - 1) + ")\n",
                    "text/plain; charset=utf-8");
    return true;
  }
  std::string path = req.path;
  char sep = '?';
  for (const auto& [k, val] : req.params) {
    if (k == "worker") continue;
    path += sep + k + "=" + val;
    sep = '&';
  }
  int seconds = 30;
  if (req.has_param("seconds")) seconds = std::atoi(req.get_param_value("seconds").c_str());
  const HttpResponse r = http_get("127.0.0.1", port, path, (seconds + 30) * 1000);
  if (r.status == 0) {
    res.status = 502;
    res.set_content("worker " + v + ": " + r.error + "\n", "text/plain; charset=utf-8");
    return true;
  }
  res.status = r.status;
  res.set_content(r.body, r.content_type.empty() ? "application/octet-stream" : r.content_type);
  return true;
}

void AdminServer::install_routes() {
  httplib::Server& s = *http_;
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics::render_metrics(*source_), metrics::kExpositionContentType);
  });
  s.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    if (draining_.load(std::memory_order_relaxed)) {
      res.status = 503;
      res.set_content("draining\n", "text/plain; charset=utf-8");
    } else {
      res.set_content("ok\n", "text/plain; charset=utf-8");
    }
  });
  s.Get("/debug/pprof",
        [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/debug/pprof/"); });
  s.Get("/debug/pprof/", [this](const httplib::Request&, httplib::Response& res) {
    std::string page = kPprofIndex;
    if (config_.workers > 0) {
      std::string links = "<p>Worker processes (this page profiles the supervisor; add ?worker=I):";
      for (int w = 0; w < config_.workers; ++w)
        links += " <a href=\"heap?worker=" + std::to_string(w) + "\">heap " + std::to_string(w) +
                 "</a> <a href=\"profile?seconds=30&worker=" + std::to_string(w) + "\">profile " +
                 std::to_string(w) + "</a>";
      page.insert(page.find("<p><a href=\"/metrics\">"), links + "</p>\n");
    }
    res.set_content(page, "text/html; charset=utf-8");
  });
  s.Get("/debug/pprof/heap", [this](const httplib::Request& req, httplib::Response& res) {
    if (forward_to_worker(req, res)) return;
    std::string error;
    std::string profile = heap_profile(&error);
    if (!error.empty()) {
      res.status = 501;
      res.set_content(error + "\n", "text/plain; charset=utf-8");
      return;
    }
    if (heap_sample_period() <= 0) {
      res.set_header("X-C10m-Warning", "heap sampling is off: set TCMALLOC_SAMPLE_PARAMETER");
    }
    res.set_content(std::move(profile), "application/octet-stream");
  });
  s.Get("/debug/pprof/profile", [this](const httplib::Request& req, httplib::Response& res) {
    if (forward_to_worker(req, res)) return;
    int seconds = 30;
    if (req.has_param("seconds")) {
      const std::string v = req.get_param_value("seconds");
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 1 || n > config_.max_profile_seconds) {
        res.status = 400;
        res.set_content("seconds must be an integer in 1.." +
                            std::to_string(config_.max_profile_seconds) + "\n",
                        "text/plain; charset=utf-8");
        return;
      }
      seconds = static_cast<int>(n);
    }
    std::string profile;
    std::string error;
    switch (cpu_profile(seconds, stopping_, &profile, &error)) {
      case CpuProfileResult::kOk:
        res.set_content(std::move(profile), "application/octet-stream");
        return;
      case CpuProfileResult::kUnavailable:
        res.status = 501;
        break;
      case CpuProfileResult::kBusy:
        res.status = 409;
        break;
      case CpuProfileResult::kFailed:
        res.status = 500;
        break;
    }
    res.set_content(error + "\n", "text/plain; charset=utf-8");
  });
}

std::string AdminServer::start() {
  const auto endpoint = sys::parse_ipv4_endpoint(config_.addr);
  if (!endpoint) return "bad --metrics-addr '" + config_.addr + "' (want host:port)";
  const std::string host = config_.addr.substr(0, config_.addr.rfind(':'));
  const int want_port = ntohs(endpoint->sin_port);

  // Two threads: one may sit in a CPU profile while the other answers scrapes.
  http_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  // SO_REUSEADDR without httplib's default SO_REUSEPORT: a second server on the same
  // admin port must fail to start, not silently split the scrapes.
  // TCP_NODELAY (inherited by accepted sockets): httplib writes headers and body
  // separately, and Nagle + delayed ACK would add milliseconds to every scrape.
  http_->set_socket_options([](int fd) {
    sys::set_reuseaddr_only(fd);
    sys::apply_socket_options(fd, sys::SocketOptions{});
  });
  http_->set_keep_alive_max_count(100);
  install_routes();

  if (want_port == 0) {
    const int p = http_->bind_to_any_port(host);
    if (p <= 0) return "cannot bind the metrics port on " + config_.addr;
    port_ = static_cast<uint16_t>(p);
  } else {
    if (!http_->bind_to_port(host, want_port)) {
      return "cannot bind the metrics port " + config_.addr + " (in use? --metrics-addr)";
    }
    port_ = static_cast<uint16_t>(want_port);
  }
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  // httplib's stop() is a no-op until the listening thread has marked itself running:
  // wait for that, so that a stop() right after start() cannot leave it in accept().
  for (int i = 0; i < 5000 && !http_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!http_->is_running()) {
    stop();
    return "the metrics server thread did not start";
  }
  return "";
}

void AdminServer::stop() {
  stopping_ = true;
  if (thread_.joinable()) {
    http_->stop();
    thread_.join();
  }
}

}  // namespace c10m::admin
