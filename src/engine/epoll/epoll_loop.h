#pragma once
// One epoll event loop: its own thread, epoll fd, buffer pool, scratch read buffer, timing
// wheel and counter block. Serves the connections it accepted until the drain completes.
//
// Thread rule: everything here except EpollShared is touched by the loop's thread only.
// Memory: per connection only an EpollConn (fd, flags, wheel and list links, Session); an
// idle connection owns no buffer. Input is read into the loop's one scratch buffer.
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "base/buffer_pool.h"
#include "base/clock.h"
#include "base/noncopyable.h"
#include "core/session.h"
#include "engine/engine.h"
#include "engine/engine_support.h"
#include "engine/epoll/timing_wheel.h"

namespace c10m::engine {

/// What all loops of one EpollEngine share. Owned by the engine; outlives the loops.
struct EpollShared {
  const core::ServerConfig* config = nullptr;
  const core::ContentSource* content = nullptr;
  int drain_fd = -1;                    // eventfd: readable once a drain was requested
  std::atomic<uint64_t> open{0};        // open connections, process-wide (--max-conns)
  std::atomic<Nanos> drain_at{kNever};  // when request_drain() was first called
  AcceptErrorLog accept_log;
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
  core::Session session;
};

class EpollLoop : NonCopyable {
 public:
  // Per readiness event of one connection: at most this many reads / bytes read, and at
  // most this many bytes written, before the loop moves on (fairness; level-triggered
  // epoll brings the connection back on the next round).
  static constexpr int kMaxReadsPerEvent = 64;
  static constexpr size_t kMaxReadBytesPerEvent = 1 << 20;
  static constexpr size_t kMaxWriteBytesPerEvent = 1 << 20;
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
  void on_conn_event(EpollConn* c, uint32_t ev, Nanos now);
  bool reap_zerocopy(EpollConn* c);          // false: a real socket error is pending
  bool read_burst(EpollConn* c, Nanos now);  // false: connection dead (I/O error)
  bool flush(EpollConn* c, Nanos now);       // false: connection dead
  void settle(EpollConn* c, Nanos now);      // close if finished, else interest + timer
  void close_conn(EpollConn* c, bool aborted);
  void accept_burst(Nanos now);
  void refuse(int fd, Nanos now);
  void add_listener();
  void remove_listener();
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
  core::SessionEnv env_;
  TimingWheel wheel_;

  EpollConn* all_head_ = nullptr;
  uint64_t conns_ = 0;
  bool listener_registered_ = false;
  Nanos listener_resume_at_ = kNever;  // accept back-off after EMFILE & co
  bool draining_ = false;
  bool forced_ = false;
  Nanos drain_deadline_ = kNever;
  Nanos hard_deadline_ = kNever;
  DrainReport report_;
};

}  // namespace c10m::engine
