#pragma once
// Pieces the engines share: the drain signal, binding the listeners, the content source, throttled
// accept-error logging, heap counter blocks, and merging a private counter block into a
// shared one. Engine-internal (apps include engine.h only).
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "core/content_source.h"
#include "core/server_config.h"
#include "metrics/counters.h"
#include "sys/socket.h"

namespace c10m::engine {

/// An engine's drain request: an eventfd its loops poll, made readable once by request().
/// request() may be called from any thread or a signal handler (async-signal-safe: an
/// atomic exchange, clock_gettime and write(2)); `at`, when given, gets the request's time
/// before the eventfd is written. The destructor waits until a request in progress has
/// written the eventfd, so the fd is never closed under it.
class DrainSignal {
 public:
  DrainSignal();  // throws std::runtime_error when eventfd fails
  ~DrainSignal();
  DrainSignal(const DrainSignal&) = delete;
  DrainSignal& operator=(const DrainSignal&) = delete;

  void request(std::atomic<Nanos>* at = nullptr);
  bool requested() const { return requested_.load(); }
  int fd() const { return fd_.get(); }

 private:
  sys::Fd fd_;
  std::atomic<bool> requested_{false};
  std::atomic<bool> written_{false};  // request() is done with fd_
};

/// Parses config.addr and binds `count` listeners (count > 1 needs reuseport). On success
/// fills `out` and `port` and returns ""; else a message such as
/// "address 127.0.0.1:7000 is in use (another server running? pick another --addr)".
std::string bind_listeners(const core::ServerConfig& config, size_t count, bool nonblocking,
                           std::vector<sys::Fd>* out, uint16_t* port);

/// The FETCH content of `config` (pattern or --fetch-file). Throws std::runtime_error.
std::unique_ptr<core::ContentSource> make_content(const core::ServerConfig& config);

/// Sorts an accept() errno: true for the resource errors (EMFILE, ENFILE, ENOBUFS, ENOMEM)
/// after which the engine must back off instead of retrying at once.
bool is_resource_error(int err);
metrics::AcceptError accept_error_kind(int err);

/// --accept-rate as a token bucket: take() succeeds at most `per_second` times a second on
/// average, in bursts of at most a tenth of a second's worth (at least 1). A loop that
/// finds no token stops accepting until ready_at(): connections wait in the kernel's
/// backlog (and past it the kernel drops SYNs) instead of costing the loop CPU that its
/// established connections need. One owner thread; no allocation.
class AcceptPacer {
 public:
  AcceptPacer(double per_second, Nanos now);  // per_second <= 0: no limit
  bool limited() const { return rate_ > 0; }
  bool take(Nanos now);
  void give_back() { tokens_ += rate_ > 0 ? 1 : 0; }  // a take() whose accept found nobody
  Nanos ready_at() const;  // when the next token is due (after a failed take)

 private:
  double rate_;    // tokens per nanosecond
  double burst_;   // most tokens held
  double tokens_;  // as of last_
  Nanos last_;
};

/// Resource-error accept back-off and its log line, shared by all threads of an engine.
/// Logs at most once per kInterval (with the count since the last line). Any thread.
class AcceptErrorLog {
 public:
  static constexpr Nanos kInterval = 5 * kSecond;
  static constexpr Nanos kBackoff = 100 * kMillisecond;
  void record(int err, Nanos now);

 private:
  std::atomic<Nanos> last_log_{-kInterval * 2};
  std::atomic<uint64_t> since_log_{0};
};

/// Adds every counter of `from` to `to` with atomic RMWs and zeroes `from` (the owner of
/// `from` calls this; `to` may have other writers that also use add_atomic).
void merge_counters(metrics::ThreadCounters* from, metrics::ThreadCounters* to);

/// Heap counter blocks (also the engines' fallback when given no slots).
class PrivateCounterSlots final : public metrics::CounterSlots {
 public:
  explicit PrivateCounterSlots(size_t count) : blocks_(count) {}
  metrics::ThreadCounters* slot(size_t index) override { return &blocks_.at(index); }
  size_t capacity() const override { return blocks_.size(); }

 private:
  std::vector<metrics::ThreadCounters> blocks_;
};

}  // namespace c10m::engine
