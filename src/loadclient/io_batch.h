#pragma once
// IoBatch: the load loop's socket reads and writes of one phase (the reads of one epoll
// batch, the writes of one turn) leave in one io_uring_enter instead of one syscall each.
//
// Technique: every operation is non-blocking (MSG_DONTWAIT), so the kernel issues it inline
// during the enter and completes it there, with -EAGAIN where read()/write() would have
// returned EAGAIN; it never arms a poll or goes to a worker thread. submit() therefore
// returns every completion at once, and the loop keeps its readiness model (epoll), its
// order and its error handling; only the count of kernel entries changes. The ring is
// SINGLE_ISSUER + DEFER_TASKRUN: nothing runs behind the loop's back.
//
// Bounds: at most init()'s `capacity` operations per batch, with at most kMaxIov iovecs
// each; the caller submits when full(). Buffers must stay valid until submit() returns. No
// allocation after init().
//
// Thread rule: init() and every call on the loop thread that owns it (SINGLE_ISSUER binds
// the ring to the first thread that submits).
#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/noncopyable.h"

namespace c10m::loadclient {

class IoBatch : NonCopyable {
 public:
  static constexpr int kMaxIov = 64;
  struct Result {
    uint64_t tag;
    int32_t res;  // bytes, or -errno (-EAGAIN: the socket had no data / no room)
  };

  IoBatch() = default;
  ~IoBatch();

  /// Whether this kernel runs the batcher ("" if so, else why not); probed once, any thread.
  static const std::string& unavailable();

  /// Creates the ring for `capacity` operations per batch. Returns "" or what failed.
  std::string init(unsigned capacity);
  unsigned queued() const { return queued_; }
  bool full() const { return queued_ == capacity_; }

  void recv(int fd, void* buf, size_t len, uint64_t tag);
  void send(int fd, const void* buf, size_t len, uint64_t tag);
  /// `cnt` in 2..kMaxIov; the iovecs are copied.
  void sendmsg(int fd, const iovec* iov, int cnt, uint64_t tag);

  /// One io_uring_enter: submits what is queued and returns every completion (each with
  /// its operation's tag, in no promised order), valid until the next call. Returns an
  /// empty span on a ring failure (errno in `*err`), which the caller treats as fatal.
  std::span<const Result> submit(int* err);

 private:
  io_uring_sqe* next_sqe();

  io_uring ring_{};
  unsigned capacity_ = 0;  // 0 until init() made the ring
  unsigned queued_ = 0;
  struct Msg {
    msghdr hdr;
    iovec iov[kMaxIov];
  };
  std::unique_ptr<Msg[]> msgs_;  // one per slot; reused after each submit()
  std::unique_ptr<Result[]> results_;
};

}  // namespace c10m::loadclient
