#pragma once
// HDR-style latency histogram: log-linear buckets with 3 significant decimal digits over
// a fixed trackable range, fixed memory, no allocation after construction.
//
// Values are recorded in nanoseconds with a resolution of 1 ns (the structure of Gil
// Tene's HdrHistogram: 2048 sub-buckets per power of two, so every value v is counted in
// a bucket of width <= v/1024, i.e. a relative error below 0.1%). Values outside
// [kLowestTracked, kHighestTracked] (1 us .. 60 s) are clamped to the nearest bound and
// counted in clamped_low()/clamped_high(): a report never silently drops a sample.
//
// Thread rule: one instance per thread, written by that thread only (no lock, no atomic);
// instances are merged by the reader after the writers have published or stopped.
// Memory: about 220 KiB per instance (27,648 64-bit counters).
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace c10m::loadclient {

class HdrHistogram {
 public:
  static constexpr int64_t kLowestTracked = 1'000;            // 1 us
  static constexpr int64_t kHighestTracked = 60'000'000'000;  // 60 s
  static constexpr int kSignificantDigits = 3;
  static constexpr int kSubBucketHalfMagnitude = 10;  // 2 * 10^3 -> 2048 sub-buckets
  static constexpr uint64_t kSubBucketCount = 2048;
  static constexpr uint64_t kSubBucketMask = kSubBucketCount - 1;

  HdrHistogram();

  /// Records `count` samples of `value_ns` (clamped into the tracked range).
  void record(int64_t value_ns, uint64_t count = 1) {
    if (value_ns < kLowestTracked) {
      value_ns = kLowestTracked;
      clamped_low_ += count;
    } else if (value_ns > kHighestTracked) {
      value_ns = kHighestTracked;
      clamped_high_ += count;
    }
    counts_[counts_index(value_ns)] += count;
    total_ += count;
    if (value_ns < min_) min_ = value_ns;
    if (value_ns > max_) max_ = value_ns;
  }

  /// Adds every count of `other` (same fixed configuration by construction).
  void merge(const HdrHistogram& other);
  void reset();

  uint64_t total_count() const { return total_; }
  uint64_t clamped_low() const { return clamped_low_; }
  uint64_t clamped_high() const { return clamped_high_; }
  /// Exact smallest / largest recorded (clamped) value; 0 when empty.
  int64_t min() const { return total_ ? min_ : 0; }
  int64_t max() const { return total_ ? max_ : 0; }
  double mean() const;
  double stddev() const;

  /// The value at percentile `p` (0..100): the highest value equivalent (same bucket) to
  /// the sample of rank ceil(p/100 * count), as HdrHistogram reports it; so the answer
  /// is >= the exact percentile and within 1/1024 of it. p >= 100 returns max(). 0 when
  /// empty.
  int64_t value_at_percentile(double p) const;

  /// Bucket helpers (public for tests).
  static size_t counts_index(int64_t value) {
    const uint64_t v = static_cast<uint64_t>(value);
    const int bucket = 53 - __builtin_clzll(v | kSubBucketMask);  // 0 below 2048
    return (static_cast<size_t>(bucket) << kSubBucketHalfMagnitude) + (v >> bucket);
  }
  static int64_t value_from_index(size_t index);
  static int64_t lowest_equivalent(int64_t value);
  static int64_t highest_equivalent(int64_t value);
  static size_t counts_length();
  static int bucket_count();

  /// Sparse, lossless serialization (for merging --procs results and the JSON file):
  /// {"unit":"ns","sig_digits":3,"lowest":..,"highest":..,"total":..,"min":..,"max":..,
  ///  "clamped_low":..,"clamped_high":..,"counts":[index,count,index,count,...]}.
  nlohmann::json to_json() const;
  /// Inverse of to_json(); nullopt (and *error set) on a malformed or incompatible input.
  static std::optional<HdrHistogram> from_json(const nlohmann::json& j, std::string* error);

  /// HdrHistogram's percentile-distribution text ("Value Percentile TotalCount
  /// 1/(1-Percentile)" with the #[Mean ...] footer), values divided by `unit_ns`
  /// (1e6: milliseconds, as wrk2 and the HdrHistogram plotter expect).
  std::string percentile_distribution(double unit_ns = 1e6, int ticks_per_half_distance = 5) const;

 private:
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  uint64_t clamped_low_ = 0;
  uint64_t clamped_high_ = 0;
  int64_t min_ = INT64_MAX;
  int64_t max_ = 0;
};

}  // namespace c10m::loadclient
