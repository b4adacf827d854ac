#pragma once
// A provided-buffer ring (IORING_REGISTER_PBUF_RING, kernel 5.19+) and its buffers, set up
// by hand: liburing 2.3 (Debian 12) has no io_uring_setup_buf_ring, so the ring entries
// live in page-aligned anonymous memory mapped here and the buffers in a second mapping.
// The kernel takes buffers from the ring's head for multishot receives; the loop hands
// each one back at the tail as soon as it has passed the bytes to the session (which copies
// what it keeps), so between loop turns every buffer is back in the ring.
//
// Incremental mode (IOU_PBUF_RING_INC, kernel 6.12+): the kernel consumes a buffer a piece
// at a time across receives of any connection, and sets IORING_CQE_F_BUF_MORE while it
// keeps the rest; many small receives then share one buffer instead of taking one each.
// This class tracks where the next piece of each buffer starts.
//
// Memory: count * size bytes of buffers (pages touched on first use) plus count * 16 bytes
// of ring. Bounds: count is a power of two, 1..32768; size 1..1 GiB.
// Thread rule: the loop's thread only (the kernel reads the ring during io_uring_enter).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/noncopyable.h"

struct io_uring_buf_ring;

namespace c10m::engine {

class UringBufferRing : NonCopyable {
 public:
  static constexpr uint32_t kMaxCount = 32768;

  /// Maps the ring and buffers and puts every buffer in the ring. `count` is rounded up to
  /// a power of two (at most kMaxCount). Check error() afterwards.
  UringBufferRing(uint32_t count, uint32_t size, bool incremental);
  ~UringBufferRing();

  /// "" or what failed (mmap).
  const std::string& error() const { return error_; }
  io_uring_buf_ring* ring() const { return ring_; }
  uint32_t count() const { return count_; }
  uint32_t size() const { return size_; }
  bool incremental() const { return incremental_; }

  /// The `len` bytes a receive completion delivered into buffer `bid`: from the buffer's
  /// start, or in incremental mode from where the previous piece ended. Returns an empty
  /// span (and counts an anomaly) when bid or the length is out of range.
  std::span<const uint8_t> take(uint16_t bid, uint32_t len);
  /// After take(): the kernel is done with `bid` unless `kernel_keeps`
  /// (IORING_CQE_F_BUF_MORE); then it goes back into the ring (visible after publish()).
  void release(uint16_t bid, bool kernel_keeps);
  /// Makes the buffers released since the last call visible to the kernel (one store).
  void publish();

  /// Buffers released but not yet published (0 right after publish()).
  uint16_t unpublished() const { return pending_; }
  /// take() calls that were out of range (a kernel/loop disagreement; never expected).
  uint64_t anomalies() const { return anomalies_; }

 private:
  void add(uint16_t bid);

  std::string error_;
  io_uring_buf_ring* ring_ = nullptr;
  size_t ring_bytes_ = 0;
  uint8_t* bufs_ = nullptr;
  size_t bufs_bytes_ = 0;
  uint32_t count_ = 0;
  uint32_t size_ = 0;
  bool incremental_ = false;
  uint16_t pending_ = 0;  // released, not yet published
  uint64_t anomalies_ = 0;
  std::unique_ptr<uint32_t[]> offset_;  // per buffer: bytes already consumed (incremental)
};

}  // namespace c10m::engine
