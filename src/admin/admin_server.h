#pragma once
// AdminServer: the side HTTP port (--metrics-addr), off the data path.
//
//   GET /metrics                  Prometheus text 0.0.4 (metrics/exposition.h)
//   GET /healthz                  200 "ok"; 503 "draining" once set_draining() was called
//   GET /debug/pprof/             index of the profiles
//   GET /debug/pprof/heap         tcmalloc heap sample (pprof heap_v2 text); 501 without tcmalloc
//   GET /debug/pprof/profile?seconds=N   CPU profile of N seconds (default 30, 1..max);
//                                 one at a time (409 while another runs); 501 without libprofiler
//   ...?worker=I                  under a supervisor (--workers): the same profile of worker
//                                 process I, fetched from that worker's own loopback admin
//                                 port (AdminConfig::worker_port); 404 for an unknown worker
//
// Threads: its own small pool (2 threads, cpp-httplib), never an event loop's. A scrape
// reads the counter blocks with relaxed loads: it takes no lock the data path takes and
// its cost does not grow with connections. The CounterSource must outlive the server.
// Lifetime: start() once; stop() (or the destructor) joins every thread it started.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/noncopyable.h"
#include "metrics/counter_source.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace c10m::admin {

/// Default side port: loopback only. Profiles and heap samples expose internals (code
/// addresses, allocation sites), so exposing them beyond the host must be a choice:
/// pass --metrics-addr 0.0.0.0:9100 (or a private interface) to let Prometheus scrape
/// from elsewhere. 9100 is the port convention of node-style exporters; change it when a
/// node_exporter already holds it.
inline constexpr const char* kDefaultMetricsAddr = "127.0.0.1:9100";

struct AdminConfig {
  std::string addr = kDefaultMetricsAddr;  // "host:port" (IPv4 or localhost); port 0 = any
  int max_profile_seconds = 300;           // upper bound of ?seconds=
  /// Supervisor only: the loopback admin port of worker process I (0: none / not running),
  /// and how many workers there are. Called from the admin threads.
  std::function<uint16_t(int)> worker_port = nullptr;
  int workers = 0;
};

class AdminServer : NonCopyable {
 public:
  AdminServer(AdminConfig config, const metrics::CounterSource* source);
  ~AdminServer();

  /// Binds and starts serving. Returns "" or a message naming the problem.
  std::string start();
  /// The bound port (after a successful start()).
  uint16_t port() const { return port_; }
  /// Stops serving, cancels a running CPU profile, joins the threads. Idempotent.
  void stop();
  /// From now on /healthz answers 503 "draining", so a load balancer stops sending new
  /// connections while the existing ones finish. Any thread; async-signal-safe.
  void set_draining() { draining_.store(true, std::memory_order_relaxed); }

 private:
  void install_routes();
  /// ?worker=I on a profile route: answers from worker I's admin port; false without it.
  bool forward_to_worker(const httplib::Request& req, httplib::Response& res);

  AdminConfig config_;
  const metrics::CounterSource* source_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> draining_{false};
};

}  // namespace c10m::admin
