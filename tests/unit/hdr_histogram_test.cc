// HdrHistogram against exact percentiles of the raw samples: random and adversarial value
// sets, bucket edges, clamping, merging, serialization and the --hgrm text format.
#include "loadclient/hdr_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <vector>

namespace c10m::loadclient {
namespace {

constexpr double kPercentiles[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 99.999, 100};

// The sample of rank ceil(p/100 * n) (1-based), the definition HdrHistogram uses.
int64_t exact_percentile(const std::vector<int64_t>& sorted, double p) {
  if (p >= 100) return sorted.back();
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  if (rank < 1) rank = 1;
  return sorted[rank - 1];
}

int64_t clamp_value(int64_t v) {
  return std::clamp(v, HdrHistogram::kLowestTracked, HdrHistogram::kHighestTracked);
}

// Records `values`, then checks every percentile against the exact one: never below it, and
// within the 3-significant-digit bound (relative error <= 1/1024 < 0.1%).
void check_against_exact(std::vector<int64_t> values) {
  HdrHistogram h;
  for (int64_t v : values) h.record(v);
  for (int64_t& v : values) v = clamp_value(v);
  std::sort(values.begin(), values.end());
  ASSERT_EQ(h.total_count(), values.size());
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
  for (double p : kPercentiles) {
    const int64_t exact = exact_percentile(values, p);
    const int64_t got = h.value_at_percentile(p);
    EXPECT_GE(got, exact) << "p" << p;
    EXPECT_LE(static_cast<double>(got - exact), static_cast<double>(exact) / 1024.0)
        << "p" << p << " exact " << exact;
  }
}

TEST(HdrHistogram, EmptyReportsZero) {
  HdrHistogram h;
  EXPECT_EQ(h.total_count(), 0u);
  EXPECT_EQ(h.value_at_percentile(99), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.min(), 0);
}

TEST(HdrHistogram, FixedMemoryCoversTheRange) {
  EXPECT_EQ(HdrHistogram::bucket_count(), 26);
  EXPECT_EQ(HdrHistogram::counts_length(), 27u * 1024u);
  EXPECT_LT(HdrHistogram::counts_index(HdrHistogram::kHighestTracked),
            HdrHistogram::counts_length());
}

TEST(HdrHistogram, BucketsAreNarrowerThanOnePartIn1024) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const int64_t v =
        clamp_value(static_cast<int64_t>(std::exp2(std::uniform_real_distribution<>(10, 36)(rng))));
    const int64_t lo = HdrHistogram::lowest_equivalent(v);
    const int64_t hi = HdrHistogram::highest_equivalent(v);
    ASSERT_LE(lo, v);
    ASSERT_GE(hi, v);
    ASSERT_LE(static_cast<double>(hi - lo + 1), std::max(1.0, static_cast<double>(v) / 1024.0))
        << v;
    ASSERT_EQ(HdrHistogram::value_from_index(HdrHistogram::counts_index(v)), lo);
  }
}

TEST(HdrHistogram, IndexRoundTripsAtEveryBucketEdge) {
  for (size_t i = 1; i < HdrHistogram::counts_length(); ++i) {
    const int64_t v = HdrHistogram::value_from_index(i);
    if (v > HdrHistogram::kHighestTracked * 2) break;
    ASSERT_EQ(HdrHistogram::counts_index(v), i) << v;
    ASSERT_GT(v, HdrHistogram::value_from_index(i - 1));
    ASSERT_EQ(HdrHistogram::highest_equivalent(HdrHistogram::value_from_index(i - 1)) + 1, v) << i;
  }
}

TEST(HdrHistogram, RandomLogUniformSetsMatchExactPercentiles) {
  for (uint64_t seed : {1, 2, 3, 42, 1234}) {
    std::mt19937_64 rng(seed);
    std::vector<int64_t> v(50000);
    for (auto& x : v)
      x = static_cast<int64_t>(std::exp2(std::uniform_real_distribution<>(10, 35.8)(rng)));
    check_against_exact(v);
  }
}

TEST(HdrHistogram, RandomNarrowSetsMatchExactPercentiles) {
  // Typical latencies: a tight body (100-300 us) and a long tail (10-500 ms).
  std::mt19937_64 rng(99);
  std::vector<int64_t> v;
  for (int i = 0; i < 100000; ++i)
    v.push_back(std::uniform_int_distribution<int64_t>(100'000, 300'000)(rng));
  for (int i = 0; i < 500; ++i)
    v.push_back(std::uniform_int_distribution<int64_t>(10'000'000, 500'000'000)(rng));
  check_against_exact(v);
}

TEST(HdrHistogram, AllEqual) {
  for (int64_t x : {int64_t{1000}, int64_t{1001}, int64_t{2047}, int64_t{2048},
                    int64_t{123'456'789}, int64_t{59'999'999'999}}) {
    check_against_exact(std::vector<int64_t>(1000, x));
    HdrHistogram h;
    h.record(x, 1000);
    EXPECT_EQ(h.value_at_percentile(50), x) << "capped at the exact max";
  }
}

TEST(HdrHistogram, PowersOfTwoAndTheirNeighbours) {
  std::vector<int64_t> v;
  for (int k = 10; k <= 35; ++k) {
    const int64_t p = int64_t{1} << k;
    v.insert(v.end(), {p - 1, p, p + 1});
  }
  check_against_exact(v);
}

TEST(HdrHistogram, BucketEdges) {
  std::vector<int64_t> v;
  for (size_t i = 1024; i < HdrHistogram::counts_length(); i += 97) {
    const int64_t lo = HdrHistogram::value_from_index(i);
    if (lo < HdrHistogram::kLowestTracked || lo > HdrHistogram::kHighestTracked) continue;
    v.push_back(lo);
    v.push_back(HdrHistogram::highest_equivalent(lo));
  }
  check_against_exact(v);
}

TEST(HdrHistogram, MinMaxExtremes) {
  std::vector<int64_t> v = {HdrHistogram::kLowestTracked, HdrHistogram::kHighestTracked};
  check_against_exact(v);
  std::vector<int64_t> skew(9999, HdrHistogram::kLowestTracked);
  skew.push_back(HdrHistogram::kHighestTracked);
  check_against_exact(skew);
}

TEST(HdrHistogram, OutOfRangeValuesAreClampedAndCounted) {
  HdrHistogram h;
  h.record(0);
  h.record(-5);
  h.record(999);
  h.record(61'000'000'000);
  h.record(INT64_MAX);
  h.record(5000);
  EXPECT_EQ(h.total_count(), 6u);
  EXPECT_EQ(h.clamped_low(), 3u);
  EXPECT_EQ(h.clamped_high(), 2u);
  EXPECT_EQ(h.min(), HdrHistogram::kLowestTracked);
  EXPECT_EQ(h.max(), HdrHistogram::kHighestTracked);
}

TEST(HdrHistogram, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(5);
  HdrHistogram all, parts[4];
  std::vector<int64_t> values;
  for (int i = 0; i < 40000; ++i) {
    const int64_t v = static_cast<int64_t>(std::exp2(std::uniform_real_distribution<>(9, 37)(rng)));
    all.record(v);
    parts[i % 4].record(v);
    values.push_back(v);
  }
  HdrHistogram merged;
  for (auto& p : parts) merged.merge(p);
  EXPECT_EQ(merged.total_count(), all.total_count());
  EXPECT_EQ(merged.clamped_low(), all.clamped_low());
  EXPECT_EQ(merged.clamped_high(), all.clamped_high());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  for (double p : kPercentiles)
    EXPECT_EQ(merged.value_at_percentile(p), all.value_at_percentile(p));
  check_against_exact(values);
}

TEST(HdrHistogram, JsonRoundTripIsLossless) {
  std::mt19937_64 rng(11);
  HdrHistogram h;
  for (int i = 0; i < 10000; ++i)
    h.record(std::uniform_int_distribution<int64_t>(1, 70'000'000'000)(rng));
  const std::string text = h.to_json().dump();
  std::string err;
  auto back = HdrHistogram::from_json(nlohmann::json::parse(text), &err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(back->to_json(), h.to_json());
  for (double p : kPercentiles) EXPECT_EQ(back->value_at_percentile(p), h.value_at_percentile(p));
  EXPECT_EQ(back->clamped_low(), h.clamped_low());
  EXPECT_EQ(back->clamped_high(), h.clamped_high());
}

TEST(HdrHistogram, JsonRejectsMalformedInput) {
  HdrHistogram h;
  h.record(5000);
  std::string err;
  auto j = h.to_json();
  j["counts"] = {999999, 1};
  j["total"] = 1;
  EXPECT_FALSE(HdrHistogram::from_json(j, &err));
  j = h.to_json();
  j["total"] = 2;
  EXPECT_FALSE(HdrHistogram::from_json(j, &err));
  j = h.to_json();
  j["sig_digits"] = 2;
  EXPECT_FALSE(HdrHistogram::from_json(j, &err));
  EXPECT_FALSE(HdrHistogram::from_json(nlohmann::json::object(), &err));
}

TEST(HdrHistogram, PercentileDistributionHasHdrFormat) {
  HdrHistogram h;
  for (int i = 1; i <= 1000; ++i) h.record(int64_t{i} * 100'000);  // 0.1 .. 100 ms
  const std::string text = h.percentile_distribution();
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  EXPECT_NE(line.find("Value"), std::string::npos);
  EXPECT_NE(line.find("Percentile"), std::string::npos);
  EXPECT_NE(line.find("TotalCount"), std::string::npos);
  EXPECT_NE(line.find("1/(1-Percentile)"), std::string::npos);
  std::getline(in, line);
  EXPECT_TRUE(line.empty());
  double prev_value = -1, prev_pct = -1, last_value = 0, last_pct = 0;
  uint64_t last_count = 0;
  int rows = 0;
  while (std::getline(in, line) && line[0] != '#') {
    std::istringstream row(line);
    double value, pct;
    uint64_t count;
    ASSERT_TRUE(row >> value >> pct >> count) << line;
    EXPECT_GE(value, prev_value);
    EXPECT_GE(pct, prev_pct);
    prev_value = last_value = value;
    prev_pct = last_pct = pct;
    last_count = count;
    ++rows;
  }
  EXPECT_GT(rows, 20);
  EXPECT_DOUBLE_EQ(last_pct, 1.0);
  EXPECT_NEAR(last_value, 100.0, 1e-9);  // max, in ms
  EXPECT_EQ(last_count, 1000u);
  EXPECT_EQ(line.rfind("#[Mean    =", 0), 0u) << line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("#[Max     =", 0), 0u) << line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("#[Buckets =", 0), 0u) << line;
  EXPECT_NEAR(h.mean(), 50.05e6, 50.05e6 / 1000);
}

}  // namespace
}  // namespace c10m::loadclient
