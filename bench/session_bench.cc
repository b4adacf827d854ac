// The request path without sockets: core::Session fed one request at a time, its output
// gathered and reported sent, as an engine does. Per request type and size: time per
// request, bytes/s, and heap allocations per request counted by the allocator's hook
// (metrics/allocation_counter.h; tcmalloc in the release build, the sanitizer allocator in
// sanitized ones). The claim it checks: 0 allocations per request in steady state, with
// the pool on (--pool true); with the pool off every block is a malloc (experiment 5).
//
//   build/release/bench/session_bench [--benchmark_filter=Echo] [--benchmark_format=json]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "base/buffer_pool.h"
#include "core/content_source.h"
#include "core/session.h"
#include "metrics/allocation_counter.h"
#include "proto/frame.h"

namespace {

using c10m::BufferPool;
using c10m::core::FetchBody;
using c10m::core::Session;
using c10m::core::SessionEnv;
using c10m::proto::FrameType;

std::vector<uint8_t> frame(FrameType type, size_t n, uint8_t fill = 0x5a) {
  std::vector<uint8_t> b(3 + n, fill);
  c10m::proto::write_header(b.data(), type, static_cast<uint16_t>(n));
  return b;
}
std::vector<uint8_t> spec(FrameType type, uint64_t total, uint32_t chunk) {
  std::vector<uint8_t> b(15);
  c10m::proto::write_header(b.data(), type, 12);
  c10m::proto::write_stream_spec(b.data() + 3, {total, chunk});
  return b;
}

struct Rig {
  explicit Rig(bool pool_on, FetchBody body = FetchBody::kCopy)
      : pool(c10m::core::kSessionBlockSize, pool_on),
        small(c10m::core::kSessionSmallBlockSize, pool_on) {
    env.content = &c10m::core::pattern_source();
    env.pool = &pool;
    env.small_pool = &small;
    env.counters = &counters;
    env.fetch_body = body;
    session = std::make_unique<Session>(env, 1);
  }
  /// One request in (in reads of at most 64 KiB), every reply byte out. Returns bytes out.
  size_t serve(const std::vector<uint8_t>& in) {
    size_t out = 0;
    for (size_t i = 0; i < in.size();) {
      const size_t k = std::min<size_t>(in.size() - i, 65536);
      session->on_bytes({in.data() + i, k}, 1);
      i += k;
      while (session->has_output()) {
        iovec iov[64];
        const int n = session->gather(iov, 64);
        size_t bytes = 0;
        for (int j = 0; j < n; ++j) bytes += iov[j].iov_len;
        session->on_sent(bytes, 1);
        out += bytes;
      }
    }
    return out;
  }
  BufferPool pool;
  BufferPool small;
  c10m::metrics::ThreadCounters counters;
  SessionEnv env;
  std::unique_ptr<Session> session;
};

/// Runs `in` (one request, or one STREAM's frames) per iteration.
void run(benchmark::State& state, const std::vector<uint8_t>& in, bool pool_on,
         FetchBody body = FetchBody::kCopy) {
  const c10m::metrics::AllocationHook hook = c10m::metrics::install_allocation_counter();
  Rig rig(pool_on, body);
  for (int i = 0; i < 100; ++i) rig.serve(in);  // steady state: warm pools
  size_t bytes = 0;
  const uint64_t before = c10m::metrics::allocations_now();
  for (auto _ : state) bytes += rig.serve(in);
  const uint64_t allocs = c10m::metrics::allocations_now() - before;
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes + in.size() * state.iterations()));
  if (hook == c10m::metrics::AllocationHook::kNone) {
    state.SetLabel("no allocator hook: allocations not counted");
  } else {
    state.counters["allocs_per_op"] =
        static_cast<double>(allocs) / static_cast<double>(state.iterations());
  }
}

void BM_Ping(benchmark::State& s) { run(s, frame(FrameType::kPing, 0), s.range(0)); }
void BM_Echo(benchmark::State& s) {
  run(s, frame(FrameType::kEcho, static_cast<size_t>(s.range(1))), s.range(0));
}
void BM_Sink(benchmark::State& s) {
  run(s, frame(FrameType::kSink, static_cast<size_t>(s.range(1))), s.range(0));
}
/// One STREAM of range(1) bytes in 16 KiB CHUNKs per iteration (an op = the whole upload).
void BM_StreamChunks(benchmark::State& s) {
  const auto total = static_cast<size_t>(s.range(1));
  std::vector<uint8_t> in = spec(FrameType::kStream, total, 16384);
  for (size_t off = 0; off < total; off += 16384) {
    const auto c = frame(FrameType::kChunk, std::min<size_t>(16384, total - off));
    in.insert(in.end(), c.begin(), c.end());
  }
  run(s, in, s.range(0));
}
/// One FETCH of range(1) bytes in 16 KiB DATA frames; range(2): 0 copy, 1 by reference.
void BM_Fetch(benchmark::State& s) {
  run(s, spec(FrameType::kFetch, static_cast<uint64_t>(s.range(1)), 16384), s.range(0),
      s.range(2) != 0 ? FetchBody::kReference : FetchBody::kCopy);
}

// range(0): the pool on (1) or off (0).
BENCHMARK(BM_Ping)->ArgNames({"pool"})->Arg(1)->Arg(0);
BENCHMARK(BM_Echo)
    ->ArgNames({"pool", "bytes"})
    ->Args({1, 64})
    ->Args({1, 4096})
    ->Args({1, 65535})
    ->Args({0, 64})
    ->Args({0, 4096})
    ->Args({0, 65535});
BENCHMARK(BM_Sink)->ArgNames({"pool", "bytes"})->Args({1, 16384})->Args({0, 16384});
BENCHMARK(BM_StreamChunks)->ArgNames({"pool", "bytes"})->Args({1, 1 << 20})->Args({0, 1 << 20});
BENCHMARK(BM_Fetch)
    ->ArgNames({"pool", "bytes", "ref"})
    ->Args({1, 1 << 20, 0})
    ->Args({1, 1 << 20, 1})
    ->Args({0, 1 << 20, 0})
    ->Args({0, 1 << 20, 1});

}  // namespace

BENCHMARK_MAIN();
