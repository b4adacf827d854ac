// Determinism of the seeded parts of a load run (schedules, payload mixes, payload bytes)
// and the parsing of --payload / --srcips.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <vector>

#include "loadclient/load_runner.h"
#include "loadclient/workload.h"

namespace c10m::loadclient {
namespace {

// What one connection would do: first offset, then (size, pattern offset, gap) per send,
// in the order the load worker draws them.
std::vector<int64_t> draw(uint64_t seed, uint64_t conn, const Schedule& s, const PayloadMix& mix,
                          int n) {
  Rng rng = Rng::for_stream(seed, conn);
  std::vector<int64_t> out{s.first_offset(rng)};
  for (int i = 0; i < n; ++i) {
    out.push_back(mix.pick(rng));
    out.push_back(PayloadPattern::pick_offset(rng));
    out.push_back(s.next_gap(rng));
  }
  return out;
}

TEST(Workload, SameSeedSameScheduleAndPayloads) {
  auto mix = PayloadMix::parse("64:0.9,4096:0.08,65535:0.02", nullptr);
  ASSERT_TRUE(mix);
  for (auto kind : {ScheduleKind::kFixed, ScheduleKind::kPoisson}) {
    Schedule s{kind, 200.0, 0.1};
    EXPECT_EQ(draw(7, 3, s, *mix, 1000), draw(7, 3, s, *mix, 1000));
    EXPECT_NE(draw(7, 3, s, *mix, 1000), draw(8, 3, s, *mix, 1000)) << "seed changes it";
    EXPECT_NE(draw(7, 3, s, *mix, 1000), draw(7, 4, s, *mix, 1000))
        << "each connection has its own stream";
  }
  EXPECT_EQ(PayloadPattern(5).at(0)[123], PayloadPattern(5).at(0)[123]);
  const PayloadPattern a(5), b(5), c(6);
  EXPECT_TRUE(std::equal(a.at(0), a.at(0) + PayloadPattern::kPatternSize, b.at(0)));
  EXPECT_FALSE(std::equal(a.at(0), a.at(0) + PayloadPattern::kPatternSize, c.at(0)));
  // Any 64 KiB window is contiguous (wraps around the pattern).
  EXPECT_TRUE(std::equal(a.at(65000), a.at(65000) + 1000, b.at(65000)));
  EXPECT_EQ(a.at(65000)[536], a.at(0)[0]);
}

TEST(Workload, FixedScheduleKeepsItsRateWithinTheJitter) {
  Schedule s{ScheduleKind::kFixed, 1000.0, 0.1};
  Rng rng = Rng::for_stream(1, 0);
  const Nanos first = s.first_offset(rng);
  EXPECT_GE(first, 0);
  EXPECT_LT(first, kMillisecond);
  double sum = 0;
  for (int i = 0; i < 100000; ++i) {
    const Nanos g = s.next_gap(rng);
    ASSERT_GE(g, 900'000);
    ASSERT_LE(g, 1'100'000);
    sum += static_cast<double>(g);
  }
  EXPECT_NEAR(sum / 100000, 1e6, 1e6 * 0.005);
  Schedule exact{ScheduleKind::kFixed, 1000.0, 0.0};
  EXPECT_EQ(exact.next_gap(rng), 1'000'000);
}

TEST(Workload, PoissonScheduleHasExponentialGaps) {
  Schedule s{ScheduleKind::kPoisson, 500.0, 0.0};
  Rng rng = Rng::for_stream(3, 9);
  std::vector<double> gaps;
  for (int i = 0; i < 200000; ++i) gaps.push_back(static_cast<double>(s.next_gap(rng)));
  const double mean =
      std::accumulate(gaps.begin(), gaps.end(), 0.0) / static_cast<double>(gaps.size());
  EXPECT_NEAR(mean, 2e6, 2e6 * 0.01);
  // P(gap > mean) = 1/e for an exponential distribution.
  const double above = static_cast<double>(
      std::count_if(gaps.begin(), gaps.end(), [&](double g) { return g > mean; }));
  EXPECT_NEAR(above / static_cast<double>(gaps.size()), std::exp(-1.0), 0.01);
}

// Connections that start together (--sends-from) offer the target rate from the start:
// over 20,000 Poisson connections at 1/s, the first second carries as many sends as the
// third (a uniform first phase used to put ~1.5x into the first second).
TEST(Workload, PoissonConnectionsStartedTogetherOfferTheRateAtOnce) {
  Schedule s{ScheduleKind::kPoisson, 1.0, 0.0};
  int64_t per_second[3] = {};
  for (uint64_t conn = 0; conn < 20000; ++conn) {
    Rng rng = Rng::for_stream(11, conn);
    for (Nanos t = s.first_offset(rng); t < 3 * kSecond; t += s.next_gap(rng))
      ++per_second[t / kSecond];
  }
  EXPECT_NEAR(static_cast<double>(per_second[0]), 20000.0, 20000 * 0.03);
  EXPECT_NEAR(static_cast<double>(per_second[1]), 20000.0, 20000 * 0.03);
  EXPECT_NEAR(static_cast<double>(per_second[2]), 20000.0, 20000 * 0.03);
}

TEST(Workload, PayloadMixParsesAndPicksByWeight) {
  std::string err;
  auto mix = PayloadMix::parse("64:0.9,4096:0.08,65535:0.02", &err);
  ASSERT_TRUE(mix) << err;
  EXPECT_EQ(mix->max_size(), 65535u);
  Rng rng = Rng::for_stream(1, 1);
  std::map<uint32_t, int> seen;
  for (int i = 0; i < 100000; ++i) ++seen[mix->pick(rng)];
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_NEAR(seen[64] / 1e5, 0.9, 0.01);
  EXPECT_NEAR(seen[4096] / 1e5, 0.08, 0.01);
  EXPECT_NEAR(seen[65535] / 1e5, 0.02, 0.005);

  auto one = PayloadMix::parse("4KiB", &err);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->pick(rng), 4096u);
  EXPECT_EQ(one->to_string(), "4096");
  auto normalised = PayloadMix::parse("10:1,20:3", &err);
  ASSERT_TRUE(normalised);
  EXPECT_DOUBLE_EQ(normalised->entries()[1].second, 0.75);

  for (const char* bad : {"", "65536", "64:0", "64:-1", "64:x", "abc", "64:", "64,,"})
    EXPECT_FALSE(PayloadMix::parse(bad, &err)) << bad;
}

TEST(Workload, SourceIpsParseListsAndRanges) {
  std::string err;
  auto ips = parse_source_ips("127.0.0.2-127.0.0.9", &err);
  ASSERT_TRUE(ips) << err;
  ASSERT_EQ(ips->size(), 8u);
  EXPECT_EQ(ntohl((*ips)[0].sin_addr.s_addr), 0x7F000002u);
  EXPECT_EQ(ntohl((*ips)[7].sin_addr.s_addr), 0x7F000009u);
  EXPECT_EQ((*ips)[0].sin_port, 0);
  auto list = parse_source_ips("10.0.0.1,10.0.0.5,127.0.0.2-127.0.0.3", &err);
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 4u);
  for (const char* bad : {"", "127.0.0.9-127.0.0.2", "1.2.3", "127.0.0.1-", "x"})
    EXPECT_FALSE(parse_source_ips(bad, &err)) << bad;
}

TEST(Workload, ActiveConnectionsAreSpreadEvenly) {
  for (double f : {0.0, 0.01, 0.1, 0.333, 0.5, 1.0}) {
    uint64_t n = 0, first_half = 0;
    for (uint64_t g = 0; g < 10000; ++g) {
      if (!is_active_conn(g, f)) continue;
      ++n;
      if (g < 5000) ++first_half;
    }
    EXPECT_EQ(n, static_cast<uint64_t>(10000 * f)) << f;
    EXPECT_NEAR(static_cast<double>(first_half), static_cast<double>(n) / 2, 1.0) << f;
  }
}

TEST(Workload, ProcessesPartitionTheConnections) {
  std::vector<int> owner(40000, -1);
  for (int w = 0; w < 4; ++w)
    for (uint64_t g : process_conn_ids(40000, w, 4)) {
      ASSERT_EQ(owner[g], -1);
      owner[g] = w;
    }
  EXPECT_EQ(std::count(owner.begin(), owner.end(), -1), 0);
  EXPECT_EQ(process_conn_ids(40000, 1, 4).size(), 10000u);
  EXPECT_EQ(process_conn_ids(10, 3, 4).size(), 2u);
}

TEST(Workload, PackedActiveConnectionsFillTheFirstProcesses) {
  const uint64_t conns = 40001;
  const double frac = 0.05;  // ~2,000 active: all fit in process 0 of 4 (~10,000 ids each)
  uint64_t n_active = 0;
  for (uint64_t g = 0; g < conns; ++g) n_active += is_active_conn(g, frac) ? 1 : 0;
  std::vector<int> owner(conns, -1);
  for (int w = 0; w < 4; ++w) {
    const auto ids = process_conn_ids(conns, w, 4, frac);
    EXPECT_EQ(ids.size(), process_conn_ids(conns, w, 4).size()) << w;  // same fd load
    uint64_t active = 0;
    for (uint64_t g : ids) {
      ASSERT_EQ(owner[g], -1);
      owner[g] = w;
      active += is_active_conn(g, frac) ? 1 : 0;
    }
    EXPECT_EQ(active, w == 0 ? n_active : 0u) << w;
  }
  EXPECT_EQ(std::count(owner.begin(), owner.end(), -1), 0);
}

}  // namespace
}  // namespace c10m::loadclient
