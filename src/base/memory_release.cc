#include "base/memory_release.h"

#include <dlfcn.h>
#include <malloc.h>

namespace c10m {

const char* release_free_memory() {
  using ReleaseFn = void (*)();
  static const auto tcmalloc_release =
      reinterpret_cast<ReleaseFn>(::dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"));
  if (tcmalloc_release != nullptr) {
    tcmalloc_release();
    return "tcmalloc";
  }
  static const bool sanitizer =
      ::dlsym(RTLD_DEFAULT, "__sanitizer_get_current_allocated_bytes") != nullptr;
  if (sanitizer) return "none";
  ::malloc_trim(0);
  return "glibc";
}

}  // namespace c10m
