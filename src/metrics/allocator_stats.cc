#include "metrics/allocator_stats.h"

#include <dlfcn.h>
#include <malloc.h>

#include <cstddef>

namespace c10m::metrics {
namespace {

using GetNumericPropertyFn = int (*)(const char*, size_t*);

GetNumericPropertyFn tcmalloc_property_fn() {
  static const auto fn = reinterpret_cast<GetNumericPropertyFn>(
      ::dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty"));
  return fn;
}

uint64_t property(GetNumericPropertyFn fn, const char* name) {
  size_t v = 0;
  return fn(name, &v) != 0 ? v : 0;
}

}  // namespace

bool tcmalloc_linked() { return tcmalloc_property_fn() != nullptr; }

void read_allocator_stats(AllocatorStats* out) {
  *out = AllocatorStats{};
  if (GetNumericPropertyFn fn = tcmalloc_property_fn()) {
    out->allocator = "tcmalloc";
    out->has_tcmalloc = true;
    TcmallocStats& t = out->tcmalloc;
    t.current_allocated_bytes = property(fn, "generic.current_allocated_bytes");
    t.heap_size = property(fn, "generic.heap_size");
    t.pageheap_free_bytes = property(fn, "tcmalloc.pageheap_free_bytes");
    t.pageheap_unmapped_bytes = property(fn, "tcmalloc.pageheap_unmapped_bytes");
    t.thread_cache_bytes = property(fn, "tcmalloc.current_total_thread_cache_bytes");
    t.central_cache_free_bytes = property(fn, "tcmalloc.central_cache_free_bytes");
    t.transfer_cache_free_bytes = property(fn, "tcmalloc.transfer_cache_free_bytes");
    out->bytes_in_use = t.current_allocated_bytes;
    return;
  }
  // Sanitizer runtimes replace malloc; mallinfo2 would describe glibc's unused arena.
  using SanitizerBytesFn = size_t (*)();
  static const auto sanitizer_bytes = reinterpret_cast<SanitizerBytesFn>(
      ::dlsym(RTLD_DEFAULT, "__sanitizer_get_current_allocated_bytes"));
  if (sanitizer_bytes != nullptr) {
    out->allocator = "sanitizer";
    out->bytes_in_use = sanitizer_bytes();
    return;
  }
  const struct mallinfo2 mi = ::mallinfo2();
  out->bytes_in_use = mi.uordblks + mi.hblkhd;
}

}  // namespace c10m::metrics
