#include "loadclient/hdr_histogram.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace c10m::loadclient {

int HdrHistogram::bucket_count() {
  // Smallest number of power-of-two buckets whose range covers kHighestTracked.
  int count = 1;
  uint64_t smallest_untrackable = kSubBucketCount;
  while (smallest_untrackable <= static_cast<uint64_t>(kHighestTracked)) {
    smallest_untrackable <<= 1;
    ++count;
  }
  return count;
}

size_t HdrHistogram::counts_length() {
  return static_cast<size_t>(bucket_count() + 1) << kSubBucketHalfMagnitude;
}

int64_t HdrHistogram::value_from_index(size_t index) {
  int bucket = static_cast<int>(index >> kSubBucketHalfMagnitude) - 1;
  uint64_t sub = (index & ((1u << kSubBucketHalfMagnitude) - 1)) + (kSubBucketCount / 2);
  if (bucket < 0) {
    sub -= kSubBucketCount / 2;
    bucket = 0;
  }
  return static_cast<int64_t>(sub << bucket);
}

int64_t HdrHistogram::lowest_equivalent(int64_t value) {
  return value_from_index(counts_index(value));
}

int64_t HdrHistogram::highest_equivalent(int64_t value) {
  const uint64_t v = static_cast<uint64_t>(value);
  const int bucket = 53 - __builtin_clzll(v | kSubBucketMask);
  return lowest_equivalent(value) + (int64_t{1} << bucket) - 1;
}

HdrHistogram::HdrHistogram() : counts_(counts_length(), 0) {}

void HdrHistogram::merge(const HdrHistogram& other) {
  if (other.total_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
  clamped_low_ += other.clamped_low_;
  clamped_high_ += other.clamped_high_;
  if (other.min_ < min_) min_ = other.min_;
  if (other.max_ > max_) max_ = other.max_;
}

void HdrHistogram::reset() {
  if (total_ == 0) return;
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = clamped_low_ = clamped_high_ = 0;
  min_ = INT64_MAX;
  max_ = 0;
}

// The median of a bucket stands for its samples in mean/stddev, as in HdrHistogram.
static double median_equivalent(size_t index) {
  const int64_t lo = HdrHistogram::value_from_index(index);
  const int64_t hi = HdrHistogram::highest_equivalent(lo);
  return (static_cast<double>(lo) + static_cast<double>(hi)) / 2.0;
}

double HdrHistogram::mean() const {
  if (total_ == 0) return 0;
  double sum = 0;
  for (size_t i = 0; i < counts_.size(); ++i)
    if (counts_[i]) sum += median_equivalent(i) * static_cast<double>(counts_[i]);
  return sum / static_cast<double>(total_);
}

double HdrHistogram::stddev() const {
  if (total_ == 0) return 0;
  const double m = mean();
  double sq = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (!counts_[i]) continue;
    const double d = median_equivalent(i) - m;
    sq += d * d * static_cast<double>(counts_[i]);
  }
  return std::sqrt(sq / static_cast<double>(total_));
}

int64_t HdrHistogram::value_at_percentile(double p) const {
  if (total_ == 0) return 0;
  if (p >= 100.0) return max_;
  if (p < 0) p = 0;
  uint64_t rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total_)));
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const int64_t v = highest_equivalent(value_from_index(i));
      return v < max_ ? v : max_;  // never above the exact max
    }
  }
  return max_;
}

nlohmann::json HdrHistogram::to_json() const {
  nlohmann::json counts = nlohmann::json::array();
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] == 0) continue;
    counts.push_back(i);
    counts.push_back(counts_[i]);
  }
  return {{"unit", "ns"},
          {"sig_digits", kSignificantDigits},
          {"lowest", kLowestTracked},
          {"highest", kHighestTracked},
          {"total", total_},
          {"min", min()},
          {"max", max()},
          {"clamped_low", clamped_low_},
          {"clamped_high", clamped_high_},
          {"counts", std::move(counts)}};
}

std::optional<HdrHistogram> HdrHistogram::from_json(const nlohmann::json& j, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<HdrHistogram> {
    if (error) *error = "histogram: " + why;
    return std::nullopt;
  };
  try {
    if (j.at("unit") != "ns" || j.at("sig_digits") != kSignificantDigits ||
        j.at("lowest") != kLowestTracked || j.at("highest") != kHighestTracked)
      return fail("incompatible configuration");
    HdrHistogram h;
    const auto& c = j.at("counts");
    if (!c.is_array() || c.size() % 2 != 0) return fail("counts must be index,count pairs");
    uint64_t total = 0;
    for (size_t k = 0; k < c.size(); k += 2) {
      const uint64_t idx = c[k].get<uint64_t>();
      const uint64_t n = c[k + 1].get<uint64_t>();
      if (idx >= h.counts_.size()) return fail("index out of range");
      h.counts_[idx] += n;
      total += n;
    }
    h.total_ = total;
    if (total != j.at("total").get<uint64_t>()) return fail("total does not match counts");
    h.clamped_low_ = j.at("clamped_low").get<uint64_t>();
    h.clamped_high_ = j.at("clamped_high").get<uint64_t>();
    if (total) {
      h.min_ = j.at("min").get<int64_t>();
      h.max_ = j.at("max").get<int64_t>();
    }
    return h;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

std::string HdrHistogram::percentile_distribution(double unit_ns, int ticks_per_half) const {
  std::string out = fmt::format("{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile",
                                "TotalCount", "1/(1-Percentile)");
  if (total_ > 0) {
    // HdrHistogram's percentile iterator: levels get denser as they approach 100%
    // (ticks_per_half steps for every halving of the distance to 100%).
    double level = 0.0;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] == 0) continue;
      seen += counts_[i];
      const double reached = 100.0 * static_cast<double>(seen) / static_cast<double>(total_);
      int64_t value = highest_equivalent(value_from_index(i));
      if (value > max_) value = max_;
      while (level <= reached && level < 100.0) {
        const double frac = level / 100.0;
        out += fmt::format("{:12.3f} {:2.12f} {:10d} {:14.2f}\n",
                           static_cast<double>(value) / unit_ns, frac, seen, 1.0 / (1.0 - frac));
        if (seen == total_) {
          level = 100.0;
          break;
        }
        const double half_distance =
            std::pow(2.0, std::floor(std::log2(100.0 / (100.0 - level))) + 1.0);
        level += 100.0 / (ticks_per_half * half_distance);
      }
    }
    out +=
        fmt::format("{:12.3f} {:2.12f} {:10d}\n", static_cast<double>(max_) / unit_ns, 1.0, total_);
  }
  out += fmt::format("#[Mean    = {:12.3f}, StdDeviation   = {:12.3f}]\n", mean() / unit_ns,
                     stddev() / unit_ns);
  out += fmt::format("#[Max     = {:12.3f}, Total count    = {:12d}]\n",
                     static_cast<double>(max()) / unit_ns, total_);
  out += fmt::format("#[Buckets = {:12d}, SubBuckets     = {:12d}]\n", bucket_count(),
                     kSubBucketCount);
  return out;
}

}  // namespace c10m::loadclient
