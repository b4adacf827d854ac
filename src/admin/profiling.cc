#include "admin/profiling.h"

#include <dlfcn.h>
#include <gperftools/malloc_extension.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "base/log.h"

namespace c10m::admin {
namespace {

// MallocExtension (the header only declares it) is reached through the mangled name of
// MallocExtension::instance(); GetHeapSample is virtual, so calling it needs no link.
using InstanceFn = MallocExtension* (*)();
using ProfilerStartFn = int (*)(const char*);
using ProfilerStopFn = void (*)();

void* sym(const char* name) { return ::dlsym(RTLD_DEFAULT, name); }

std::atomic<bool> g_cpu_busy{false};

#ifdef C10M_NO_TCMALLOC
// Sanitizer builds never link tcmalloc (and UBSan's vptr check would need its typeinfo).
MallocExtension* malloc_extension() { return nullptr; }
#else
MallocExtension* malloc_extension() {
  static MallocExtension* const ext = [] {
    auto fn = reinterpret_cast<InstanceFn>(sym("_ZN15MallocExtension8instanceEv"));
    // Only tcmalloc defines MallocExtension_GetNumericProperty; libprofiler alone may
    // carry a generic MallocExtension that has no heap samples.
    if (fn == nullptr || sym("MallocExtension_GetNumericProperty") == nullptr) {
      return static_cast<MallocExtension*>(nullptr);
    }
    return fn();
  }();
  return ext;
}
#endif

}  // namespace

bool heap_profiler_available() { return malloc_extension() != nullptr; }

bool cpu_profiler_available() {
  return sym("ProfilerStart") != nullptr && sym("ProfilerStop") != nullptr;
}

long heap_sample_period() {
  const char* v = std::getenv(kHeapSampleEnv);
  return v == nullptr ? 0 : std::atol(v);
}

void ensure_heap_sampling(char** argv) {
  if (!heap_profiler_available() || std::getenv(kHeapSampleEnv) != nullptr) return;
  ::setenv(kHeapSampleEnv, kDefaultHeapSampleBytes, 1);
  ::execv("/proc/self/exe", argv);
  log_warn("could not re-execute to enable heap sampling ({}); heap profiles will be empty",
           std::strerror(errno));
}

std::string heap_profile(std::string* error) {
  MallocExtension* ext = malloc_extension();
  if (ext == nullptr) {
    *error = "heap profiles need tcmalloc: this binary is not linked with it (sanitizer build?)";
    return "";
  }
  std::string out;
#ifndef C10M_NO_TCMALLOC
  ext->GetHeapSample(&out);
#endif
  return out;
}

CpuProfileResult cpu_profile(int seconds, const std::atomic<bool>& cancel, std::string* out,
                             std::string* error) {
  auto start = reinterpret_cast<ProfilerStartFn>(sym("ProfilerStart"));
  auto stop = reinterpret_cast<ProfilerStopFn>(sym("ProfilerStop"));
  if (start == nullptr || stop == nullptr) {
    *error = "CPU profiles need libprofiler (gperftools): this binary is not linked with it";
    return CpuProfileResult::kUnavailable;
  }
  if (g_cpu_busy.exchange(true)) {
    *error = "a CPU profile is already being taken; one at a time";
    return CpuProfileResult::kBusy;
  }
  char path[] = "/tmp/c10m-cpu-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) {
    *error = std::string("mkstemp: ") + std::strerror(errno);
    g_cpu_busy = false;
    return CpuProfileResult::kFailed;
  }
  ::close(fd);
  if (start(path) == 0) {
    ::unlink(path);
    *error = "ProfilerStart failed (is a CPUPROFILE run already active?)";
    g_cpu_busy = false;
    return CpuProfileResult::kFailed;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!cancel.load() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop();
  std::ifstream in(path, std::ios::binary);
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  ::unlink(path);
  g_cpu_busy = false;
  if (out->empty()) {
    *error = "the CPU profiler wrote nothing";
    return CpuProfileResult::kFailed;
  }
  return CpuProfileResult::kOk;
}

}  // namespace c10m::admin
