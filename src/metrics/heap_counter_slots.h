#pragma once
// HeapCounterSlots: counter blocks on the heap, for one process (tests, a single-process
// server). Also a CounterSource summing its own blocks.
//
// Ownership: owns `capacity` blocks allocated at construction; slot() addresses are
// stable for the object's lifetime. Thread rule: as ThreadCounters (each slot has one
// writer); collect() from any thread.
#include <cstddef>
#include <memory>

#include "metrics/counter_source.h"
#include "metrics/counters.h"

namespace c10m::metrics {

class HeapCounterSlots final : public CounterSlots, public CounterSource {
 public:
  explicit HeapCounterSlots(size_t capacity);
  ~HeapCounterSlots() override;

  /// `index` < capacity() (checked: out of range aborts).
  ThreadCounters* slot(size_t index) override;
  size_t capacity() const override { return capacity_; }

  void collect(CounterTotals* out) const override;
  std::vector<pid_t> processes() const override;
  size_t worker_processes() const override { return 1; }

 private:
  size_t capacity_;
  ThreadCounters* blocks_;  // aligned new[] of capacity_ blocks
};

}  // namespace c10m::metrics
