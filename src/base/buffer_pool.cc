#include "base/buffer_pool.h"

#include <cstdlib>
#include <new>

// Under AddressSanitizer a cached block is poisoned while it sits in the pool, so a use
// after release() is reported even though the memory is not freed.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define C10M_POOL_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define C10M_POOL_ASAN 1
#endif
#ifdef C10M_POOL_ASAN
#include <sanitizer/asan_interface.h>
#define C10M_POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define C10M_POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define C10M_POOL_POISON(p, n) ((void)(p), (void)(n))
#define C10M_POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace c10m {

BufferPool::BufferPool(size_t block_size, bool enabled, size_t max_cached)
    : block_size_(block_size), enabled_(enabled), max_cached_(max_cached) {
  if (enabled_) free_.reserve(max_cached_);
}

BufferPool::~BufferPool() {
  for (uint8_t* b : free_) {
    C10M_POOL_UNPOISON(b, block_size_);
    std::free(b);
  }
}

uint8_t* BufferPool::acquire() {
  ++outstanding_;
  if (!free_.empty()) {
    uint8_t* b = free_.back();
    free_.pop_back();
    C10M_POOL_UNPOISON(b, block_size_);
    return b;
  }
  void* p = std::malloc(block_size_);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<uint8_t*>(p);
}

void BufferPool::release(uint8_t* block) {
  if (block == nullptr) return;
  --outstanding_;
  if (enabled_ && free_.size() < max_cached_) {
    C10M_POOL_POISON(block, block_size_);
    free_.push_back(block);
  } else {
    std::free(block);
    ++freed_;
  }
}

size_t BufferPool::trim(size_t keep) {
  size_t n = 0;
  while (free_.size() > keep) {
    uint8_t* b = free_.back();
    free_.pop_back();
    C10M_POOL_UNPOISON(b, block_size_);
    std::free(b);
    ++n;
  }
  freed_ += n;
  return n;
}

}  // namespace c10m
