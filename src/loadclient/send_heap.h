#pragma once
// The open-model send schedule of one load loop: an indexed binary min-heap of
// (due time, connection index) with at most one entry per connection.
//
// Cost: push, pop, remove and reschedule_top are O(log n) in the scheduled connections;
// top is O(1). Memory is fixed at construction (a 16-byte slot and a 4-byte position per
// connection the loop owns), so nothing is allocated while a run sends, and a closed
// connection's entry is removed at once (no stale entries to skip).
//
// Thread rule: one heap per loop, used by that loop's thread only.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/clock.h"
#include "base/noncopyable.h"

namespace c10m::loadclient {

class SendHeap : NonCopyable {
 public:
  static constexpr uint32_t kAbsent = UINT32_MAX;

  /// Room for connections 0 .. conns-1.
  explicit SendHeap(size_t conns) : pos_(conns, kAbsent) { heap_.reserve(conns); }

  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  /// The earliest due time, or kNever when empty.
  Nanos top_when() const { return heap_.empty() ? kNever : heap_[0].when; }
  /// The connection due first. Requires !empty().
  uint32_t top_conn() const { return heap_[0].conn; }
  bool contains(uint32_t conn) const { return pos_[conn] != kAbsent; }

  /// Schedules `conn` (which must not be scheduled) at `when`.
  void push(uint32_t conn, Nanos when) {
    heap_.push_back({when, conn});
    pos_[conn] = static_cast<uint32_t>(heap_.size() - 1);
    sift_up(heap_.size() - 1);
  }
  /// Moves the top connection to `when` (its next send): one sift down.
  void reschedule_top(Nanos when) {
    heap_[0].when = when;
    sift_down(0);
  }
  /// Removes the top connection. Requires !empty().
  void pop() { remove_at(0); }
  /// Removes `conn` if it is scheduled.
  void remove(uint32_t conn) {
    if (pos_[conn] != kAbsent) remove_at(pos_[conn]);
  }

 private:
  struct Entry {
    Nanos when;
    uint32_t conn;
  };

  void set(size_t i, const Entry& e) {
    heap_[i] = e;
    pos_[e.conn] = static_cast<uint32_t>(i);
  }
  void remove_at(size_t i) {
    pos_[heap_[i].conn] = kAbsent;
    const Entry last = heap_.back();
    heap_.pop_back();
    if (i == heap_.size()) return;
    set(i, last);
    if (i > 0 && heap_[(i - 1) / 2].when > last.when)
      sift_up(i);
    else
      sift_down(i);
  }
  void sift_up(size_t i) {
    const Entry e = heap_[i];
    while (i > 0) {
      const size_t parent = (i - 1) / 2;
      if (heap_[parent].when <= e.when) break;
      set(i, heap_[parent]);
      i = parent;
    }
    set(i, e);
  }
  void sift_down(size_t i) {
    const Entry e = heap_[i];
    const size_t n = heap_.size();
    for (;;) {
      size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap_[child + 1].when < heap_[child].when) ++child;
      if (heap_[child].when >= e.when) break;
      set(i, heap_[child]);
      i = child;
    }
    set(i, e);
  }

  std::vector<Entry> heap_;
  std::vector<uint32_t> pos_;
};

}  // namespace c10m::loadclient
