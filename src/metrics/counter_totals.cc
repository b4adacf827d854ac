#include "metrics/counter_totals.h"

namespace c10m::metrics {

void CounterTotals::add(const ThreadCounters& b, bool live) {
  const uint64_t opened = b.conns_opened.load();
  const uint64_t closed = b.conns_closed.load();
  conns_opened += opened;
  conns_closed += closed;
  if (live) {
    live_conns_opened += opened;
    live_conns_closed += closed;
    live_write_queue_bytes += b.write_queue_bytes.load();
    live_memory_budget_bytes += b.memory_budget_bytes.load();
    live_memory_budget_limit += b.memory_budget_limit.load();
  }
  accept_total += b.accept_total.load();
  for (size_t i = 0; i < kAcceptErrorCount; ++i) accept_errors[i] += b.accept_errors[i].load();
  overloaded_total += b.overloaded_total.load();
  bytes_in += b.bytes_in.load();
  bytes_out += b.bytes_out.load();
  for (size_t i = 0; i < kFrameTypeSlots; ++i) frames[i] += b.frames[i].load();
  for (size_t i = 0; i < kErrorCodeSlots; ++i) protocol_errors[i] += b.protocol_errors[i].load();
  truncated_frames += b.truncated_frames.load();
  for (size_t i = 0; i < kTimeoutKindCount; ++i) timeouts[i] += b.timeouts[i].load();
  write_queue_drops += b.write_queue_drops.load();
  drain_forced += b.drain_forced.load();
  for (size_t i = 0; i < kOverloadActionCount; ++i)
    overload_actions[i] += b.overload_actions[i].load();
  service_count += b.service_count.load();
  service_sum_ns += b.service_sum_ns.load();
  for (size_t i = 0; i < kServiceBucketCount; ++i)
    service_buckets[i] += b.service_buckets[i].load();
  sendfile_bytes += b.sendfile_bytes.load();
  zerocopy_sends += b.zerocopy_sends.load();
  zerocopy_completed += b.zerocopy_completed.load();
  zerocopy_copied += b.zerocopy_copied.load();
  discarded_bytes += b.discarded_bytes.load();
}

}  // namespace c10m::metrics
