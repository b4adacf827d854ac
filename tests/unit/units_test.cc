// Go-style durations and byte sizes, as every command line spells them.
#include "base/units.h"

#include <gtest/gtest.h>

namespace c10m {
namespace {

TEST(UnitsTest, ParseDuration) {
  EXPECT_EQ(parse_duration("0"), 0);
  EXPECT_EQ(parse_duration("0s"), 0);
  EXPECT_EQ(parse_duration("0ms"), 0);
  EXPECT_EQ(parse_duration("100ns"), 100);
  EXPECT_EQ(parse_duration("250us"), 250 * kMicrosecond);
  EXPECT_EQ(parse_duration("250µs"), 250 * kMicrosecond);
  EXPECT_EQ(parse_duration("500ms"), 500 * kMillisecond);
  EXPECT_EQ(parse_duration("10s"), 10 * kSecond);
  EXPECT_EQ(parse_duration("1.5s"), 1500 * kMillisecond);
  EXPECT_EQ(parse_duration("5m"), 300 * kSecond);
  EXPECT_EQ(parse_duration("1h30m"), 5400 * kSecond);
  EXPECT_EQ(parse_duration("2h"), 7200 * kSecond);
  EXPECT_EQ(parse_duration("1m30s500ms"), 90 * kSecond + 500 * kMillisecond);
}

TEST(UnitsTest, ParseDurationRejectsBadInput) {
  for (const char* bad : {"", "10", "s", "-5s", "5 s", "5x", "5sec", "1.2.3s", ".s", "abc", "5s ",
                          " 5s", "1e3s", "99999999999h", "5s-", "+5s", "nan", "inf"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  }
}

TEST(UnitsTest, ParseSize) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("65536"), 65536u);
  EXPECT_EQ(parse_size("100B"), 100u);
  EXPECT_EQ(parse_size("64KiB"), 65536u);
  EXPECT_EQ(parse_size("64K"), 65536u);
  EXPECT_EQ(parse_size("64KB"), 65536u);
  EXPECT_EQ(parse_size("1MiB"), 1u << 20);
  EXPECT_EQ(parse_size("2GiB"), 2ull << 30);
}

TEST(UnitsTest, ParseSizeRejectsBadInput) {
  for (const char* bad : {"", "KiB", "-1", "1.5MiB", "64 KiB", "64kib", "64TiB", "0x10", "1e6",
                          "9999999999999999999", "999999999999999999GiB"}) {
    EXPECT_FALSE(parse_size(bad).has_value()) << bad;
  }
}

TEST(UnitsTest, FormatDuration) {
  EXPECT_EQ(format_duration(0), "0");
  EXPECT_EQ(format_duration(10 * kSecond), "10s");
  EXPECT_EQ(format_duration(250 * kMillisecond), "250ms");
  EXPECT_EQ(format_duration(7 * kMicrosecond), "7us");
  EXPECT_EQ(format_duration(123), "123ns");
}

TEST(UnitsTest, FormatParsesBack) {
  for (Nanos d : {Nanos{0}, Nanos{1}, 999 * kMicrosecond, 1500 * kMillisecond, 300 * kSecond,
                  3601 * kSecond}) {
    EXPECT_EQ(parse_duration(format_duration(d)), d) << d;
  }
}

}  // namespace
}  // namespace c10m
