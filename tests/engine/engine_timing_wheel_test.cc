// The epoll engine's hashed timing wheel: never early, O(1) reschedule/cancel, timers
// beyond one revolution, callbacks that reschedule.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "engine/timing_wheel.h"

namespace c10m::engine {
namespace {

constexpr Nanos kTick = TimingWheel::kTick;

struct Timer : TimerNode {
  int id = 0;
  Nanos fired_at = kNever;
};

TEST(TimingWheel, FiresAtOrAfterTheDeadlineNeverBefore) {
  Nanos now = 1000 * kSecond;
  TimingWheel w(now);
  std::mt19937_64 rng(42);
  std::vector<Timer> timers(2000);
  for (size_t i = 0; i < timers.size(); ++i) {
    timers[i].id = static_cast<int>(i);
    // Up to 3 revolutions out, including sub-tick deadlines.
    const Nanos d = now + static_cast<Nanos>(rng() % (3 * TimingWheel::kSlots * kTick));
    w.schedule(&timers[i], d);
  }
  std::vector<Nanos> deadlines;
  for (auto& t : timers) deadlines.push_back(t.timer_deadline);
  EXPECT_EQ(w.size(), timers.size());
  size_t fired = 0;
  while (fired < timers.size()) {
    now += 3 * kMillisecond + static_cast<Nanos>(rng() % (7 * kMillisecond));
    w.advance(now, [&](TimerNode* n) {
      auto* t = static_cast<Timer*>(n);
      t->fired_at = now;
      ++fired;
    });
  }
  EXPECT_EQ(w.size(), 0u);
  for (size_t i = 0; i < timers.size(); ++i) {
    EXPECT_GE(timers[i].fired_at, deadlines[i]);
    EXPECT_LE(timers[i].fired_at, deadlines[i] + kTick + 10 * kMillisecond);
  }
}

TEST(TimingWheel, RescheduleAndCancel) {
  Nanos now = 0;
  TimingWheel w(now);
  Timer a, b;
  w.schedule(&a, 50 * kMillisecond);
  w.schedule(&b, 50 * kMillisecond);
  w.schedule(&a, 500 * kMillisecond);  // moved out
  w.cancel(&b);
  w.schedule(&b, kNever);  // no-op
  EXPECT_EQ(w.size(), 1u);
  int fired = 0;
  w.advance(100 * kMillisecond, [&](TimerNode*) { ++fired; });
  EXPECT_EQ(fired, 0);
  w.advance(510 * kMillisecond, [&](TimerNode* n) {
    EXPECT_EQ(n, &a);
    ++fired;
  });
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(w.next_advance(), kNever);
}

TEST(TimingWheel, CallbackMayRescheduleAndLongStallsFireEverything) {
  Nanos now = 0;
  TimingWheel w(now);
  Timer a;
  w.schedule(&a, 20 * kMillisecond);
  int fired = 0;
  auto again = [&](TimerNode* n) {
    ++fired;
    if (fired < 3) w.schedule(n, now + 20 * kMillisecond);
  };
  for (int i = 0; i < 20; ++i) {
    now += 10 * kMillisecond;
    w.advance(now, again);
  }
  EXPECT_EQ(fired, 3);
  // A stall of several revolutions: all due timers fire in one advance.
  std::vector<Timer> many(100);
  for (size_t i = 0; i < many.size(); ++i)
    w.schedule(&many[i], now + static_cast<Nanos>(i + 1) * 7 * kMillisecond);
  int n = 0;
  now += 5 * static_cast<Nanos>(TimingWheel::kSlots) * kTick;
  w.advance(now, [&](TimerNode*) { ++n; });
  EXPECT_EQ(n, 100);
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimingWheel, PastDeadlinesFireOnTheNextAdvance) {
  Nanos now = 10 * kSecond;
  TimingWheel w(now);
  Timer a;
  w.schedule(&a, now - kSecond);
  int fired = 0;
  w.advance(now + kTick, [&](TimerNode*) { ++fired; });
  EXPECT_EQ(fired, 1);
}

}  // namespace
}  // namespace c10m::engine
