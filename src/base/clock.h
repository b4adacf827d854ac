#pragma once
// Monotonic time as plain integers: every layer passes `Nanos` values, never reads a clock
// itself, so protocol logic is testable with a fake time.
#include <time.h>

#include <cstdint>
#include <limits>

namespace c10m {

using Nanos = int64_t;
constexpr Nanos kNever = std::numeric_limits<Nanos>::max();
constexpr Nanos kMicrosecond = 1'000;
constexpr Nanos kMillisecond = 1'000'000;
constexpr Nanos kSecond = 1'000'000'000;

/// CLOCK_MONOTONIC in nanoseconds. Thread-safe, no allocation (vDSO, no syscall).
inline Nanos mono_now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<Nanos>(ts.tv_sec) * kSecond + ts.tv_nsec;
}

}  // namespace c10m
