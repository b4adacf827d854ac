#pragma once
// One epoll event loop: its own thread, epoll fd, buffer pool, scratch read buffer, timing
// wheel and counter block. Serves the connections it accepted until the drain completes.
//
// Thread rule: everything here except EpollShared is touched by the loop's thread only.
// Memory: per connection only an EpollConn (fd, flags, wheel and list links, Session); an
// idle connection owns no buffer. Input is read into the loop's one scratch buffer.
// Blocks are charged to the loop's BudgetAccount (core/memory_budget.h); the loop stops
// accepting and sheds the connections holding the most as the process budget fills.
//
// Fairness, per loop turn (one epoll_wait): connections with input are served first
// (read at most kReadBudget bytes, then write at most kReplyQuota of what they are owed),
// then connections that only have output pending share kTurnWriteBudget bytes, at least
// kMinWriteQuota each, taken round-robin; the rest wait for the next turn (level-triggered
// EPOLLOUT brings them back). A FETCH queues at most core::kProduceFrames frames per send,
// so no connection produces, reads or writes without bound in one turn. Accepts: at most
// kAcceptBurst per turn, and with --accept-rate at most the loop's share of it per second
// (AcceptPacer); out of tokens, the loop leaves the listener until the next one is due.
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "base/buffer_pool.h"
#include "base/clock.h"
#include "base/noncopyable.h"
#include "core/memory_budget.h"
#include "core/session.h"
#include "engine/engine.h"
#include "engine/engine_support.h"
#include "engine/timing_wheel.h"

namespace c10m::engine {

/// What all loops of one EpollEngine share. Owned by the engine; outlives the loops.
struct EpollShared {
  const core::ServerConfig* config = nullptr;
  const core::ContentSource* content = nullptr;
  int drain_fd = -1;                    // eventfd: readable once a drain was requested
  std::atomic<uint64_t> open{0};        // open connections, process-wide (--max-conns)
  std::atomic<Nanos> drain_at{kNever};  // when request_drain() was first called
  AcceptErrorLog accept_log;
  core::MemoryBudget* budget = nullptr;  // this process's memory budget (may be unlimited)
  std::atomic<Nanos> last_release{0};    // when free memory was last returned to the OS
  double accept_rate_per_loop = 0;       // --accept-rate / loops; 0: no limit
  WorkerShare worker;                    // worker mode (engine_support.h)
};

/// Per-connection state of the epoll engine (the whole per-connection cost together with
/// the Session: see sizeof in the README).
struct EpollConn : TimerNode {
  EpollConn(const core::SessionEnv& env, Nanos now, int fd_in) : fd(fd_in), session(env, now) {}
  EpollConn* all_prev = nullptr;  // the loop's list of open connections (drain walks it)
  EpollConn* all_next = nullptr;
  int fd;
  uint32_t events = 0;    // epoll interest currently registered
  bool peer_eof = false;  // read() returned 0: no more EPOLLIN
  bool closed = false;    // closed during this turn; freed after it (events may point here)
  uint32_t rcvlowat = 1;  // SO_RCVLOWAT now set (1: the kernel's default)
  core::Session session;
};

class EpollLoop : NonCopyable {
 public:
  // Fairness bounds per connection and per turn (see the header comment).
  static constexpr int kMaxReadsPerEvent = 16;
  static constexpr size_t kReadBudget = 256 * 1024;
  static constexpr size_t kReplyQuota = 64 * 1024;
  static constexpr size_t kTurnWriteBudget = 256 * 1024;
  static constexpr size_t kMinWriteQuota = 16 * 1024;
  // Pools keep at most this many free blocks (the rest goes back to the allocator), and
  // trim to the low mark once a second when the loop was not short of blocks.
  static constexpr size_t kPoolCache = 32;
  static constexpr size_t kSmallPoolCache = 256;
  // While the budget stops accepting, re-check it this often.
  static constexpr Nanos kBudgetRecheck = 100 * kMillisecond;
  static constexpr int kAcceptBurst = 64;
  static constexpr int kMaxEvents = 256;
  static constexpr int kMaxIov = 64;
  // --fetch-send zerocopy: MSG_ZEROCOPY only for sends of at least this many bytes (below
  // it, pinning pages and the completion cost more than the copy they save).
  static constexpr size_t kZerocopyMin = 16 * 1024;
  // After the drain deadline, owed replies get this long beyond the write timeout before
  // the remaining connections are reset.
  static constexpr Nanos kForceGrace = 1 * kSecond;

  /// `listen_fd` stays owned by the engine (shared by every loop unless reuseport).
  EpollLoop(EpollShared* shared, int listen_fd, bool exclusive_listener,
            metrics::ThreadCounters* counters);
  ~EpollLoop();

  /// Creates the epoll fd and registers the listener and the drain eventfd.
  /// Returns "" or a message.
  std::string init();
  /// Serves until the drain completes. Returns this loop's part of the drain report.
  DrainReport run();

 private:
  void on_input_event(EpollConn* c, uint32_t ev, Nanos now);
  void on_output_event(EpollConn* c, size_t quota, Nanos now);
  void on_timer(EpollConn* c, Nanos now);
  bool reap_zerocopy(EpollConn* c);          // false: a real socket error is pending
  bool read_burst(EpollConn* c, Nanos now);  // false: connection dead (I/O error)
  /// Writes at most `quota` bytes (more if one writev takes them). false: connection dead.
  bool flush(EpollConn* c, Nanos now, size_t quota = kReplyQuota);
  void settle(EpollConn* c, Nanos now);  // close if finished, else interest + timer
  /// Unlinks, closes the fd and marks `c` closed; it is freed by free_closed() after the
  /// turn (later events of the same epoll_wait batch may still point at it).
  void close_conn(EpollConn* c, bool aborted);
  void free_closed();
  void check_budget(Nanos now);  // after each connection event: shed past the limit
  void shed(Nanos now);
  void maintain(Nanos now);  // once a second: trim pools, return free memory to the OS
  void accept_burst(Nanos now);
  void refuse(int fd, Nanos now);
  void add_listener();
  void remove_listener();
  /// Registers or deregisters the listener as the process's pause state and the accept
  /// back-off want; `rearm` re-registers an already registered one (after a kick).
  void sync_listener(bool rearm);
  /// Pause (true) or resume (false) accepting in every loop of the process: gate, then
  /// kick. No-op when the process is already in that state.
  void set_paused(bool paused);
  void kick();
  void start_drain(Nanos now);
  void force_all(Nanos now);
  void abort_all();
  int epoll_timeout_ms(Nanos now) const;

  EpollShared* shared_;
  const core::ServerConfig& config_;
  int listen_fd_;
  bool exclusive_listener_;
  metrics::ThreadCounters* counters_;
  int epfd_ = -1;
  BufferPool pool_;
  BufferPool small_pool_;  // short partial frames (core::kSessionSmallBlockSize)
  std::unique_ptr<uint8_t[]> scratch_;
  core::BudgetAccount account_;
  core::SessionEnv env_;
  TimingWheel wheel_;

  EpollConn* all_head_ = nullptr;
  EpollConn* closed_head_ = nullptr;  // closed this turn, freed by free_closed()
  size_t rr_ = 0;                     // round-robin start among output-only events
  Nanos next_maintenance_ = 0;
  uint64_t conns_ = 0;
  bool listener_registered_ = false;
  Nanos listener_resume_at_ = kNever;  // accept back-off: EMFILE & co, budget, --accept-rate
  AcceptPacer pacer_;
  bool draining_ = false;
  bool forced_ = false;
  Nanos drain_deadline_ = kNever;
  Nanos hard_deadline_ = kNever;
  DrainReport report_;
};

}  // namespace c10m::engine
