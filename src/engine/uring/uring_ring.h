#pragma once
// UringRing: the real io_uring behind UringIo, and the start-up probe of what the kernel
// offers.
//
// Kernel features relied on (the probe checks each; Linux 6.7 or newer has them all):
//   IORING_SETUP_SINGLE_ISSUER (6.0) + DEFER_TASKRUN (6.1): completions are produced only
//     inside this thread's io_uring_enter, no task-work interrupts;
//   IORING_SETUP_SUBMIT_ALL, CQSIZE, R_DISABLED; IORING_FEAT_NODROP and EXT_ARG (a wait
//     timeout without a timeout request);
//   registered ring fd (5.18); a sparse fixed-file table and accept into it with
//     IORING_FILE_INDEX_ALLOC, multishot accept, provided-buffer rings (5.19);
//   multishot receive (6.0); IORING_ASYNC_CANCEL_FD_FIXED | ALL (5.19);
//   setsockopt through IORING_OP_URING_CMD on a direct descriptor (6.7) for SO_LINGER.
// Optional (used when present, logged at start): incremental buffer consumption
// IOU_PBUF_RING_INC (6.12); IORING_OP_SEND_ZC (6.0).
//
// Thread rule: created, registered and destroyed by the engine's thread; after enable()
// used only by the loop thread that called enable() (SINGLE_ISSUER binds the ring to it).
#include <liburing.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/noncopyable.h"
#include "engine/uring/uring_buffer_ring.h"
#include "engine/uring/uring_io.h"

namespace c10m::engine {

/// What the kernel offers, probed once per process.
struct UringSupport {
  std::string error;         // "" when the engine can run; else why not, for the user
  bool incremental = false;  // IOU_PBUF_RING_INC
  bool send_zc = false;      // IORING_OP_SEND_ZC
};
/// Probes on first call (creates and destroys a small ring and a socket); thread-safe.
const UringSupport& uring_support();

/// Sizes and switches of one loop's ring (defaults: what the engine uses; tests shrink them
/// to force the rare paths).
struct UringOptions {
  uint32_t sq_entries = 4096;   // submission queue (a fuller turn submits early)
  uint32_t cq_entries = 32768;  // completion queue (overflow is handled, not expected)
  uint32_t buffers = 0;         // receive buffers per loop; 0: 4 MiB worth, 64..32768
  uint32_t buffer_size = 0;     // bytes per receive buffer; 0: --readbuf (at most 64 KiB)
  bool incremental = true;      // use IOU_PBUF_RING_INC when the kernel has it
  uint32_t fixed_files = 0;     // direct descriptors per loop; 0: the fd limit (RLIMIT_NOFILE)
  size_t zerocopy_min = 0;      // SEND_ZC for a first block of at least this; 0: --zerocopy-min
  /// Tests only: runs on the loop thread before each wait, so that a test can hold a loop
  /// in user space while its peers write (the completions then arrive in one burst).
  std::function<void()> before_wait;
};

class UringRing final : public UringIo, NonCopyable {
 public:
  static constexpr uint16_t kBufferGroup = 0;

  UringRing() = default;
  ~UringRing() override;

  /// Creates the ring (disabled until enable()), registers `fixed_files` empty direct
  /// descriptors and `buffers`. Any thread. Returns "" or what failed.
  std::string init(const UringOptions& opts, uint32_t fixed_files, UringBufferRing* buffers);
  /// On the loop thread, before any other call: binds the ring to this thread and registers
  /// the ring fd with it. Returns "" or what failed.
  std::string enable();
  /// Undoes enable()'s fd registration; on the loop thread, when its loop ends.
  void disable();

  void accept(int listen_fd, bool multishot, uint64_t ud) override;
  void poll_in(int fd, uint64_t ud) override;
  void poll_in_multishot(int fd, uint64_t ud) override;
  void recv_multishot(uint32_t slot, uint16_t group, uint64_t ud) override;
  void send(uint32_t slot, const iovec* iov, int cnt, bool zerocopy, uint64_t ud) override;
  void cancel(uint64_t target, uint64_t ud) override;
  void cancel_slot(uint32_t slot, uint64_t ud) override;
  void linger_reset(uint32_t slot, uint64_t ud) override;
  void set_rcvlowat(uint32_t slot, const int* bytes, uint64_t ud) override;
  void close_slot(uint32_t slot, uint64_t ud) override;
  int submit_and_wait(Nanos timeout) override;
  int reap(UringCqe* out, int max) override;

  /// Ring-level tallies (enters, early submits, overflow) are added into `stats`.
  void set_stats(UringStats* stats) { stats_ = stats; }

 private:
  io_uring_sqe* get_sqe();
  void submitted();  // after an enter: the sendmsg arena may be reused

  io_uring ring_{};
  bool ring_ok_ = false;
  bool fd_registered_ = false;
  UringStats* stats_ = nullptr;
  unsigned dropped_seen_ = 0;
  std::function<void()> before_wait_;  // UringOptions::before_wait
  // sendmsg needs a msghdr and iovec array that live until the kernel has read them,
  // which it does while submitting: one arena per batch, reset after each enter.
  static constexpr int kArenaMsgs = 256;
  struct SendMsg {
    msghdr msg;
    iovec iov[kUringMaxSendIov];
  };
  std::unique_ptr<SendMsg[]> arena_;
  int arena_used_ = 0;
};

}  // namespace c10m::engine
