// --io auto and the direct loop's connection order: which I/O mode a run gets for its
// connections per process against the fd limit, and that a direct loop lays its active
// connections first (so they share the fewest rings).
#include <gtest/gtest.h>

#include <vector>

#include "loadclient/direct_load_loop.h"
#include "loadclient/direct_ring.h"
#include "loadclient/io_batch.h"
#include "loadclient/load_runner.h"

namespace c10m::loadclient {
namespace {

LoadConfig config(uint64_t conns, int procs, IoMode io = IoMode::kAuto) {
  LoadConfig c;
  c.conns = conns;
  c.procs = procs;
  c.io = io;
  return c;
}

TEST(LoadClientIoMode, AutoPicksDirectOnlyPastTheFdLimit) {
  const IoMode plain = IoBatch::unavailable().empty() ? IoMode::kUring : IoMode::kEpoll;
  const IoMode past = DirectRing::unavailable().empty() ? IoMode::kDirect : plain;
  EXPECT_EQ(resolve_io_mode(config(19000, 1), 20000), plain);
  EXPECT_EQ(resolve_io_mode(config(20000 - kFdReserve, 1), 20000), plain);
  EXPECT_EQ(resolve_io_mode(config(20000 - kFdReserve + 1, 1), 20000), past);
  EXPECT_EQ(resolve_io_mode(config(1000000, 1), 20000), past);
  // --procs shares the connections out: 51 processes of ~19,608 stay plain.
  EXPECT_EQ(resolve_io_mode(config(1000000, 51), 20000), plain);
  EXPECT_EQ(resolve_io_mode(config(3000, 1), 1024), past);
}

TEST(LoadClientIoMode, ExplicitModesAreKept) {
  for (IoMode m : {IoMode::kEpoll, IoMode::kUring, IoMode::kDirect}) {
    EXPECT_EQ(resolve_io_mode(config(1000000, 1, m), 20000), m);
    EXPECT_EQ(resolve_io_mode(config(10, 1, m), 20000), m);
  }
  EXPECT_EQ(parse_io_mode("direct"), IoMode::kDirect);
  EXPECT_STREQ(io_mode_name(IoMode::kDirect), "direct");
  EXPECT_FALSE(parse_io_mode("directs").has_value());
}

TEST(LoadClientIoMode, DirectLoopOrdersActiveConnectionsFirst) {
  std::vector<uint64_t> ids;
  for (uint64_t g = 0; g < 200; ++g) ids.push_back(g * 3 + 1);
  const double frac = 0.05;
  const std::vector<uint64_t> out = actives_first(ids, frac);
  ASSERT_EQ(out.size(), ids.size());
  size_t actives = 0;
  for (uint64_t g : ids) actives += is_active_conn(g, frac) ? 1 : 0;
  ASSERT_GT(actives, 0u);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(is_active_conn(out[i], frac), i < actives) << i;
  // Each group keeps its order (the seeded streams are per id, so order only decides the
  // ring and the opening order).
  for (size_t i = 1; i < out.size(); ++i) {
    if (i != actives) {
      EXPECT_LT(out[i - 1], out[i]) << i;
    }
  }
}

}  // namespace
}  // namespace c10m::loadclient
