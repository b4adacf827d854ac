#include "metrics/process_stats.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace c10m::metrics {
namespace {

bool read_small_file(const char* path, std::string* out) {
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return false;
  char buf[4096];
  out->clear();
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  std::fclose(f);
  return true;
}

double boot_time_seconds() {
  static const double boot = [] {
    std::string s;
    if (!read_small_file("/proc/stat", &s)) return 0.0;
    const size_t at = s.find("\nbtime ");
    return at == std::string::npos ? 0.0 : std::strtod(s.c_str() + at + 7, nullptr);
  }();
  return boot;
}

uint64_t count_fds(const char* dir_path, bool self) {
  struct stat st {};
  if (::stat(dir_path, &st) == 0 && st.st_size > 0) return static_cast<uint64_t>(st.st_size);
  DIR* d = ::opendir(dir_path);  // kernels before 6.2 report size 0
  if (d == nullptr) return 0;
  uint64_t n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return self && n > 0 ? n - 1 : n;  // minus the fd opendir used when reading our own
}

}  // namespace

bool read_process_stats(pid_t pid, ProcessStats* out) {
  *out = ProcessStats{};
  out->pid = pid;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::string stat;
  if (!read_small_file(path, &stat)) return false;
  // Fields after the command name (which may contain spaces and parentheses).
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return false;
  // Field 3 (state) is the first after ") ".
  const char* p = stat.c_str() + close + 2;
  unsigned long long f[52] = {};
  int field = 3;
  while (*p != '\0' && field < 52) {
    if (field == 3) {
      ++p;  // state char
    } else {
      f[field] = std::strtoull(p, const_cast<char**>(&p), 10);
    }
    while (*p == ' ') ++p;
    ++field;
  }
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const long page = ::sysconf(_SC_PAGESIZE);
  out->cpu_seconds = static_cast<double>(f[14] + f[15]) / ticks;
  out->threads = f[20];
  out->start_time_seconds = boot_time_seconds() + static_cast<double>(f[22]) / ticks;
  out->virtual_bytes = f[23];
  out->resident_bytes = f[24] * static_cast<uint64_t>(page);

  std::snprintf(path, sizeof path, "/proc/%d/fd", static_cast<int>(pid));
  out->open_fds = count_fds(path, pid == ::getpid());
  rlimit lim{};
  if (::prlimit(pid, RLIMIT_NOFILE, nullptr, &lim) == 0) {
    out->max_fds = lim.rlim_cur == RLIM_INFINITY ? 0 : lim.rlim_cur;
  }
  return true;
}

}  // namespace c10m::metrics
