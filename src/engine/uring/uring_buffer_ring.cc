#include "engine/uring/uring_buffer_ring.h"

#include <liburing.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace c10m::engine {
namespace {

size_t round_to_pages(size_t n) {
  const long page = ::sysconf(_SC_PAGESIZE);
  const size_t p = page > 0 ? static_cast<size_t>(page) : 4096;
  return (n + p - 1) / p * p;
}

uint32_t round_to_pow2(uint32_t n) {
  uint32_t p = 1;
  while (p < n && p < UringBufferRing::kMaxCount) p <<= 1;
  return p;
}

}  // namespace

UringBufferRing::UringBufferRing(uint32_t count, uint32_t size, bool incremental)
    : count_(round_to_pow2(count == 0 ? 1 : count)),
      size_(size == 0 ? 1 : size),
      incremental_(incremental) {
  ring_bytes_ = round_to_pages(sizeof(io_uring_buf) * count_);
  void* r =
      ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (r == MAP_FAILED) {
    error_ = std::string("mmap of the buffer ring: ") + std::strerror(errno);
    ring_bytes_ = 0;
    return;
  }
  ring_ = static_cast<io_uring_buf_ring*>(r);
  bufs_bytes_ = round_to_pages(static_cast<size_t>(count_) * size_);
  void* b =
      ::mmap(nullptr, bufs_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (b == MAP_FAILED) {
    error_ = std::string("mmap of the receive buffers: ") + std::strerror(errno);
    bufs_bytes_ = 0;
    return;
  }
  bufs_ = static_cast<uint8_t*>(b);
  offset_ = std::make_unique<uint32_t[]>(count_);
  io_uring_buf_ring_init(ring_);
  for (uint32_t i = 0; i < count_; ++i) add(static_cast<uint16_t>(i));
  publish();
}

UringBufferRing::~UringBufferRing() {
  if (bufs_ != nullptr) ::munmap(bufs_, bufs_bytes_);
  if (ring_ != nullptr) ::munmap(ring_, ring_bytes_);
}

void UringBufferRing::add(uint16_t bid) {
  io_uring_buf_ring_add(ring_, bufs_ + static_cast<size_t>(bid) * size_, size_, bid,
                        io_uring_buf_ring_mask(count_), pending_);
  ++pending_;
}

std::span<const uint8_t> UringBufferRing::take(uint16_t bid, uint32_t len) {
  if (bid >= count_ || len > size_ - offset_[bid]) {
    ++anomalies_;
    return {};
  }
  const uint8_t* p = bufs_ + static_cast<size_t>(bid) * size_ + offset_[bid];
  if (incremental_) offset_[bid] += len;
  return {p, len};
}

void UringBufferRing::release(uint16_t bid, bool kernel_keeps) {
  if (bid >= count_ || kernel_keeps) return;
  offset_[bid] = 0;
  add(bid);
}

void UringBufferRing::publish() {
  if (pending_ == 0) return;
  io_uring_buf_ring_advance(ring_, pending_);
  pending_ = 0;
}

}  // namespace c10m::engine
