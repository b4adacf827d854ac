#include "metrics/allocation_counter.h"

#include <dlfcn.h>

#include <cstddef>
#include <mutex>

namespace c10m::metrics {
namespace {

AllocationCounts g_process_counts;
std::atomic<AllocationCounts*> g_target{&g_process_counts};
std::atomic<AllocationHook> g_hook{AllocationHook::kNone};

inline void count(size_t size) {
  AllocationCounts* t = g_target.load(std::memory_order_relaxed);
  t->count.fetch_add(1, std::memory_order_relaxed);
  t->bytes.fetch_add(size, std::memory_order_relaxed);
}

// gperftools' C hook type (gperftools/malloc_hook_c.h): called after every allocation.
void tcmalloc_new_hook(const void* ptr, size_t size) {
  if (ptr != nullptr) count(size);
}
using AddNewHookFn = int (*)(void (*)(const void*, size_t));

// compiler-rt / libsanitizer allocator hooks (sanitizer/allocator_interface.h).
void sanitizer_malloc_hook(const volatile void* ptr, size_t size) {
  if (ptr != nullptr) count(size);
}
void sanitizer_free_hook(const volatile void*) {}
using InstallSanitizerHooksFn = int (*)(void (*)(const volatile void*, size_t),
                                        void (*)(const volatile void*));

AllocationHook install_once() {
  // Only tcmalloc defines MallocExtension_GetNumericProperty; libprofiler alone carries
  // a MallocHook too, but its hooks are never called by glibc malloc.
  if (::dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty") != nullptr) {
    if (auto add = reinterpret_cast<AddNewHookFn>(::dlsym(RTLD_DEFAULT, "MallocHook_AddNewHook"));
        add != nullptr && add(&tcmalloc_new_hook) != 0)
      return AllocationHook::kTcmalloc;
  }
  if (auto install = reinterpret_cast<InstallSanitizerHooksFn>(
          ::dlsym(RTLD_DEFAULT, "__sanitizer_install_malloc_and_free_hooks"));
      install != nullptr && install(&sanitizer_malloc_hook, &sanitizer_free_hook) != 0)
    return AllocationHook::kSanitizer;
  return AllocationHook::kNone;
}

}  // namespace

const char* allocation_hook_name(AllocationHook h) {
  switch (h) {
    case AllocationHook::kTcmalloc:
      return "tcmalloc";
    case AllocationHook::kSanitizer:
      return "sanitizer";
    case AllocationHook::kNone:
      break;
  }
  return "none";
}

AllocationHook install_allocation_counter(AllocationCounts* into) {
  g_target.store(into != nullptr ? into : &g_process_counts, std::memory_order_relaxed);
  static std::once_flag once;
  std::call_once(once, [] { g_hook.store(install_once(), std::memory_order_relaxed); });
  return g_hook.load(std::memory_order_relaxed);
}

AllocationHook allocation_hook() { return g_hook.load(std::memory_order_relaxed); }

AllocationCounts* allocation_target() { return g_target.load(std::memory_order_relaxed); }

bool retarget_allocation_counter_away_from(const void* begin, const void* end) {
  AllocationCounts* t = g_target.load(std::memory_order_relaxed);
  const auto* p = reinterpret_cast<const char*>(t);
  if (p < static_cast<const char*>(begin) || p >= static_cast<const char*>(end)) return false;
  g_target.store(&g_process_counts, std::memory_order_relaxed);
  return true;
}

}  // namespace c10m::metrics
