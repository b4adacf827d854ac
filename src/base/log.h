#pragma once
// Minimal leveled logging to stderr. Start-up and rare events only: never on the hot path.
#include <fmt/format.h>

#include <cstdio>

namespace c10m {

template <typename... Args>
void log_info(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stderr, "c10m: {}\n", fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
void log_warn(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stderr, "c10m: warning: {}\n", fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace c10m
