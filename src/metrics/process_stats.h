#pragma once
// ProcessStats: the standard process_* figures of one process, read from /proc/<pid>.
// Cost: a few small /proc reads; open fds come from stat("/proc/<pid>/fd").st_size,
// which Linux >= 6.2 computes from the fd bitmap (O(1) in connections); older kernels
// fall back to counting directory entries. Any thread.
#include <sys/types.h>

#include <cstdint>

namespace c10m::metrics {

struct ProcessStats {
  pid_t pid = 0;
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  double cpu_seconds = 0;  // user + system
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;           // RLIMIT_NOFILE soft limit
  double start_time_seconds = 0;  // since the Unix epoch
  uint64_t threads = 0;
};

/// Reads /proc/<pid>; false if the process is gone or unreadable.
bool read_process_stats(pid_t pid, ProcessStats* out);

}  // namespace c10m::metrics
