#pragma once
// gperftools behind the admin port: heap samples (tcmalloc's MallocExtension) and CPU
// profiles (libprofiler's ProfilerStart/Stop), in the legacy pprof formats google-pprof
// reads. Found at run time with dlsym, so this library never links gperftools: the
// server links it (target c10m_profiling, src/admin/CMakeLists.txt); sanitizer builds
// link no tcmalloc and the heap endpoint answers 501.
//
// Thread rule: any thread. cpu_profile() blocks its caller for the profile's duration;
// only one runs at a time per process (a second gets kBusy).
#include <atomic>
#include <string>

namespace c10m::admin {

/// Heap sampling period the server sets when the environment does not: one sample per
/// this many allocated bytes on average. Small enough that a run with thousands of idle
/// connections yields dozens of samples of their per-connection objects; the sampling
/// cost (a stack trace per sample) stays off the hot path, which does not allocate.
inline constexpr const char* kDefaultHeapSampleBytes = "65536";
inline constexpr const char* kHeapSampleEnv = "TCMALLOC_SAMPLE_PARAMETER";

/// True when tcmalloc's MallocExtension is present (heap profiles possible).
bool heap_profiler_available();
/// True when libprofiler's ProfilerStart is present (CPU profiles possible).
bool cpu_profiler_available();
/// The sampling period tcmalloc was started with (0: sampling off, heap profiles empty).
long heap_sample_period();

/// tcmalloc reads TCMALLOC_SAMPLE_PARAMETER once, at process start. When tcmalloc is
/// linked and the variable is unset, set it to kDefaultHeapSampleBytes and re-execute
/// /proc/self/exe with the same argv (same pid, nothing else changes). Call first thing
/// in main(), before any fd or thread exists. Returns (doing nothing) otherwise, or with
/// a warning if exec fails. An explicit value (even 0) is respected.
void ensure_heap_sampling(char** argv);

/// Heap sample in pprof "heap_v2" text format, or "" with `error` set.
std::string heap_profile(std::string* error);

enum class CpuProfileResult { kOk, kUnavailable, kBusy, kFailed };
/// Profiles every thread of the process for `seconds` (SIGPROF sampling, 100 Hz by
/// default: CPUPROFILE_FREQUENCY), returning the binary legacy profile in `out`. Returns
/// early (with what was gathered) when `cancel` becomes true.
CpuProfileResult cpu_profile(int seconds, const std::atomic<bool>& cancel, std::string* out,
                             std::string* error);

}  // namespace c10m::admin
