#pragma once
// Write coalescing for one load loop: every request a connection produces during one
// event-loop turn is staged here and leaves in one write/writev at the end of the turn.
//
// Layout: one arena per loop (fixed size, allocated once) holds the staged bytes of every
// connection in the order they were produced; each connection owns a chain of segments
// (offset, length) into it, so frames of several connections may interleave in the arena
// (open model: timers of many connections firing in one turn) and each connection still
// writes its own bytes, in order, with one writev. A frame appended right behind the same
// connection's previous one extends that segment (closed loop: the replacements for the
// replies of one read form one segment). A connection is listed as dirty once per chain.
// reset() forgets everything after the loop has flushed every dirty connection.
//
// Bounds: the arena never grows; when a frame does not fit (room() < len) the caller
// flushes everything first. Segments and the dirty list are vectors that reach their
// high-water mark in the first turns and are reused (no allocation in steady state).
//
// Thread rule: one stage per loop, used by that loop's thread only.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/noncopyable.h"

namespace c10m::loadclient {

class WriteStage : NonCopyable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  /// A connection's staged segments (8 bytes, kept in the connection).
  struct Chain {
    uint32_t head = kNone;
    uint32_t tail = kNone;
    bool empty() const { return head == kNone; }
  };
  struct Segment {
    uint32_t off;
    uint32_t len;
    uint32_t next;  // kNone at the chain's end
  };

  explicit WriteStage(size_t arena_bytes) : arena_(arena_bytes) {
    segs_.reserve(1024);
    dirty_.reserve(1024);
  }

  size_t capacity() const { return arena_.size(); }
  size_t room() const { return arena_.size() - used_; }
  bool idle() const { return dirty_.empty(); }

  /// Where the next `len` bytes go (room() >= len); fill them, then commit().
  uint8_t* reserve(size_t len) {
    (void)len;
    return arena_.data() + used_;
  }
  /// Appends the `len` bytes just written at reserve() to `conn`'s chain.
  void commit(Chain& chain, uint32_t conn, size_t len) {
    const auto off = static_cast<uint32_t>(used_);
    used_ += len;
    if (chain.tail != kNone) {
      Segment& t = segs_[chain.tail];
      if (t.off + t.len == off) {  // right behind this connection's last bytes
        t.len += static_cast<uint32_t>(len);
        return;
      }
    }
    const auto s = static_cast<uint32_t>(segs_.size());
    segs_.push_back({off, static_cast<uint32_t>(len), kNone});
    if (chain.tail == kNone) {
      chain.head = s;
      dirty_.push_back(conn);
    } else {
      segs_[chain.tail].next = s;
    }
    chain.tail = s;
  }

  /// Connections with a chain started since reset(), in order (a connection whose chain
  /// was dropped and restarted appears twice; its chain is then empty at the first).
  const std::vector<uint32_t>& dirty() const { return dirty_; }
  const Segment& segment(uint32_t s) const { return segs_[s]; }
  const uint8_t* bytes(const Segment& s) const { return arena_.data() + s.off; }

  /// Forgets every segment and the dirty list; chains must have been taken (set to {}).
  void reset() {
    used_ = 0;
    segs_.clear();
    dirty_.clear();
  }

 private:
  std::vector<uint8_t> arena_;
  size_t used_ = 0;
  std::vector<Segment> segs_;
  std::vector<uint32_t> dirty_;
};

}  // namespace c10m::loadclient
