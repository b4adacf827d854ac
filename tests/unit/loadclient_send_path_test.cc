// The load client's send path without sockets: the indexed send heap (order, removal,
// rescheduling against a reference) and the write stage (each connection's staged bytes
// come back whole, in order, in as few segments as the interleaving allows).
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "loadclient/send_heap.h"
#include "loadclient/workload.h"
#include "loadclient/write_stage.h"

namespace c10m::loadclient {
namespace {

TEST(SendHeap, PopsInTimeOrderAndRemovesAnyConnection) {
  constexpr uint32_t kConns = 500;
  SendHeap heap(kConns);
  std::set<std::pair<Nanos, uint32_t>> ref;
  std::map<uint32_t, Nanos> when_of;
  Rng rng = Rng::for_stream(42, 0);
  for (int step = 0; step < 200000; ++step) {
    const uint64_t r = rng.next();
    const auto conn = static_cast<uint32_t>((r >> 8) % kConns);
    const Nanos when = static_cast<Nanos>((r >> 20) % 100000);
    switch (r % 4) {
      case 0:
      case 1:  // schedule (if absent)
        if (!heap.contains(conn)) {
          heap.push(conn, when);
          ref.insert({when, conn});
          when_of[conn] = when;
        }
        break;
      case 2:  // remove (present or not)
        heap.remove(conn);
        if (auto it = when_of.find(conn); it != when_of.end()) {
          ref.erase({it->second, conn});
          when_of.erase(it);
        }
        break;
      case 3:  // fire the earliest: pop it, or move it later
        if (ref.empty()) {
          ASSERT_TRUE(heap.empty());
          ASSERT_EQ(heap.top_when(), kNever);
          break;
        }
        ASSERT_EQ(heap.top_when(), ref.begin()->first);
        const uint32_t top = heap.top_conn();
        ASSERT_EQ(when_of.at(top), heap.top_when()) << "ties may come in any order";
        ref.erase({when_of[top], top});
        if (r & 16) {
          heap.pop();
          when_of.erase(top);
        } else {
          const Nanos next = when_of[top] + static_cast<Nanos>(r % 777);
          heap.reschedule_top(next);
          ref.insert({next, top});
          when_of[top] = next;
        }
        break;
    }
    ASSERT_EQ(heap.size(), ref.size());
  }
  Nanos last = -1;
  while (!heap.empty()) {
    ASSERT_GE(heap.top_when(), last);
    last = heap.top_when();
    ASSERT_TRUE(heap.contains(heap.top_conn()));
    const uint32_t top = heap.top_conn();
    heap.pop();
    ASSERT_FALSE(heap.contains(top));
  }
}

// What one connection's chain holds, concatenated.
std::string chain_bytes(const WriteStage& stage, WriteStage::Chain chain, int* segments) {
  std::string out;
  *segments = 0;
  for (uint32_t s = chain.head; s != WriteStage::kNone; s = stage.segment(s).next) {
    const auto& seg = stage.segment(s);
    out.append(reinterpret_cast<const char*>(stage.bytes(seg)), seg.len);
    ++*segments;
  }
  return out;
}

void stage_text(WriteStage& stage, WriteStage::Chain& chain, uint32_t conn, const std::string& s) {
  ASSERT_GE(stage.room(), s.size());
  std::memcpy(stage.reserve(s.size()), s.data(), s.size());
  stage.commit(chain, conn, s.size());
}

TEST(WriteStage, InterleavedConnectionsKeepTheirOwnOrder) {
  WriteStage stage(1024);
  WriteStage::Chain a, b, c;
  // Closed loop: the replacements for one read's replies are one segment.
  stage_text(stage, a, 7, "a1");
  stage_text(stage, a, 7, "a2");
  stage_text(stage, a, 7, "a3");
  // Open model: timers of several connections interleave.
  stage_text(stage, b, 3, "b1");
  stage_text(stage, a, 7, "a4");
  stage_text(stage, c, 9, "c1");
  stage_text(stage, b, 3, "b2");
  stage_text(stage, b, 3, "b3");
  int segs = 0;
  EXPECT_EQ(chain_bytes(stage, a, &segs), "a1a2a3a4");
  EXPECT_EQ(segs, 2);
  EXPECT_EQ(chain_bytes(stage, b, &segs), "b1b2b3");
  EXPECT_EQ(segs, 2);
  EXPECT_EQ(chain_bytes(stage, c, &segs), "c1");
  EXPECT_EQ(segs, 1);
  EXPECT_EQ(stage.dirty(), (std::vector<uint32_t>{7, 3, 9})) << "each connection listed once";
  EXPECT_EQ(stage.room(), 1024u - 16);

  // A connection whose chain was dropped (closed) and restarted is listed again.
  a = {};
  stage_text(stage, a, 7, "a5");
  EXPECT_EQ(stage.dirty(), (std::vector<uint32_t>{7, 3, 9, 7}));
  EXPECT_EQ(chain_bytes(stage, a, &segs), "a5");

  a = b = c = {};
  stage.reset();
  EXPECT_TRUE(stage.idle());
  EXPECT_EQ(stage.room(), 1024u);
  stage_text(stage, b, 3, "again");
  EXPECT_EQ(chain_bytes(stage, b, &segs), "again");
  EXPECT_EQ(stage.dirty(), (std::vector<uint32_t>{3}));
}

}  // namespace
}  // namespace c10m::loadclient
