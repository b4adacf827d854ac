#pragma once
// Worker processes (server --workers, loadclient --procs) and the profiler's re-exec start
// through execv("/proc/self/exe"), which names them "exe" in ps, top, pgrep and
// /proc/PID/comm. name_process() gives the calling process the name of its binary again.
namespace c10m {

/// Sets this process's name (comm, at most 15 bytes) to the last path component of
/// `argv0`. Call first in main(), before any thread starts (threads inherit it).
void name_process(const char* argv0);

}  // namespace c10m
