#pragma once
// DirectRing: one io_uring instance of a --io direct load loop, holding up to `slots`
// connections as direct descriptors (its fixed-file table; the kernel caps a table at
// RLIMIT_NOFILE, so a loop with more connections drives several rings) and a
// provided-buffer ring their multishot receives fill.
//
// Sockets never enter the process fd table: IORING_OP_SOCKET creates each one straight
// into its slot, and linked operations on the fixed file set its options
// (IORING_OP_URING_CMD SOCKET_URING_OP_SETSOCKOPT: IP_BIND_ADDRESS_NO_PORT, TCP_NODELAY,
// SO_SNDBUF/SO_RCVBUF), bind it to its source address with port 0 (IORING_OP_BIND) and
// connect it (IORING_OP_CONNECT). Only failures of the steps before the connect post a
// completion (IOSQE_CQE_SKIP_SUCCESS); a failed step cancels the rest of the chain.
//
// Waking: the ring is SINGLE_ISSUER | COOP_TASKRUN | TASKRUN_FLAG, not DEFER_TASKRUN: a
// completion is task work that wakes the loop's thread wherever it sleeps, and the ring fd
// polls readable, so one epoll set over all of a loop's ring fds is its single wait
// (a DEFER_TASKRUN ring only completes inside io_uring_enter on that very ring).
//
// Buffers: incremental consumption (IOU_PBUF_RING_INC, Linux 6.12): many small receives
// of any connections share one buffer. The loop hands the bytes to its checks and gives
// the buffer back at once (take(), release(), publish() once per batch), so an idle
// connection owns none.
//
// Thread rule: created (SINGLE_ISSUER binds it to the creating thread) and used on the
// loop's thread only.
#include <liburing.h>
#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/noncopyable.h"
#include "metrics/counters.h"

namespace c10m::loadclient {

class DirectRing : NonCopyable {
 public:
  struct Options {
    uint32_t slots = 1;  // direct descriptors (<= RLIMIT_NOFILE)
    uint32_t sq_entries = 2048;
    uint32_t cq_entries = 8192;
    uint32_t buffers = 16;  // provided buffers (power of two)
    uint32_t buffer_size = 65536;
  };
  /// What a connection's socket gets before it connects (values must outlive the chain).
  struct SocketSetup {
    const sockaddr_in* dest;
    const sockaddr_in* source;  // nullptr: the kernel picks
    const int* nodelay;         // TCP_NODELAY value
    const int* sndbuf;          // nullptr: not set
    const int* rcvbuf;
  };

  DirectRing() = default;
  ~DirectRing();

  /// "" when this kernel runs --io direct, else one line naming the missing operation and
  /// the kernel version it needs. Probed once; any thread.
  static const std::string& unavailable();

  /// Creates the ring on the calling thread. `enters` counts every io_uring_enter it makes.
  /// Returns "" or what failed.
  std::string init(const Options& opts, metrics::Counter* enters);
  int ring_fd() const { return ring_.ring_fd; }
  /// Spares io_uring_enter the fd lookup (at most 16 per thread); false when refused.
  bool register_fd() { return io_uring_register_ring_fd(&ring_) == 1; }

  // ---- requests (queued; they leave at the next submit) ---------------------------------
  /// socket -> options -> bind (when a source is given) -> connect, linked, into `slot`.
  /// A failed step before the connect completes with `step_ud`; the connect with
  /// `connect_ud` (0 or -errno; -ECANCELED when an earlier step failed).
  void connect(uint32_t slot, const SocketSetup& s, uint64_t step_ud, uint64_t connect_ud);
  /// Multishot receive into the buffer ring.
  void recv(uint32_t slot, uint64_t ud);
  /// Non-blocking send: completes inside the submitting enter, -EAGAIN when the socket has
  /// no room. `msg` (sendmsg) must stay valid until then.
  void send(uint32_t slot, const void* buf, size_t len, uint64_t ud);
  void sendmsg(uint32_t slot, const msghdr* msg, uint64_t ud);
  /// One-shot POLLOUT.
  void poll_out(uint32_t slot, uint64_t ud);
  /// Cancels what is in flight on `slot` (when `cancel`), then closes it. Completions of
  /// both carry `ud` (only on failure; a cancel that found nothing ends with -ENOENT).
  void close_slot(uint32_t slot, bool cancel, uint64_t ud);

  /// Requests queued and not yet submitted.
  unsigned queued() const { return io_uring_sq_ready(&ring_); }
  /// One io_uring_enter: submits what is queued (operations that complete at once post
  /// their completions before it returns). Returns the count, or -errno.
  int submit();

  /// Calls f(user_data, res, flags) for every completion waiting (overflowed ones
  /// included) and marks them seen. Returns how many, or -errno when the ring failed.
  template <typename F>
  int reap(F&& f) {
    int n = 0;
    for (int flushes = 0;; ++flushes) {
      io_uring_cqe* cqe;
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        f(cqe->user_data, cqe->res, cqe->flags);
        ++seen;
      }
      io_uring_cq_advance(&ring_, seen);
      n += static_cast<int>(seen);
      if (!(IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_CQ_OVERFLOW) || flushes == 8)
        return n;  // (the rest of an overflow, if any, at the next reap)
      // The kernel kept completions the CQ had no room for (IORING_FEAT_NODROP): flush.
      const int rc = io_uring_get_events(&ring_);
      if (enters_ != nullptr) enters_->add();
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) return rc;
    }
  }
  /// Completions waiting in the CQ (user space, no syscall).
  unsigned ready() const { return io_uring_cq_ready(&ring_); }

  // ---- buffers --------------------------------------------------------------------------
  /// The `len` bytes a receive completion delivered into buffer `bid` (from where its
  /// previous piece ended). Empty when out of range (never expected).
  std::span<const uint8_t> take(uint16_t bid, uint32_t len);
  /// After take(): unless the kernel keeps using the buffer (IORING_CQE_F_BUF_MORE), it
  /// goes back into the ring, visible to the kernel after publish().
  void release(uint16_t bid, bool kernel_keeps);
  void publish();

  /// IORING_CQE_F_BUF_MORE (6.12; newer than Debian's headers).
  static constexpr uint32_t kCqeBufMore = 1U << 4;

 private:
  io_uring_sqe* sqe();

  io_uring ring_{};
  bool ok_ = false;
  metrics::Counter* enters_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  size_t br_bytes_ = 0;
  uint8_t* bufs_ = nullptr;
  size_t bufs_bytes_ = 0;
  uint32_t buf_count_ = 0;
  uint32_t buf_size_ = 0;
  uint16_t unpublished_ = 0;
  std::unique_ptr<uint32_t[]> offset_;  // per buffer: bytes the kernel already filled
};

}  // namespace c10m::loadclient
