#pragma once
// Hot-path counters: one `ThreadCounters` block per event-loop / worker thread, written by
// that thread only (relaxed load+store, no lock, no atomic RMW, no shared cache line) and
// summed by the reader at scrape time. Blocks are plain-old-data with a fixed layout so
// they can live in a shared-memory segment that another process (the one serving
// /metrics for several workers) reads.
//
// Thread rule: `add`/`sub`/`set` only from the owning thread; `load` from anywhere;
// `add_atomic` from any thread.
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace c10m::metrics {

/// A single-writer counter: increments are a relaxed load + store (no lock prefix).
class Counter {
 public:
  void add(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  void set(uint64_t n) { v_.store(n, std::memory_order_relaxed); }
  uint64_t load() const { return v_.load(std::memory_order_relaxed); }
  /// For blocks with several writers (merging a private block into a shared one): an
  /// atomic RMW, never used on the single-writer hot path.
  void add_atomic(uint64_t n) { v_.fetch_add(n, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

enum class AcceptError : uint8_t { kEmfile, kEnfile, kNomem, kOther, kCount };
enum class TimeoutKind : uint8_t { kIdle, kFrame, kWrite, kCount };
/// Actions the memory budget takes (core/memory_budget.h), in the order they begin.
enum class OverloadAction : uint8_t {
  kPauseRead,    // a connection holding more than the pressure queue stopped being served
  kShrinkQueue,  // a connection accepted under pressure got the pressure queue for life
  kStopAccept,   // an event loop stopped accepting
  kCloseError,   // a connection closed with ERROR OVERLOADED (nothing else was queued)
  kCloseReset,   // a connection closed with RST (its queued output was dropped)
  kAcceptRate,   // a loop stopped accepting until its --accept-rate allows the next one
  kCount
};

/// frame_service_seconds buckets (upper bounds, seconds); the last is +Inf.
inline constexpr double kServiceBuckets[] = {1e-5, 5e-5, 1e-4,   2.5e-4, 5e-4, 1e-3, 2.5e-3,
                                             5e-3, 1e-2, 2.5e-2, 5e-2,   0.1,  0.25, 1.0};
inline constexpr size_t kServiceBucketCount = std::size(kServiceBuckets) + 1;

struct alignas(64) ThreadCounters {
  Counter conns_opened;  // accepted and kept (conns_open = opened - closed)
  Counter conns_closed;
  Counter accept_total;  // every accepted socket, including those refused by max-conns
  Counter accept_errors[static_cast<size_t>(AcceptError::kCount)];
  Counter overloaded_total;  // refused with ERROR OVERLOADED (also in protocol_errors)
  Counter bytes_in;
  Counter bytes_out;
  Counter frames[7];           // requests fully received, by type value 1..6 (index 0 unused)
  Counter protocol_errors[7];  // ERROR frames sent, by code 1..6 (index 0 unused)
  Counter truncated_frames;    // EOF inside a request frame
  Counter timeouts[static_cast<size_t>(TimeoutKind::kCount)];
  Counter write_queue_drops;  // connections closed by the write timeout
  Counter write_queue_bytes;  // gauge: bytes currently queued (add on queue, sub on send)
  Counter drain_forced;
  Counter memory_budget_bytes;  // gauge: bytes of pooled blocks sessions hold (budget use)
  Counter memory_budget_limit;  // gauge: this process's --memory-limit (written by slot 0 only)
  Counter overload_actions[static_cast<size_t>(OverloadAction::kCount)];
  Counter sendfile_bytes;      // FETCH body bytes the kernel took through sendfile(2)
  Counter zerocopy_sends;      // sendmsg(MSG_ZEROCOPY) calls that the kernel accepted
  Counter zerocopy_completed;  // ... whose completion was read from the error queue
  Counter zerocopy_copied;     // ... of which the kernel copied after all (e.g. loopback)
  Counter discarded_bytes;     // SINK/CHUNK payload bytes dropped in the kernel (MSG_TRUNC)
  Counter service_count;       // frame_service_seconds histogram
  Counter service_sum_ns;
  Counter service_buckets[kServiceBucketCount];  // non-cumulative counts

  /// Records `count` requests with the same service time (fully received -> reply handed to
  /// the kernel).
  void observe_service(int64_t ns, uint64_t count = 1) {
    service_count.add(count);
    service_sum_ns.add(static_cast<uint64_t>(ns) * count);
    const double s = static_cast<double>(ns) * 1e-9;
    size_t i = 0;
    while (i < std::size(kServiceBuckets) && s > kServiceBuckets[i]) ++i;
    service_buckets[i].add(count);
  }
};

/// The counter blocks a process writes, one per worker thread. Implemented over shared
/// memory (so one /metrics endpoint can sum several worker processes) or the heap (tests).
class CounterSlots {
 public:
  virtual ~CounterSlots() = default;
  /// Block for worker thread `index` (0-based). Stable address for the process lifetime.
  virtual ThreadCounters* slot(size_t index) = 0;
  virtual size_t capacity() const = 0;
};

}  // namespace c10m::metrics
