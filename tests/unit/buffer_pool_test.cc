// BufferPool: recycling on, off, the cap on cached blocks, trimming.
#include "base/buffer_pool.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace c10m {
namespace {

TEST(BufferPoolTest, RecyclesWhenEnabled) {
  BufferPool pool(4096, true);
  EXPECT_EQ(pool.block_size(), 4096u);
  uint8_t* a = pool.acquire();
  std::memset(a, 0x5A, 4096);  // the whole block is usable
  EXPECT_EQ(pool.outstanding(), 1u);
  pool.release(a);
  EXPECT_EQ(pool.outstanding(), 0u);
  EXPECT_EQ(pool.cached(), 1u);
  uint8_t* b = pool.acquire();
  EXPECT_EQ(a, b);
  EXPECT_EQ(pool.cached(), 0u);
  pool.release(b);
}

TEST(BufferPoolTest, DisabledFreesEveryBlock) {
  BufferPool pool(1024, false);
  std::vector<uint8_t*> blocks;
  for (int i = 0; i < 10; ++i) blocks.push_back(pool.acquire());
  EXPECT_EQ(pool.outstanding(), 10u);
  for (uint8_t* b : blocks) pool.release(b);
  EXPECT_EQ(pool.outstanding(), 0u);
  EXPECT_EQ(pool.cached(), 0u);
}

TEST(BufferPoolTest, KeepsAtMostMaxCached) {
  BufferPool pool(512, true, 3);
  std::vector<uint8_t*> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(pool.acquire());
  for (uint8_t* b : blocks) pool.release(b);
  EXPECT_EQ(pool.cached(), 3u);
  EXPECT_EQ(pool.outstanding(), 0u);
}

TEST(BufferPoolTest, TrimFreesCachedBlocksDownToKeep) {
  BufferPool pool(512, true, 8);
  uint8_t* blocks[5];
  for (auto& b : blocks) b = pool.acquire();
  for (auto* b : blocks) pool.release(b);
  EXPECT_EQ(pool.cached(), 5u);
  pool.trim(1);
  EXPECT_EQ(pool.cached(), 1u);
  pool.trim(3);
  EXPECT_EQ(pool.cached(), 1u);
  pool.trim(0);
  EXPECT_EQ(pool.cached(), 0u);
  EXPECT_EQ(pool.outstanding(), 0u);
}

TEST(BufferPoolTest, ReleaseNullIsANoOp) {
  BufferPool pool(512, true);
  pool.release(nullptr);
  EXPECT_EQ(pool.outstanding(), 0u);
  EXPECT_EQ(pool.cached(), 0u);
}

}  // namespace
}  // namespace c10m
