#pragma once
// One io_uring event loop: its own ring (UringIo), provided-buffer ring, direct-descriptor
// table, buffer pools, timing wheel and counter block. Serves the connections it accepted
// until the drain completes.
//
// A loop turn: (1) settle every connection something happened to (queue its send, arm or
// cancel its receive, close it, refile its timer) and arm accept; (2) one io_uring_enter
// that submits all of it and waits for completions or the next timer; (3) handle every
// completion; (4) expire timers. So all replies produced in a turn leave in one system call.
//
// Per connection: the direct descriptor (no fd), a multishot receive into the loop's
// buffer ring while the session wants input, at most one send in flight (TCP order), and
// the Session. An idle connection owns no buffer and no pending read buffer.
//
// Thread rule: everything here except UringShared is touched by the loop's thread only.
// Lifetime: a UringConn lives until the last completion of every request naming it has
// been handled (`ops` counts them); it is freed only in settle(), never while a list or a
// batch of completions may still point at it.
//
// Memory budget (core/memory_budget.h): blocks are charged to the loop's BudgetAccount,
// refreshed once per turn; at kStopAccept the loop cancels its accepts (re-checked every
// kBudgetRecheck), past the limit it sheds the connections holding the most. A shed
// connection's blocks return to the budget when its last request completes.
// --accept-rate: only single-shot accepts, each issued with one AcceptPacer token (a
// multishot accept would take a whole backlog at once); a cancelled or failed one gives it
// back.
//
// Worker mode (engine.h WorkerListener, shared listener): every loop accepts from the
// supervisor's listener and never shuts it down. Accepting is sized by the room left,
// min(free direct descriptors, pause_at - open connections of the process): below the
// accept headroom it is single-shot (at most kMaxSingleAccepts in flight), so the process
// overshoots its capacity by at most that many per loop. At pause_at the process pauses:
// every loop cancels every accept in flight (as for the budget's stop-accept), the gate is
// told, then the kick eventfd is written; below resume_below it resumes (gate, kick).
// The kick: each loop keeps a multishot poll on the kick eventfd, and on each completion
// cancels its accepts in flight and issues them anew. An io_uring accept waits on the
// listener exclusively, one waiter woken per connection, and an armed multishot accept
// keeps its place at the head of the wait queue: connections whose wake-ups went to a
// sibling that then cancelled its accept (it paused) stay in the backlog while this
// loop's armed accept sleeps; an accept issued anew tries the backlog at once
// (uring_engine_test ArmedAcceptSleepsThroughABacklogASiblingLeft shows both).
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/buffer_pool.h"
#include "base/clock.h"
#include "base/noncopyable.h"
#include "core/memory_budget.h"
#include "core/session.h"
#include "engine/engine.h"
#include "engine/engine_support.h"
#include "engine/timing_wheel.h"
#include "engine/uring/uring_buffer_ring.h"
#include "engine/uring/uring_io.h"

namespace c10m::engine {

/// What all loops of one UringEngine share. Owned by the engine; outlives the loops.
struct UringShared {
  const core::ServerConfig* config = nullptr;
  const core::ContentSource* content = nullptr;
  core::MemoryBudget* budget = nullptr;  // this process's memory budget (may be unlimited)
  int drain_fd = -1;                     // eventfd: readable once a drain was requested
  std::atomic<uint64_t> open{0};         // open connections, process-wide (--max-conns)
  std::atomic<Nanos> drain_at{kNever};   // when request_drain() was first called
  AcceptErrorLog accept_log;
  std::atomic<Nanos> table_full_logged{-AcceptErrorLog::kInterval * 2};
  double accept_rate_per_loop = 0;  // --accept-rate / loops; 0: no limit
  WorkerShare worker;               // worker mode (engine_support.h)
};

struct UringConn : TimerNode {
  enum class Recv : uint8_t { kIdle, kArmed, kCancelling };
  UringConn(const core::SessionEnv& env, Nanos now, uint32_t slot_in)
      : slot(slot_in), session(env, now) {}
  UringConn* all_prev = nullptr;  // every live UringConn of the loop (open, refused, closing)
  UringConn* all_next = nullptr;
  UringConn* pending_next = nullptr;  // the loop's settle list
  uint32_t slot;                      // direct descriptor
  uint32_t offered = 0;               // bytes the send in flight offered
  int32_t zc_result = 0;              // zero-copy send: result held until its notification
  int rcvlowat = 1;                   // SO_RCVLOWAT asked for (read when the request runs)
  uint8_t ops = 0;                    // requests in flight that name this connection
  Recv recv = Recv::kIdle;
  bool sending : 1 = false;   // a send is in flight (zero-copy: until its notification)
  bool peer_eof : 1 = false;  // the receive saw EOF
  bool closing : 1 = false;   // close queued; waits for ops == 0 to be freed
  bool refused : 1 = false;   // over --max-conns: ERROR OVERLOADED, then close
  bool queued : 1 = false;    // on the settle list
  core::Session session;
};

class UringLoop : NonCopyable {
 public:
  // After the drain deadline, owed replies get this long beyond the write timeout before
  // the remaining connections are reset (as the epoll engine).
  static constexpr Nanos kForceGrace = 1 * kSecond;
  // Single-shot accepts in flight at once while the file table is nearly full.
  static constexpr uint32_t kMaxSingleAccepts = 4;
  static constexpr int kReapBatch = 256;
  // While the budget stops accepting, re-check it this often.
  static constexpr Nanos kBudgetRecheck = 100 * kMillisecond;

  /// `io` and `buffers` are this loop's (registered with each other by the engine).
  /// `fixed_files`: the direct-descriptor table size. `accept_headroom`: free slots below
  /// which accept switches from multishot (which may take a whole listen backlog in one
  /// go) to single-shot accepts, so the kernel never accepts into a full table (it would
  /// drop the connection). `zerocopy_min`: 0 = never.
  UringLoop(UringShared* shared, UringIo* io, UringBufferRing* buffers, int listen_fd,
            uint32_t fixed_files, uint32_t accept_headroom, size_t zerocopy_min,
            metrics::ThreadCounters* counters);
  ~UringLoop();

  /// Serves until the drain completes. Returns this loop's part of the drain report.
  DrainReport run();

  const UringStats& stats() const { return stats_; }
  /// Where the ring adds its own tallies (enters, overflow).
  UringStats* mutable_stats() { return &stats_; }
  /// Live UringConn objects (open, refused or closing); for tests and the fuzzer.
  uint64_t live() const { return live_; }
  uint32_t free_slots() const { return free_slots_; }

  /// The pieces of run(), public for the completion fuzzer, which drives them with a
  /// model of the kernel. `start` arms the drain poll; `turn_begin` settles; `handle`
  /// dispatches one completion; `turn_end` expires timers and deadlines. done(): the loop
  /// would return.
  void start();
  void turn_begin(Nanos now);
  void handle(const UringCqe& cqe, Nanos now);
  void turn_end(Nanos now);
  bool done() const { return draining_ && live_ == 0; }
  /// How long submit_and_wait may wait (kNever: no timer).
  Nanos wait_timeout(Nanos now) const;
  DrainReport report() const { return report_; }

 private:
  enum Op : uint64_t {
    kOpLoop = 0,  // loop-level (ud is one of the kUd* constants below)
    kOpRecv = 1,
    kOpSend = 2,
    kOpRecvCancel = 3,
    kOpCloseCancel = 4,
    kOpLinger = 5,
    kOpClose = 6,
    kOpLowat = 7,
  };
  static constexpr uint64_t kUdAcceptMulti = 1 << 3;
  static constexpr uint64_t kUdAcceptOne = 2 << 3;
  static constexpr uint64_t kUdDrain = 3 << 3;
  static constexpr uint64_t kUdIgnore = 4 << 3;
  static constexpr uint64_t kUdKick = 5 << 3;
  static uint64_t ud(const UringConn* c, Op op) { return reinterpret_cast<uint64_t>(c) | op; }

  void on_accept(const UringCqe& e, bool multishot, Nanos now);
  void on_recv(UringConn* c, const UringCqe& e, Nanos now);
  void on_send(UringConn* c, const UringCqe& e, Nanos now);
  void op_done(UringConn* c);
  void new_conn(uint32_t slot, Nanos now);
  void mark(UringConn* c);
  void settle(UringConn* c, Nanos now);
  void start_send(UringConn* c);
  void arm_recv(UringConn* c);
  void close_conn(UringConn* c, bool aborted, bool reset);
  void destroy(UringConn* c);
  void arm_accept(Nanos now);
  /// Cancels every accept in flight (each once); arm_accept() re-arms after their
  /// completions, when accepting is allowed again.
  void cancel_accepts();
  bool budget_stops_accept(Nanos now);  // true: accepts are (being) cancelled
  /// Connections this process may still accept before it pauses (UINT64_MAX: no pause).
  uint64_t process_room() const;
  /// Pauses or resumes accepting in every loop of the process, as the process's open
  /// connections now say (pause at pause_at, resume below resume_below): flag, gate, then
  /// kick. Decided under pause_mu from the count read there, so racing loops end in the
  /// state the final count asks for. No-op when nothing changes. Any loop thread.
  void update_pause();
  void shed(Nanos now);
  void log_table_full(Nanos now);
  void start_drain(Nanos now);
  void force_all(Nanos now);
  void abort_all();

  UringShared* shared_;
  const core::ServerConfig& config_;
  UringIo* io_;
  UringBufferRing* bufs_;
  int listen_fd_;
  metrics::ThreadCounters* counters_;
  BufferPool pool_;
  BufferPool small_pool_;        // short partial frames (core::kSessionSmallBlockSize)
  core::BudgetAccount account_;  // before env_, which points at it
  core::SessionEnv env_;
  TimingWheel wheel_;
  UringStats stats_;

  std::vector<UringConn*> due_;  // turn_end: input timeouts waiting for one more reap
  UringConn* all_head_ = nullptr;
  UringConn* pending_head_ = nullptr;
  uint64_t conns_ = 0;  // open (accepted, not refused, not closing)
  uint64_t live_ = 0;   // UringConn objects
  const uint32_t fixed_files_;
  uint32_t free_slots_;
  const uint32_t accept_headroom_;
  const size_t zerocopy_min_;

  enum class Accept : uint8_t { kOff, kArmed, kCancelling };
  Accept accept_multi_ = Accept::kOff;
  uint32_t accept_single_ = 0;   // single-shot accepts in flight
  uint32_t single_cancels_ = 0;  // ... of which a cancel was queued for (<= accept_single_)
  bool kick_armed_ = false;      // the multishot poll on the kick eventfd is in flight
  bool kick_failed_ = false;     // that poll failed (logged): not re-armed
  bool kicked_ = false;          // a kick came: re-issue the accepts in flight
  Nanos accept_resume_at_ = 0;   // back-off after ENOMEM & co, and --accept-rate
  AcceptPacer pacer_;            // --accept-rate: single-shot accepts, one token each
  bool accept_stopped_ = false;  // the listener is gone (drain, or a fatal error)
  bool table_full_ = false;      // paused: no free slot (logged once per pause)
  bool budget_full_ = false;     // paused by the memory budget (counted once per pause)
  Nanos budget_recheck_at_ = kNever;

  bool draining_ = false;
  bool forced_ = false;
  Nanos drain_deadline_ = kNever;
  Nanos hard_deadline_ = kNever;
  DrainReport report_;
};

}  // namespace c10m::engine
