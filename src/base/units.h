#pragma once
// Parsing of the human units used on every command line: Go-style durations and byte sizes.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"

namespace c10m {

/// Go-style duration: "500ms", "10s", "5m", "1h30m", "1.5s", "250us", "100ns".
/// "0" (with or without a unit) is 0, which callers read as "never".
/// Returns nullopt on anything else (negative, empty, unknown unit, overflow).
std::optional<Nanos> parse_duration(std::string_view text);

/// Byte size: "65536", "64KiB", "1MiB", "2GiB" (also "KB"/"K" meaning 1024 multiples,
/// since sizes here are buffer sizes). Returns nullopt on anything else.
std::optional<uint64_t> parse_size(std::string_view text);

/// "1.5s", "250ms", "0" ... for logs and reports.
std::string format_duration(Nanos d);

/// "512 B", "64.0 KiB", "11.2 GiB" ... for logs and reports.
std::string format_size(uint64_t bytes);

}  // namespace c10m
