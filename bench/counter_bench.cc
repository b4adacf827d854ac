// Cost of a hot-path counter increment: the single-writer Counter::add (relaxed load +
// store, no lock prefix) against an atomic RMW (what a counter shared between threads
// would need), and a whole request's worth of counting (frames + bytes + histogram).
#include <benchmark/benchmark.h>

#include "metrics/counters.h"

namespace {

using c10m::metrics::Counter;
using c10m::metrics::ThreadCounters;

void BM_CounterAdd(benchmark::State& state) {
  ThreadCounters c;
  for (auto _ : state) {
    c.bytes_in.add(64);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(c.bytes_in.load());
}
BENCHMARK(BM_CounterAdd);

void BM_CounterAddAtomicRmw(benchmark::State& state) {
  ThreadCounters c;
  for (auto _ : state) {
    c.bytes_in.add_atomic(64);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(c.bytes_in.load());
}
BENCHMARK(BM_CounterAddAtomicRmw);

/// Everything one PING costs in counters: bytes in, frame, service histogram, bytes out.
void BM_CountOneRequest(benchmark::State& state) {
  ThreadCounters c;
  int64_t ns = 1000;
  for (auto _ : state) {
    c.bytes_in.add(3);
    c.frames[1].add();
    c.observe_service(ns);
    c.bytes_out.add(3);
    ns = (ns * 7 + 13) % 3'000'000;  // spread over the buckets
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(c.service_count.load());
}
BENCHMARK(BM_CountOneRequest);

/// Each thread writes its own block (the design): no shared cache line, so the cost per
/// increment stays flat as threads are added.
void BM_CounterAddPerThreadBlocks(benchmark::State& state) {
  static ThreadCounters blocks[64];
  ThreadCounters& mine = blocks[state.thread_index()];
  for (auto _ : state) {
    mine.bytes_in.add(64);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_CounterAddPerThreadBlocks)->Threads(1)->Threads(2);

}  // namespace

BENCHMARK_MAIN();
