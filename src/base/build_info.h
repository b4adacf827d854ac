#pragma once
// Stamps for results and --version: project version, git commit, compiler.
#include <string>

namespace c10m {

const char* version_string();   // "0.1.0"
const char* git_commit();       // short hash at configure time, or "unknown"
const char* compiler_string();  // e.g. "gcc 12.2.0"
std::string kernel_release();   // uname -r
std::string cpu_model();        // /proc/cpuinfo "model name"

}  // namespace c10m
