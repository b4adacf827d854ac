#pragma once
// Pieces the engines share: the drain signal, binding the listeners, the content source, throttled
// accept-error logging, worker-mode state of the event-loop engines, heap counter blocks, and
// merging a private counter block into a shared one. Engine-internal (apps include engine.h
// only).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/clock.h"
#include "core/content_source.h"
#include "core/server_config.h"
#include "core/session.h"
#include "engine/engine.h"
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

/// The per-connection socket options the flags ask for (TCP_NODELAY, SO_RCVBUF, SO_SNDBUF,
/// TCP_NOTSENT_LOWAT); an engine adds its own (the epoll engine's SO_ZEROCOPY).
sys::SocketOptions socket_options(const core::ServerConfig& config);

/// The receive low-water mark a reading connection should have: what its partial frame
/// misses (core::Session::read_lowat), at most `cap` (--rcvlowat); 1 when `cap` is 0.
inline uint32_t lowat_mark(const core::Session& s, int cap) {
  if (cap <= 1) return 1;
  return static_cast<uint32_t>(std::min(s.read_lowat(), static_cast<size_t>(cap)));
}

/// Parses config.addr and binds `count` listeners (count > 1 needs reuseport). On success
/// fills `out` and `port` and returns ""; else a message such as
/// "address 127.0.0.1:7000 is in use (another server running? pick another --addr)".
std::string bind_listeners(const core::ServerConfig& config, size_t count, bool nonblocking,
                           std::vector<sys::Fd>* out, uint16_t* port);

/// Worker mode (engine.h WorkerListener) as every loop of one event-loop engine (epoll,
/// uring) sees it; a member of the engine's shared state, owned by the engine, outliving its
/// loops. pause_at 0: never pause (a single process, or own SO_REUSEPORT listeners).
/// Threads: the plain fields are written only by adopt_worker_share(), on the engine's
/// thread before run() starts the loops, and are read-only from then on (any loop thread).
/// `paused` is written by any loop thread, only under pause_mu; loops read it without the
/// lock (relaxed) to decide whether to accept. pause_mu orders the pause/resume transitions:
/// the flag's change and the gate call that follows it are made under it, so that when two
/// loops race the gate sees the changes in the flag's order (rare, off the data path).
struct WorkerShare {
  bool shared_listener = false;     // inherited: never shut down by the engine
  int kick_fd = -1;                 // >= 0: written after each transition; every loop watches it
  uint64_t pause_at = 0;            // the process stops accepting at this many connections
  uint64_t resume_below = 0;        // and accepts again below this many
  AcceptGate* gate = nullptr;       // told of each transition (outlives the engine)
  std::atomic<bool> paused{false};  // the process is at capacity: no loop accepts
  std::mutex pause_mu;
};

/// An event-loop engine's adopt_worker_listener(): with a shared listener (listen_fd >= 0)
/// fills `share` from `listener` and sets `port` to the listener's port, and returns the
/// listener's fd (still owned by the supervisor); with own listeners and a capacity, lowers
/// config->max_conns to it (a full worker refuses: the kernel keeps hashing connections to
/// it) and returns -1. Call once, before the loops start.
int adopt_worker_share(const WorkerListener& listener, WorkerShare* share,
                       core::ServerConfig* config, uint16_t* port);

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
