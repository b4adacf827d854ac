#pragma once
// The deterministic parts of a load run: the seeded generator, send schedules, payload
// size mixes and payload bytes. Everything here is a pure function of --seed and the
// connection's global id, so two runs with the same flags send the same bytes at the
// same offsets from their start (tests/unit/loadclient_workload_test.cc).
//
// Thread rule: the types are values; a Rng belongs to one connection (8 bytes of state).
#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"

namespace c10m::loadclient {

/// splitmix64: 8 bytes of state, good enough statistics for schedules and payloads.
struct Rng {
  uint64_t state = 0;
  static Rng for_stream(uint64_t seed, uint64_t stream) {
    Rng r{seed ^ (0x9E3779B97F4A7C15ull * (stream + 1))};
    r.next();
    return r;
  }
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

enum class ScheduleKind { kFixed, kPoisson };
std::optional<ScheduleKind> parse_schedule_kind(std::string_view name);
const char* schedule_kind_name(ScheduleKind kind);

/// Open-model send schedule of one connection at `rate` sends/s.
/// fixed: gaps of 1/rate, each scaled by a seeded jitter uniform in [1-j, 1+j];
/// poisson: exponential gaps of mean 1/rate. fixed: the first send is at a seeded phase in
/// [0, 1/rate) after the connection opens, so connections do not send in lock step;
/// poisson: after an exponential first gap, so many connections started together are a
/// Poisson process of their summed rate from the start.
struct Schedule {
  ScheduleKind kind = ScheduleKind::kFixed;
  double rate = 1.0;    // sends per second per connection, > 0
  double jitter = 0.1;  // fixed only: 0..1
  Nanos first_offset(Rng& rng) const;
  Nanos next_gap(Rng& rng) const;
};

/// --payload: one size ("64", "4KiB") or a weighted mix ("64:0.9,4096:0.08,65535:0.02";
/// weights are normalised). Sizes 0..max_size (65535 for a frame payload; STREAM and FETCH
/// totals may be larger).
class PayloadMix {
 public:
  static std::optional<PayloadMix> parse(std::string_view text, std::string* error,
                                         uint64_t max_size = 65535);
  uint32_t pick(Rng& rng) const;
  uint32_t max_size() const;
  const std::vector<std::pair<uint32_t, double>>& entries() const {
    return entries_;
  }  // size, weight
  std::string to_string() const;

 private:
  std::vector<std::pair<uint32_t, double>> entries_;
  std::vector<double> cumulative_;
};

/// The bytes ECHO/SINK/CHUNK payloads are cut from: kPatternSize seeded bytes, repeated
/// once more after the end so any [offset, offset + 65535] window is contiguous.
class PayloadPattern {
 public:
  static constexpr uint32_t kPatternSize = 65536;
  explicit PayloadPattern(uint64_t seed);
  const uint8_t* at(uint32_t offset) const { return bytes_.data() + (offset % kPatternSize); }
  static uint32_t pick_offset(Rng& rng) { return static_cast<uint32_t>(rng.next() % kPatternSize); }

 private:
  std::vector<uint8_t> bytes_;
};

/// --srcips: "127.0.0.2,127.0.0.3" or a range "127.0.0.2-127.0.0.60" (or a mix of both,
/// comma separated). Port 0 in every entry. nullopt (and *error) when malformed.
std::optional<std::vector<sockaddr_in>> parse_source_ips(std::string_view text, std::string* error);

/// Which connections are active: spread evenly over the global ids, floor(conns * frac)
/// of them in total.
inline bool is_active_conn(uint64_t global_id, double active_frac) {
  if (active_frac >= 1.0) return true;
  if (active_frac <= 0.0) return false;
  const auto a = static_cast<uint64_t>(static_cast<double>(global_id) * active_frac);
  const auto b = static_cast<uint64_t>(static_cast<double>(global_id + 1) * active_frac);
  return b > a;
}

}  // namespace c10m::loadclient
