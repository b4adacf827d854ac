// libFuzzer target over the whole request logic: the input drives one Session the way an
// engine would (bytes in random pieces, random sent amounts, ticks, EOF, drain, force
// close) and every invariant of docs/PROTOCOL.md that holds whatever the peer sends is
// checked: the output is a sequence of well-formed frames, ERROR is the last one, GOAWAY
// comes at most once, the queue stays bounded, and every pooled block comes back.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
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
constexpr size_t kWriteQueues[] = {0, 1, 64, 1000, 70000};
constexpr Nanos kTimeouts[] = {0, 1 * kSecond, 10 * kSecond};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto content = make_pattern_source();
  FuzzedDataProvider fdp(data, size);
  const bool pooling = fdp.ConsumeBool();
  BufferPool pool(kSessionBlockSize, pooling);
  BufferPool small(kSessionSmallBlockSize, pooling);
  metrics::ThreadCounters counters;
  SessionEnv env;
  env.limits.max_frame = fdp.PickValueInArray(kMaxFrames);
  env.limits.write_queue = fdp.PickValueInArray(kWriteQueues);
  env.limits.idle_timeout = fdp.PickValueInArray(kTimeouts);
  env.limits.frame_timeout = fdp.PickValueInArray(kTimeouts);
  env.limits.write_timeout = fdp.PickValueInArray(kTimeouts);
  env.content = fdp.ConsumeBool() ? content.get() : nullptr;
  env.pool = &pool;
  env.counters = fdp.ConsumeBool() ? &counters : nullptr;
  env.small_pool = fdp.ConsumeIntegralInRange<int>(0, 3) == 0 ? nullptr : &small;
  env.read_chunk = 4096;
  // Whole frames beyond the limit: one reply (or DATA frame plus FETCH end), GOAWAY, ERROR.
  const size_t bound =
      env.limits.write_queue + proto::kMaxFrame + 3 + 3 + 3 + 1 + proto::kMaxErrorReason;

  Nanos now = 1;
  OutputChecker peer;
  uint64_t written = 0;
  {
    Session s(env, now);
    auto send = [&](size_t max) {
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
    };
    if (fdp.ConsumeIntegralInRange<int>(0, 31) == 0) s.refuse_overloaded(now);
    while (fdp.remaining_bytes() > 0 && !s.finished()) {
      switch (fdp.ConsumeIntegralInRange<int>(0, 15)) {
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
        case 15: {  // the peer reads all it can (bounded: a FETCH may be endless)
          const uint64_t limit = written + 256 * 1024;
          while (s.has_output() && !s.finished() && written < limit) send(SIZE_MAX);
          break;
        }
      }
      check();
    }
    // The peer closes and reads: the session finishes, unless a huge FETCH is still owed
    // (then it is destroyed mid-way, as an engine exiting at the drain deadline would).
    s.on_peer_eof(now);
    const uint64_t limit = written + 512 * 1024;
    while (!s.finished() && written < limit) {
      send(SIZE_MAX);
      check();
    }
    if (s.finished() && s.close_cause() != CloseCause::kWriteTimeout)
      FUZZ_CHECK(!peer.reader.mid_frame());
  }
  FUZZ_CHECK(pool.outstanding() == 0);
  FUZZ_CHECK(small.outstanding() == 0);
  if (env.counters != nullptr) {
    FUZZ_CHECK(counters.write_queue_bytes.load() == 0);
    FUZZ_CHECK(counters.bytes_out.load() == written);
  }
  return 0;
}
