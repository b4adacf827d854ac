#include "base/units.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <iterator>

namespace c10m {

std::optional<Nanos> parse_duration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  if (s == "0") return 0;
  double total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == start) return std::nullopt;
    double value;
    try {
      size_t used = 0;
      value = std::stod(std::string(s.substr(start, i - start)), &used);
      if (used != i - start) return std::nullopt;
    } catch (...) {
      return std::nullopt;
    }
    size_t ustart = i;
    // Letters, and the UTF-8 bytes of "µ" (isalpha does not see them in the C locale).
    while (i < s.size() && (std::isalpha(static_cast<unsigned char>(s[i])) ||
                            static_cast<unsigned char>(s[i]) >= 0x80))
      ++i;
    std::string_view unit = s.substr(ustart, i - ustart);
    double scale;
    if (unit == "ns")
      scale = 1;
    else if (unit == "us" || unit == "µs")
      scale = 1e3;
    else if (unit == "ms")
      scale = 1e6;
    else if (unit == "s")
      scale = 1e9;
    else if (unit == "m")
      scale = 60e9;
    else if (unit == "h")
      scale = 3600e9;
    else if (unit.empty() && value == 0 && i == s.size() && start == 0)
      scale = 0;
    else
      return std::nullopt;
    total += value * scale;
  }
  if (!std::isfinite(total) || total < 0 || total > 9.2e18) return std::nullopt;
  return static_cast<Nanos>(std::llround(total));
}

std::optional<uint64_t> parse_size(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0 || i > 18) return std::nullopt;
  uint64_t value = std::stoull(std::string(s.substr(0, i)));
  std::string_view unit = s.substr(i);
  uint64_t scale;
  if (unit.empty() || unit == "B")
    scale = 1;
  else if (unit == "KiB" || unit == "K" || unit == "KB" || unit == "k")
    scale = 1ull << 10;
  else if (unit == "MiB" || unit == "M" || unit == "MB")
    scale = 1ull << 20;
  else if (unit == "GiB" || unit == "G" || unit == "GB")
    scale = 1ull << 30;
  else
    return std::nullopt;
  if (value > UINT64_MAX / scale) return std::nullopt;
  return value * scale;
}

std::string format_duration(Nanos d) {
  if (d == 0) return "0";
  if (d % kSecond == 0) return fmt::format("{}s", d / kSecond);
  if (d % kMillisecond == 0) return fmt::format("{}ms", d / kMillisecond);
  if (d % kMicrosecond == 0) return fmt::format("{}us", d / kMicrosecond);
  return fmt::format("{}ns", d);
}

std::string format_size(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes) / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

}  // namespace c10m
