#include "metrics/heap_counter_slots.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace c10m::metrics {

HeapCounterSlots::HeapCounterSlots(size_t capacity)
    : capacity_(capacity), blocks_(new ThreadCounters[capacity == 0 ? 1 : capacity]) {}

HeapCounterSlots::~HeapCounterSlots() { delete[] blocks_; }

ThreadCounters* HeapCounterSlots::slot(size_t index) {
  if (index >= capacity_) {
    std::fprintf(stderr, "c10m: counter slot %zu out of range (capacity %zu)\n", index, capacity_);
    std::abort();
  }
  return &blocks_[index];
}

void HeapCounterSlots::collect(CounterTotals* out) const {
  *out = CounterTotals{};
  for (size_t i = 0; i < capacity_; ++i) out->add(blocks_[i]);
  out->allocation_hook = allocation_hook();
  if (out->allocation_hook != AllocationHook::kNone) {
    out->allocations = allocation_target()->count.load(std::memory_order_relaxed);
    out->allocation_bytes = allocation_target()->bytes.load(std::memory_order_relaxed);
  }
}

std::vector<pid_t> HeapCounterSlots::processes() const { return {getpid()}; }

}  // namespace c10m::metrics
