#include "loadclient/workload.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <charconv>
#include <cmath>

#include "base/units.h"

namespace c10m::loadclient {

std::optional<ScheduleKind> parse_schedule_kind(std::string_view name) {
  if (name == "fixed") return ScheduleKind::kFixed;
  if (name == "poisson") return ScheduleKind::kPoisson;
  return std::nullopt;
}

const char* schedule_kind_name(ScheduleKind kind) {
  return kind == ScheduleKind::kFixed ? "fixed" : "poisson";
}

Nanos Schedule::first_offset(Rng& rng) const {
  // Poisson: an exponential first gap, like every other (memoryless: the source is
  // stationary from its start, so connections that start together, --sends-from, offer
  // the target rate at once; a uniform phase here made them offer up to 2x over the first
  // 1/rate seconds).
  if (kind == ScheduleKind::kPoisson) return next_gap(rng);
  return static_cast<Nanos>(rng.uniform() * 1e9 / rate);
}

Nanos Schedule::next_gap(Rng& rng) const {
  const double interval = 1e9 / rate;
  double gap;
  if (kind == ScheduleKind::kFixed) {
    gap = interval * (1.0 + jitter * (2.0 * rng.uniform() - 1.0));
  } else {
    gap = -std::log(1.0 - rng.uniform()) * interval;  // 1-u in (0, 1]
  }
  return gap < 1.0 ? 1 : static_cast<Nanos>(gap);
}

std::optional<PayloadMix> PayloadMix::parse(std::string_view text, std::string* error,
                                            uint64_t max_size) {
  const std::string original(text);
  auto fail = [&](const std::string& why) -> std::optional<PayloadMix> {
    if (error) *error = fmt::format("--payload '{}': {}", original, why);
    return std::nullopt;
  };
  PayloadMix mix;
  double sum = 0;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    std::string_view size_text = item, weight_text;
    if (const size_t colon = item.find(':'); colon != std::string_view::npos) {
      size_text = item.substr(0, colon);
      weight_text = item.substr(colon + 1);
    }
    const auto size = parse_size(size_text);
    if (!size || *size > max_size)
      return fail(fmt::format("size '{}' is not 0..{}", size_text, max_size));
    double weight = 1.0;
    if (!weight_text.empty()) {
      auto [p, ec] =
          std::from_chars(weight_text.data(), weight_text.data() + weight_text.size(), weight);
      if (ec != std::errc() || p != weight_text.data() + weight_text.size() || !(weight > 0) ||
          !std::isfinite(weight))
        return fail(fmt::format("weight '{}' is not a positive number", weight_text));
    } else if (item.find(':') != std::string_view::npos) {
      return fail("empty weight");
    }
    mix.entries_.emplace_back(static_cast<uint32_t>(*size), weight);
    sum += weight;
  }
  if (mix.entries_.empty()) return fail("empty");
  double acc = 0;
  for (auto& [size, w] : mix.entries_) {
    w /= sum;
    acc += w;
    mix.cumulative_.push_back(acc);
  }
  mix.cumulative_.back() = 1.0;
  return mix;
}

uint32_t PayloadMix::pick(Rng& rng) const {
  if (entries_.size() == 1) return entries_[0].first;
  const double u = rng.uniform();
  for (size_t i = 0; i < cumulative_.size(); ++i)
    if (u < cumulative_[i]) return entries_[i].first;
  return entries_.back().first;
}

uint32_t PayloadMix::max_size() const {
  uint32_t m = 0;
  for (const auto& e : entries_) m = e.first > m ? e.first : m;
  return m;
}

std::string PayloadMix::to_string() const {
  if (entries_.size() == 1) return std::to_string(entries_[0].first);
  std::string out;
  for (const auto& [size, w] : entries_) {
    if (!out.empty()) out += ',';
    out += fmt::format("{}:{:g}", size, w);
  }
  return out;
}

PayloadPattern::PayloadPattern(uint64_t seed) : bytes_(2 * kPatternSize) {
  Rng rng = Rng::for_stream(seed, 0xC10Full);
  for (uint32_t i = 0; i < kPatternSize; i += 8) {
    const uint64_t v = rng.next();
    for (int k = 0; k < 8; ++k) bytes_[i + k] = static_cast<uint8_t>(v >> (8 * k));
  }
  std::copy(bytes_.begin(), bytes_.begin() + kPatternSize, bytes_.begin() + kPatternSize);
}

static std::optional<uint32_t> parse_ip(std::string_view text) {
  in_addr a{};
  if (inet_pton(AF_INET, std::string(text).c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

std::optional<std::vector<sockaddr_in>> parse_source_ips(std::string_view text,
                                                         std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<std::vector<sockaddr_in>> {
    if (error) *error = fmt::format("--srcips '{}': {}", text, why);
    return std::nullopt;
  };
  std::vector<sockaddr_in> out;
  auto add = [&](uint32_t ip) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(ip);
    out.push_back(a);
  };
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (const size_t dash = item.find('-'); dash != std::string_view::npos) {
      const auto lo = parse_ip(item.substr(0, dash));
      const auto hi = parse_ip(item.substr(dash + 1));
      if (!lo || !hi || *hi < *lo) return fail(fmt::format("bad range '{}'", item));
      if (*hi - *lo >= 65536) return fail("range wider than 65536 addresses");
      for (uint32_t ip = *lo;; ++ip) {
        add(ip);
        if (ip == *hi) break;
      }
    } else {
      const auto ip = parse_ip(item);
      if (!ip) return fail(fmt::format("bad address '{}'", item));
      add(*ip);
    }
  }
  if (out.empty()) return fail("empty");
  return out;
}

}  // namespace c10m::loadclient
