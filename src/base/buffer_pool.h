#pragma once
// Fixed-size byte blocks recycled through a free list: the C++ stand-in for Go's sync.Pool.
//
// Ownership: a block taken with acquire() belongs to the caller until release(). One pool
// per thread (event loop); acquire/release must be called on that thread (not thread-safe:
// no lock on the hot path). With pooling disabled every acquire is a malloc and every
// release a free (the "--pool=false" baseline). The pool keeps at most `max_cached` free
// blocks; beyond that release() frees, so an idle server returns memory.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/noncopyable.h"

namespace c10m {

class BufferPool : NonCopyable {
 public:
  BufferPool(size_t block_size, bool enabled, size_t max_cached = 1024);
  ~BufferPool();

  size_t block_size() const { return block_size_; }
  uint8_t* acquire();
  void release(uint8_t* block);

  size_t cached() const { return free_.size(); }
  /// Frees cached blocks until at most `keep` remain.
  void trim(size_t keep);
  size_t outstanding() const { return outstanding_; }

 private:
  const size_t block_size_;
  const bool enabled_;
  const size_t max_cached_;
  std::vector<uint8_t*> free_;
  size_t outstanding_ = 0;
};

}  // namespace c10m
