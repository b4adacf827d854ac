// libFuzzer target over the whole request logic: the input drives one Session the way an
// engine would (bytes in random pieces, random sent amounts, ticks, EOF, drain, force
// close) and every invariant of docs/PROTOCOL.md that holds whatever the peer sends is
// checked: the output is a sequence of well-formed frames, ERROR is the last one, GOAWAY
// comes at most once, the queue stays bounded, and every pooled block comes back.
//
// Cost per input (profiled with perf, docs/FINDINGS.md "Fuzzing"): the work is kept to what
// explores logic. The pools live across inputs: a fresh 128 KiB block per input was an ASan
// mmap, munmap and TLB shootdown each time; under ASan the pool poisons the blocks it caches,
// so a use after release() is still caught. FETCH content mostly comes from a table by
// memcpy; large write queues are rare (pick_write_queue); the peer reads at most kReadCap
// bytes in at most a few dozen writes per input, so a FETCH of 2^64 bytes costs what the
// logic needs and no more.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/content_source.h"
#include "core/session.h"
#include "output_checker.h"
#include "proto/frame_reader.h"

namespace {

using namespace c10m;
using namespace c10m::core;
using fuzz::OutputChecker;

constexpr uint32_t kMaxFrames[] = {0, 1, 12, 100, 4096, 65535};
// Small queues mostly. A FETCH produces a full queue at once, and with 1-byte chunks that is
// one DATA frame per byte: a queue of 70000 or an unbounded one (FETCH batches of 256 KiB,
// 65,536 frames) costs 100 to 1,000 times a small one, so each comes 1 in 64.
size_t pick_write_queue(FuzzedDataProvider& fdp) {
  constexpr size_t kSmall[] = {1, 64, 1000, 4096};
  const int r = fdp.ConsumeIntegralInRange<int>(0, 63);
  if (r == 0) return 0;
  if (r == 1) return 70000;
  return kSmall[r % 4];
}
constexpr Nanos kTimeouts[] = {0, 1 * kSecond, 10 * kSecond};
/// The most output bytes the peer reads per input (a FETCH may be endless), and the most
/// writes of one "read all" step and of the final drain: with a write queue of 1 byte a
/// FETCH of 1-byte chunks refills one 4-byte frame per write, so bytes alone bound nothing.
constexpr uint64_t kReadCap = 16 * 1024;
constexpr int kSendsPerReadAll = 16;
constexpr int kSendsAtEnd = 64;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto content_pattern = make_pattern_source();
  // Live across inputs: see the cost note at the top.
  static BufferPool pool(kSessionBlockSize, true, 64);
  static BufferPool small(kSessionSmallBlockSize, true, 64);
  FuzzedDataProvider fdp(data, size);
  metrics::ThreadCounters counters;
  SessionEnv env;
  env.limits.max_frame = fdp.PickValueInArray(kMaxFrames);
  env.limits.write_queue = pick_write_queue(fdp);
  env.limits.idle_timeout = fdp.PickValueInArray(kTimeouts);
  env.limits.frame_timeout = fdp.PickValueInArray(kTimeouts);
  env.limits.write_timeout = fdp.PickValueInArray(kTimeouts);
  // The engines' pattern source, or none (the session's own fallback); FETCH bodies copied
  // or by reference.
  env.content = fdp.ConsumeIntegralInRange<int>(0, 7) == 0 ? nullptr : content_pattern.get();
  env.fetch_body = fdp.ConsumeBool() ? FetchBody::kReference : FetchBody::kCopy;
  env.ref_min_chunk = fdp.ConsumeIntegralInRange<size_t>(1, 32 * 1024);
  env.pool = &pool;
  env.counters = fdp.ConsumeBool() ? &counters : nullptr;
  env.small_pool = fdp.ConsumeIntegralInRange<int>(0, 3) == 0 ? nullptr : &small;
  env.read_chunk = 4096;
  // A memory budget, sometimes small enough that pressure and shedding come into play.
  constexpr uint64_t kBudgets[] = {0, 0, 200 * 1024, 600 * 1024, 1 << 20, 64 << 20};
  MemoryBudget budget(fdp.PickValueInArray(kBudgets), BudgetLevels{20, 40, 60});
  BudgetAccount account(&budget, 0, env.counters);
  if (fdp.ConsumeBool()) env.account = &account;
  // Whole frames beyond the limit: one reply (or DATA frame plus FETCH end), GOAWAY, ERROR.
  const size_t bound =
      env.limits.write_queue + proto::kMaxFrame + 3 + 3 + 3 + 1 + proto::kMaxErrorReason;

  Nanos now = 1;
  OutputChecker peer;
  uint64_t written = 0;
  {
    Session s(env, now);
    auto send = [&](size_t max) {
      if (written >= kReadCap) return;  // the peer has stopped reading
      max = std::min<uint64_t>(max, kReadCap - written);
      iovec iov[16];
      const int n = s.gather(iov, 16);
      FUZZ_CHECK(n >= 0 && n <= 16);
      size_t total = 0;
      for (int i = 0; i < n && total < max; ++i) {
        FUZZ_CHECK(iov[i].iov_len > 0);
        const size_t k = std::min(iov[i].iov_len, max - total);
        peer.take({static_cast<const uint8_t*>(iov[i].iov_base), k});
        total += k;
      }
      if (n > 0) FUZZ_CHECK(total > 0 || max == 0);
      written += total;
      s.on_sent(total, now);
    };
    auto check = [&]() {
      if (env.limits.write_queue != 0) FUZZ_CHECK(s.queued_bytes() <= bound);
      FUZZ_CHECK(s.has_output() == (s.queued_bytes() != 0));
      if (s.finished()) FUZZ_CHECK(!s.has_output() && !s.wants_read());
      FUZZ_CHECK(s.next_deadline() > 0);
      if (env.account != nullptr) FUZZ_CHECK(account.held() == s.memory_held());
    };
    if (fdp.ConsumeIntegralInRange<int>(0, 31) == 0) s.refuse_overloaded(now);
    while (fdp.remaining_bytes() > 0 && !s.finished()) {
      switch (fdp.ConsumeIntegralInRange<int>(0, 16)) {
        default: {  // 0..7: bytes from the peer
          const size_t n = fdp.ConsumeIntegralInRange<size_t>(1, env.read_chunk);
          const std::vector<uint8_t> in = fdp.ConsumeBytes<uint8_t>(n);
          if (s.wants_read()) s.on_bytes(in, now);
          break;
        }
        case 8:
        case 9:
        case 10:
          send(fdp.ConsumeIntegralInRange<size_t>(0, 100000));
          break;
        case 11: {
          const Nanos d = s.next_deadline();
          now += fdp.ConsumeIntegralInRange<Nanos>(0, 12 * kSecond);
          if (d != kNever && fdp.ConsumeBool()) now = std::max(now, d);
          s.on_tick(now);
          break;
        }
        case 12:
          s.on_peer_eof(now);
          break;
        case 13:
          s.begin_drain(now);
          break;
        case 14: {
          const bool in_flight = s.request_in_flight();
          s.force_close(now);
          if (!s.finished()) FUZZ_CHECK(s.request_in_flight() == in_flight);
          FUZZ_CHECK(!s.wants_read());
          break;
        }
        case 16: {  // the budget is past its limit and this connection is chosen
          const bool queued = s.has_output();
          s.shed(now);
          if (queued) FUZZ_CHECK(s.finished() && s.reset_on_close());
          FUZZ_CHECK(!s.wants_read());
          break;
        }
        case 15: {  // the peer reads all it can (bounded: a FETCH may be endless)
          for (int i = 0;
               i < kSendsPerReadAll && s.has_output() && !s.finished() && written < kReadCap; ++i)
            send(SIZE_MAX);
          break;
        }
      }
      check();
    }
    // The peer closes and reads: the session finishes, unless a huge FETCH is still owed
    // (then it is destroyed mid-way, as an engine exiting at the drain deadline would).
    s.on_peer_eof(now);
    for (int i = 0; i < kSendsAtEnd && !s.finished() && written < kReadCap; ++i) {
      send(SIZE_MAX);
      check();
    }
    if (s.finished() && !s.reset_on_close()) FUZZ_CHECK(!peer.reader.mid_frame());
  }
  FUZZ_CHECK(pool.outstanding() == 0);
  FUZZ_CHECK(small.outstanding() == 0);
  FUZZ_CHECK(account.held() == 0);
  if (env.counters != nullptr) {
    FUZZ_CHECK(counters.write_queue_bytes.load() == 0);
    FUZZ_CHECK(counters.bytes_out.load() == written);
  }
  return 0;
}
