#pragma once
// CounterTotals: the sum of many ThreadCounters blocks (every slot of every worker),
// taken at scrape time. Plain integers, no atomics: a snapshot owned by the reader.
//
// Cost: summing is O(slots), never O(connections). Reads are relaxed loads of blocks
// other threads are writing, so a snapshot is not atomic across counters (two counters
// read a few ns apart may disagree by the requests in flight) — standard for scrapes.
#include <cstddef>
#include <cstdint>

#include "metrics/allocation_counter.h"
#include "metrics/counters.h"

namespace c10m::metrics {

constexpr size_t kAcceptErrorCount = static_cast<size_t>(AcceptError::kCount);
constexpr size_t kTimeoutKindCount = static_cast<size_t>(TimeoutKind::kCount);
constexpr size_t kOverloadActionCount = static_cast<size_t>(OverloadAction::kCount);
constexpr size_t kFrameTypeSlots = 7;  // ThreadCounters::frames, by type value 1..6
constexpr size_t kErrorCodeSlots = 7;  // ThreadCounters::protocol_errors, by code 1..6

struct CounterTotals {
  uint64_t conns_opened = 0;
  uint64_t conns_closed = 0;
  /// Opened/closed of live workers only (conns_open() is their difference).
  uint64_t live_conns_opened = 0;
  uint64_t live_conns_closed = 0;
  uint64_t accept_total = 0;
  uint64_t accept_errors[kAcceptErrorCount] = {};
  uint64_t overloaded_total = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t frames[kFrameTypeSlots] = {};
  uint64_t protocol_errors[kErrorCodeSlots] = {};
  uint64_t truncated_frames = 0;
  uint64_t timeouts[kTimeoutKindCount] = {};
  uint64_t write_queue_drops = 0;
  /// Gauge: bytes queued now, live workers only, wrapping sum (a block may be "negative"
  /// when bytes are queued on one thread's block and sent on another's).
  uint64_t live_write_queue_bytes = 0;
  uint64_t drain_forced = 0;
  /// Gauges of live workers: budget bytes held (wrapping sum, like live_write_queue_bytes)
  /// and the sum of the workers' limits.
  uint64_t live_memory_budget_bytes = 0;
  uint64_t live_memory_budget_limit = 0;
  uint64_t overload_actions[kOverloadActionCount] = {};
  uint64_t service_count = 0;
  uint64_t service_sum_ns = 0;
  uint64_t service_buckets[kServiceBucketCount] = {};  // non-cumulative, like the blocks
  uint64_t sendfile_bytes = 0;
  uint64_t zerocopy_sends = 0;
  uint64_t zerocopy_completed = 0;
  uint64_t zerocopy_copied = 0;
  uint64_t discarded_bytes = 0;
  /// Heap allocations of the processes (allocation_counter.h); kNone: not counted.
  AllocationHook allocation_hook = AllocationHook::kNone;
  uint64_t allocations = 0;
  uint64_t allocation_bytes = 0;

  /// Adds one block. `live`: the writing process still runs, so its gauges count
  /// (a dead worker's connections were closed by the kernel; its counters stay summed
  /// so that totals never go backwards).
  void add(const ThreadCounters& block, bool live = true);

  /// Gauge: connections open now in live workers. A connection may be counted opened in
  /// one block and closed in another (e.g. acceptor and connection thread): only the sum
  /// is meaningful. Clamped at 0 for the instant where a close is seen before its open.
  uint64_t conns_open() const { return clamp(live_conns_opened - live_conns_closed); }
  uint64_t write_queue_bytes() const { return clamp(live_write_queue_bytes); }
  uint64_t memory_budget_bytes() const { return clamp(live_memory_budget_bytes); }

 private:
  static uint64_t clamp(uint64_t wrapped) { return wrapped > (uint64_t{1} << 63) ? 0 : wrapped; }
};

}  // namespace c10m::metrics
