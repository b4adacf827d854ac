#include "base/buffer_pool.h"

#include <cstdlib>
#include <new>

namespace c10m {

BufferPool::BufferPool(size_t block_size, bool enabled, size_t max_cached)
    : block_size_(block_size), enabled_(enabled), max_cached_(max_cached) {
  if (enabled_) free_.reserve(max_cached_);
}

BufferPool::~BufferPool() {
  for (uint8_t* b : free_) std::free(b);
}

uint8_t* BufferPool::acquire() {
  ++outstanding_;
  if (!free_.empty()) {
    uint8_t* b = free_.back();
    free_.pop_back();
    return b;
  }
  void* p = std::malloc(block_size_);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<uint8_t*>(p);
}

void BufferPool::trim(size_t keep) {
  while (free_.size() > keep) {
    std::free(free_.back());
    free_.pop_back();
  }
}

void BufferPool::release(uint8_t* block) {
  if (block == nullptr) return;
  --outstanding_;
  if (enabled_ && free_.size() < max_cached_) {
    free_.push_back(block);
  } else {
    std::free(block);
  }
}

}  // namespace c10m
