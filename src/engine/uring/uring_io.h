#pragma once
// The operations the io_uring engine's loop issues, as an interface: UringRing implements
// it with real submission-queue entries; the completion-handling fuzzer implements it with
// a model of the kernel. Everything else about the loop (connections, buffers, timers,
// drain) is the same code in both.
//
// Thread rule: one UringIo per loop, used by that loop's thread only.
// Lifetime: every operation carries a 64-bit `ud` (user_data) that comes back in its
// completion(s); what it names must stay alive until the operation's last completion.
#include <sys/uio.h>

#include <cstdint>

#include "base/clock.h"

namespace c10m::engine {

/// One completion, copied out of the completion queue (CQ) so its slot can be reused at
/// once. Same meaning as io_uring_cqe.
struct UringCqe {
  uint64_t user_data = 0;
  int32_t res = 0;
  uint32_t flags = 0;
};

/// Completion flags (IORING_CQE_F_*) this engine reads. BUF_MORE is newer than the
/// liburing 2.3 headers Debian 12 ships, so all are spelled out here.
inline constexpr uint32_t kCqeBuffer = 1u << 0;   // IORING_CQE_F_BUFFER: bid in the upper 16 bits
inline constexpr uint32_t kCqeMore = 1u << 1;     // IORING_CQE_F_MORE: more completions follow
inline constexpr uint32_t kCqeNotif = 1u << 3;    // IORING_CQE_F_NOTIF: zero-copy buffer released
inline constexpr uint32_t kCqeBufMore = 1u << 4;  // IORING_CQE_F_BUF_MORE: kernel keeps the buffer
inline constexpr int kCqeBufferShift = 16;

/// The most iovecs one send carries.
inline constexpr int kUringMaxSendIov = 8;

class UringIo {
 public:
  virtual ~UringIo() = default;

  // --- queue operations (reach the kernel at the next submit_and_wait, or earlier when the
  // submission queue is full) ---

  /// Accept on `listen_fd` into a free direct descriptor (fixed file table slot, chosen by
  /// the kernel). Each completion's res is the slot or -errno. Multishot: completions with
  /// kCqeMore until one without.
  virtual void accept(int listen_fd, bool multishot, uint64_t ud) = 0;
  /// One-shot poll for readability of `fd` (the drain eventfd).
  virtual void poll_in(int fd, uint64_t ud) = 0;
  /// Multishot poll for readability of `fd` (the worker kick eventfd, never read): one
  /// completion with kCqeMore when armed on a readable fd, then one per wake-up (each
  /// write), until one without kCqeMore ends it.
  virtual void poll_in_multishot(int fd, uint64_t ud) = 0;
  /// Multishot receive on direct descriptor `slot` into buffers of provided-buffer group
  /// `group`. Ends (a completion without kCqeMore) on EOF, error, -ENOBUFS, cancellation or
  /// when the kernel decides so (e.g. a full CQ).
  virtual void recv_multishot(uint32_t slot, uint16_t group, uint64_t ud) = 0;
  /// Sends `cnt` (1..kUringMaxSendIov) iovecs (the array may be reused once this returns; the bytes
  /// must stay until completion). zerocopy (cnt == 1 only): a first completion with kCqeMore
  /// carries the result, a second with kCqeNotif says the bytes may be reused.
  virtual void send(uint32_t slot, const iovec* iov, int cnt, bool zerocopy, uint64_t ud) = 0;
  /// Cancels the request whose user_data is `target`.
  virtual void cancel(uint64_t target, uint64_t ud) = 0;
  /// Cancels every request on direct descriptor `slot`.
  virtual void cancel_slot(uint32_t slot, uint64_t ud) = 0;
  /// SO_LINGER {1, 0} on `slot` (so that closing it sends RST).
  virtual void linger_reset(uint32_t slot, uint64_t ud) = 0;
  /// SO_RCVLOWAT *bytes on `slot`; `bytes` is read when the request runs and must stay
  /// valid until its completion (the latest value wins).
  virtual void set_rcvlowat(uint32_t slot, const int* bytes, uint64_t ud) = 0;
  /// Closes direct descriptor `slot` (frees the slot).
  virtual void close_slot(uint32_t slot, uint64_t ud) = 0;

  // --- the one system call per loop turn ---

  /// Submits everything queued and waits until at least one completion is ready or
  /// `timeout` ns passed (0: do not wait; kNever: no timeout), in one io_uring_enter.
  /// Returns 0, -ETIME on timeout, or another -errno.
  virtual int submit_and_wait(Nanos timeout) = 0;
  /// Moves up to `max` ready completions to `out` (freeing their CQ slots); returns how many.
  virtual int reap(UringCqe* out, int max) = 0;
};

/// Per-loop tallies of the ring-specific paths (tests assert that a path was taken;
/// experiments read syscall counts). Written by the loop thread; read after run() returns.
struct UringStats {
  uint64_t enters = 0;         // submit_and_wait calls (one io_uring_enter each)
  uint64_t early_submits = 0;  // extra io_uring_enter because the SQ filled within a turn
  uint64_t cqes = 0;           // completions handled
  uint64_t sqes = 0;           // operations queued
  uint64_t recv_arms = 0;      // multishot receives armed (first arm and re-arms)
  uint64_t recv_rearms = 0;    // ... of which after a multishot ended without EOF or close
  uint64_t enobufs = 0;        // receives ended by an empty buffer ring
  uint64_t recv_cancels = 0;   // receives cancelled for backpressure
  uint64_t short_sends = 0;    // sends that took fewer bytes than offered
  uint64_t zc_sends = 0;       // zero-copy sends
  uint64_t cq_overflows = 0;   // turns that found completions held back by a full CQ
  uint64_t cq_dropped = 0;     // completions the kernel dropped (never expected)
  uint64_t accept_multishot_arms = 0;
  uint64_t accept_single_arms = 0;
  uint64_t accept_pauses = 0;   // times accepting stopped because the file table was full
  uint64_t accept_dropped = 0;  // accepted into a full table (-ENFILE): the kernel closed it

  void add(const UringStats& o);
};

}  // namespace c10m::engine
