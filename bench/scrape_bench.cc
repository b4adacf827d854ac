// Cost of one /metrics render (gather + exposition) with 10 vs 19,000 open connections.
//
// A scrape sums counter blocks (one per thread / worker) — never per-connection state —
// so the number of connections can change its cost only through the process' open fds
// (process_open_fds reads stat("/proc/self/fd").st_size, O(1) on Linux >= 6.2). This
// benchmark therefore holds REAL open descriptors (eventfds standing in for connection
// sockets: one fd each, like an accepted socket) and sets the counter blocks to show that
// many open connections. experiments/scrape_cost.sh does the same against the real server
// with 19,000 real TCP connections and curl.
#include <benchmark/benchmark.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <vector>

#include "metrics/exposition.h"
#include "metrics/heap_counter_slots.h"
#include "metrics/shm_counter_region.h"

namespace {

using c10m::metrics::HeapCounterSlots;

/// Opens `n` fds (best effort: up to the fd limit, minus a margin) for the benchmark's life.
struct HeldFds {
  explicit HeldFds(size_t n) {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (size_t i = 0; i < n; ++i) {
      const int fd = eventfd(0, EFD_CLOEXEC);
      if (fd < 0) break;
      fds.push_back(fd);
    }
  }
  ~HeldFds() {
    for (int fd : fds) close(fd);
  }
  std::vector<int> fds;
};

void BM_RenderMetrics(benchmark::State& state) {
  const auto conns = static_cast<size_t>(state.range(0));
  HeldFds held(conns);
  HeapCounterSlots slots(2);  // two event loops
  for (size_t i = 0; i < 2; ++i) {
    slots.slot(i)->conns_opened.add(held.fds.size() / 2 + i * (held.fds.size() % 2));
    slots.slot(i)->bytes_in.add(123456789);
  }
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string text = c10m::metrics::render_metrics(slots);
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["open_fds"] = static_cast<double>(held.fds.size());
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_RenderMetrics)->Arg(10)->Arg(19000)->Unit(benchmark::kMicrosecond);

/// The multi-process layout: 50 workers x 2 slots summed from shared memory (the 1M rung).
/// The workers are this process attaching every index, so process_* describe one pid.
void BM_RenderMetricsShm50Workers(benchmark::State& state) {
  std::string error;
  auto region = c10m::metrics::ShmCounterRegion::create_anonymous("bench", 50, 2, &error);
  if (!region) {
    state.SkipWithError(error.c_str());
    return;
  }
  for (size_t w = 0; w < 50; ++w) region->attach_worker(w)->slot(0)->conns_opened.add(20000);
  for (auto _ : state) {
    const std::string text = c10m::metrics::render_metrics(*region);
    benchmark::DoNotOptimize(text.data());
  }
}
BENCHMARK(BM_RenderMetricsShm50Workers)->Unit(benchmark::kMicrosecond);

/// Summing alone (what grows with workers x threads, never with connections).
void BM_CollectTotals(benchmark::State& state) {
  HeapCounterSlots slots(static_cast<size_t>(state.range(0)));
  c10m::metrics::CounterTotals t;
  for (auto _ : state) {
    slots.collect(&t);
    benchmark::DoNotOptimize(t.bytes_in);
  }
}
BENCHMARK(BM_CollectTotals)->Arg(2)->Arg(100);

}  // namespace

BENCHMARK_MAIN();
