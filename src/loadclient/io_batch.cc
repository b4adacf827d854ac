#include "loadclient/io_batch.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace c10m::loadclient {
namespace {

constexpr unsigned kRingFlags =
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
constexpr int kSendFlags = MSG_DONTWAIT | MSG_NOSIGNAL;

}  // namespace

const std::string& IoBatch::unavailable() {
  static const std::string why = [] {
    io_uring ring;
    io_uring_params p{};
    p.flags = kRingFlags;
    const int r = io_uring_queue_init_params(8, &ring, &p);
    if (r < 0)
      return std::string("io_uring (SINGLE_ISSUER, DEFER_TASKRUN: Linux 6.1+): ") +
             std::strerror(-r);
    io_uring_queue_exit(&ring);
    return std::string();
  }();
  return why;
}

IoBatch::~IoBatch() {
  if (capacity_ != 0) io_uring_queue_exit(&ring_);
}

std::string IoBatch::init(unsigned capacity) {
  io_uring_params p{};
  p.flags = kRingFlags | IORING_SETUP_CQSIZE;
  p.cq_entries = capacity;
  const int r = io_uring_queue_init_params(capacity, &ring_, &p);
  if (r < 0) return std::string("io_uring_queue_init: ") + std::strerror(-r);
  capacity_ = capacity;
  msgs_ = std::make_unique<Msg[]>(capacity);
  results_ = std::make_unique<Result[]>(capacity);
  return {};
}

io_uring_sqe* IoBatch::next_sqe() {
  ++queued_;
  return io_uring_get_sqe(&ring_);  // never null: queued_ <= capacity_ = SQ size
}

void IoBatch::recv(int fd, void* buf, size_t len, uint64_t tag) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_recv(sqe, fd, buf, len, MSG_DONTWAIT);
  sqe->user_data = tag;
}

void IoBatch::send(int fd, const void* buf, size_t len, uint64_t tag) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_send(sqe, fd, buf, len, kSendFlags);
  sqe->user_data = tag;
}

void IoBatch::sendmsg(int fd, const iovec* iov, int cnt, uint64_t tag) {
  Msg& m = msgs_[queued_];
  std::memcpy(m.iov, iov, sizeof(iovec) * static_cast<size_t>(cnt));
  m.hdr = {};
  m.hdr.msg_iov = m.iov;
  m.hdr.msg_iovlen = static_cast<size_t>(cnt);
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_sendmsg(sqe, fd, &m.hdr, kSendFlags);
  sqe->user_data = tag;
}

std::span<const IoBatch::Result> IoBatch::submit(int* err) {
  const unsigned want = queued_;
  queued_ = 0;
  if (want == 0) return {};
  int r;
  do {
    r = io_uring_submit_and_wait(&ring_, want);
  } while (r == -EINTR);
  if (r < 0) {
    *err = -r;
    return {};
  }
  unsigned n = 0;
  while (n < want) {
    io_uring_cqe* cqe = nullptr;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      results_[n++] = {cqe->user_data, cqe->res};
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    if (n < want) {  // not expected (every operation completes inline); wait, never drop
      r = io_uring_wait_cqe_nr(&ring_, &cqe, want - n);
      if (r < 0 && r != -EINTR) {
        *err = -r;
        return {};
      }
    }
  }
  return {results_.get(), n};
}

}  // namespace c10m::loadclient
