#pragma once
// AllocatorStats: what C++ has instead of a garbage collector to watch — the allocator.
// glibc malloc: mallinfo2() (in-use bytes = uordblks + hblkhd). When the binary is linked
// with tcmalloc (gperftools), its own figures through MallocExtension_GetNumericProperty,
// found at run time with dlsym so that this library never links tcmalloc itself (the
// server decides; sanitizer builds must not). Under a sanitizer runtime, its allocator's
// __sanitizer_get_current_allocated_bytes(). Any thread; O(arenas) for glibc.
#include <cstdint>

namespace c10m::metrics {

struct TcmallocStats {
  uint64_t current_allocated_bytes = 0;    // generic.current_allocated_bytes
  uint64_t heap_size = 0;                  // generic.heap_size
  uint64_t pageheap_free_bytes = 0;        // tcmalloc.pageheap_free_bytes
  uint64_t pageheap_unmapped_bytes = 0;    // tcmalloc.pageheap_unmapped_bytes
  uint64_t thread_cache_bytes = 0;         // tcmalloc.current_total_thread_cache_bytes
  uint64_t central_cache_free_bytes = 0;   // tcmalloc.central_cache_free_bytes
  uint64_t transfer_cache_free_bytes = 0;  // tcmalloc.transfer_cache_free_bytes
};

struct AllocatorStats {
  const char* allocator = "glibc";  // "glibc" | "tcmalloc" | "sanitizer" (ASan/TSan runtime)
  uint64_t bytes_in_use = 0;        // bytes handed to the program and not yet freed
  bool has_tcmalloc = false;
  TcmallocStats tcmalloc;
};

/// True when tcmalloc (gperftools) is the process's allocator.
bool tcmalloc_linked();

void read_allocator_stats(AllocatorStats* out);

}  // namespace c10m::metrics
