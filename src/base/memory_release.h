#pragma once
// Returning free heap memory to the OS: the allocator's own release control, found at run
// time (the server links tcmalloc; tests and sanitizer builds use glibc or the sanitizer's
// allocator). Any thread; takes the allocator's global lock for as long as it walks its
// free lists, so call it rarely (the epoll engine: at most once per --memory-release).
#include <string>

namespace c10m {

/// tcmalloc: MallocExtension::ReleaseFreeMemory() (every free page-heap span is
/// madvise(DONTNEED)d; objects cached per thread or per size class stay). glibc:
/// malloc_trim(0). Sanitizer allocators: nothing. Returns which was used.
const char* release_free_memory();

}  // namespace c10m
