#pragma once
// A hashed timing wheel: O(1) schedule / cancel, expiry cost proportional to the timers
// that are due (plus one visit per revolution for timers further out than one turn).
//
// Layout: kSlots slots of kTick each (4096 x 10 ms = one revolution every 40.96 s). A timer
// with deadline d lives in slot ceil(d / kTick) mod kSlots and fires on the first advance()
// at or after d (never early; late by at most one tick plus the loop's own latency). A timer
// more than one revolution away stays in its slot and is skipped (one comparison) each
// revolution until it is due: an idle connection with the default 300 s idle timeout is
// looked at ~8 times over its life, never by a scan over all connections.
//
// Nodes are intrusive (TimerNode embedded in the owner): no allocation. Thread rule: one
// wheel per event loop, used by that loop's thread only.
#include <cstddef>
#include <cstdint>

#include "base/clock.h"
#include "base/noncopyable.h"

namespace c10m::engine {

struct TimerNode {
  TimerNode* timer_prev = nullptr;
  TimerNode* timer_next = nullptr;
  Nanos timer_deadline = kNever;  // kNever: not linked
};

class TimingWheel : NonCopyable {
 public:
  static constexpr Nanos kTick = 10 * kMillisecond;
  static constexpr size_t kSlots = 4096;  // power of two

  explicit TimingWheel(Nanos now) : current_(now / kTick) {
    for (auto& s : slots_) s.timer_prev = s.timer_next = &s;
  }

  /// Links `n` to fire at `deadline` (unlinking it first); kNever just unlinks.
  void schedule(TimerNode* n, Nanos deadline) {
    if (n->timer_deadline != kNever) {
      if (deadline != kNever && tick_of(deadline) == tick_of(n->timer_deadline)) {
        n->timer_deadline = deadline;  // same slot: nothing to move
        return;
      }
      unlink(n);
    }
    if (deadline == kNever) return;
    n->timer_deadline = deadline;
    link(n);
  }
  void cancel(TimerNode* n) {
    if (n->timer_deadline != kNever) unlink(n);
  }

  size_t size() const { return size_; }
  /// When advance() should next be called: the next tick boundary while any timer is
  /// linked, else kNever.
  Nanos next_advance() const { return size_ == 0 ? kNever : (current_ + 1) * kTick; }

  /// Fires every timer with deadline <= now: `on_expire(node)` is called with the node
  /// already unlinked (it may schedule it again, or any other node).
  template <typename F>
  void advance(Nanos now, F&& on_expire) {
    const int64_t target = now / kTick;
    size_t steps = 0;
    while (current_ < target && steps < kSlots) {
      ++current_;
      ++steps;
      TimerNode& head = slots_[static_cast<size_t>(current_) & (kSlots - 1)];
      if (head.timer_next == &head) continue;
      // Detach the slot so callbacks may relink nodes anywhere, this slot included.
      TimerNode pending;
      pending.timer_next = head.timer_next;
      pending.timer_prev = head.timer_prev;
      pending.timer_next->timer_prev = &pending;
      pending.timer_prev->timer_next = &pending;
      head.timer_prev = head.timer_next = &head;
      while (pending.timer_next != &pending) {
        TimerNode* n = pending.timer_next;
        n->timer_next->timer_prev = &pending;
        pending.timer_next = n->timer_next;
        n->timer_prev = n->timer_next = nullptr;
        if (n->timer_deadline <= now) {
          n->timer_deadline = kNever;
          --size_;
          on_expire(n);
        } else {
          link_slot(n);  // due in a later revolution
        }
      }
    }
    if (current_ < target) current_ = target;  // stalled for a whole revolution or more
  }

 private:
  static int64_t tick_of(Nanos deadline) { return (deadline + kTick - 1) / kTick; }

  void link(TimerNode* n) {
    ++size_;
    link_slot(n);
  }
  void link_slot(TimerNode* n) {
    int64_t t = tick_of(n->timer_deadline);
    if (t <= current_) t = current_ + 1;
    TimerNode& head = slots_[static_cast<size_t>(t) & (kSlots - 1)];
    n->timer_next = &head;
    n->timer_prev = head.timer_prev;
    head.timer_prev->timer_next = n;
    head.timer_prev = n;
  }
  void unlink(TimerNode* n) {
    n->timer_prev->timer_next = n->timer_next;
    n->timer_next->timer_prev = n->timer_prev;
    n->timer_prev = n->timer_next = nullptr;
    n->timer_deadline = kNever;
    --size_;
  }

  int64_t current_;  // the last tick processed
  size_t size_ = 0;
  TimerNode slots_[kSlots];
};

}  // namespace c10m::engine
