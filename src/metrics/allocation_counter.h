#pragma once
// AllocationCounter: counts every heap allocation the process makes (number and bytes),
// from the allocator itself, so that "the hot path does not allocate" is a number a scrape
// or a test reads, not a claim (c10m_allocations_total, c10m_allocation_bytes_total).
//
// Source of the counts, found at run time with dlsym (this library never links an
// allocator): tcmalloc's new-hook (gperftools MallocHook_AddNewHook: every malloc, calloc,
// realloc, memalign and operator new), or under ASan/TSan the sanitizer allocator's
// __sanitizer_install_malloc_and_free_hooks. glibc malloc offers no hook: then nothing is
// counted and hook() says kNone (the server links tcmalloc; see src/admin/CMakeLists.txt).
//
// Target: the counts go to one AllocationCounts block, by default a process-static one;
// ShmCounterRegion::attach_worker() points it at the worker's header in shared memory,
// so /metrics sums every worker process. Cost per allocation: two relaxed atomic adds (a
// shared cache line among the process's threads) plus tcmalloc's slower hooked path,
// paid only by code that allocates.
//
// Thread rule: any thread. The hook never allocates.
#include <atomic>
#include <cstdint>

namespace c10m::metrics {

struct AllocationCounts {
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> bytes{0};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

enum class AllocationHook : uint8_t { kNone, kTcmalloc, kSanitizer };
const char* allocation_hook_name(AllocationHook h);  // "none" | "tcmalloc" | "sanitizer"

/// Installs the allocator hook once per process (later calls only retarget) and sends the
/// counts to `into` from now on (nullptr: the process-static block). `into` must stay
/// mapped for the process's lifetime once it was a target (see ShmCounterRegion).
/// Returns the hook in use.
AllocationHook install_allocation_counter(AllocationCounts* into = nullptr);
/// The hook installed so far (kNone before install_allocation_counter, or without one).
AllocationHook allocation_hook();
/// The block the counts go to now (the process-static one until retargeted).
AllocationCounts* allocation_target();
/// If the counts go into [begin, end), send them to the process-static block instead.
/// Returns true when it did (the caller must then keep that memory mapped).
bool retarget_allocation_counter_away_from(const void* begin, const void* end);

/// Allocations counted so far in the current target (0 without a hook).
inline uint64_t allocations_now() {
  return allocation_target()->count.load(std::memory_order_relaxed);
}

}  // namespace c10m::metrics
