#pragma once
// ShmCounterRegion: counter blocks for several worker processes in one shared-memory
// segment, so that the one process serving /metrics sums them all.
//
// Layout (all offsets from the start of the mapping; see docs/OBSERVABILITY.md):
//   [0, 64)                     RegionHeader: magic "C10MCTR1", version, worker count,
//                               slots per worker, sizeof(ThreadCounters), offsets
//   [64, 64 + 64*W)             W WorkerHeaders (one cache line each): pid of the
//                               process that attached the worker (0 = never), attach count
//   [slots_offset, ...)         W * S ThreadCounters (64-byte aligned), worker w's slot s
//                               at slots_offset + (w*S + s) * sizeof(ThreadCounters)
// The segment is a memfd (anonymous: created before the workers fork, inherited through
// the MAP_SHARED mapping) or a file (e.g. under /dev/shm) that exec'ed workers or an
// outside reader open by path. The layout is checked on open (magic, version, block
// size): reader and writers must come from the same build of ThreadCounters.
//
// Workers: each worker process calls attach_worker(w) once, before its threads write,
// and gets a CounterSlots over its S slots (one per thread). Attaching records its pid
// and zeroes the gauges a previous holder of `w` left (its connections died with it);
// counters keep their values so sums never go backwards. Attaching also installs the
// process's allocation counter (allocation_counter.h) and points it at the worker's
// header, so that c10m_allocations_total sums every worker process; a region that
// received allocation counts is never unmapped (a thread allocating during teardown
// must not write into an unmapped page): its mapping lives until the process exits.
// Reader: collect() sums every slot of every worker (O(W*S), never O(connections));
// gauges (conns_open, write_queue_bytes) only from workers whose process is alive.
//
// Thread rule: attach_worker() before the worker's threads start; slot blocks as in
// counters.h (one writer each); collect()/processes() from any thread of any process.
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "metrics/allocation_counter.h"
#include "metrics/counter_source.h"
#include "metrics/counters.h"

namespace c10m::metrics {

inline constexpr char kRegionMagic[8] = {'C', '1', '0', 'M', 'C', 'T', 'R', '1'};
inline constexpr uint32_t kRegionVersion = 1;

struct alignas(64) RegionHeader {
  char magic[8];
  uint32_t version;
  uint32_t workers;
  uint32_t slots_per_worker;
  uint32_t slot_size;  // sizeof(ThreadCounters) of the writer's build
  uint64_t worker_headers_offset;
  uint64_t slots_offset;
  uint64_t total_size;
};
static_assert(sizeof(RegionHeader) == 64);

struct alignas(64) WorkerHeader {
  std::atomic<int32_t> pid;  // process that attached this worker; 0 = none yet
  std::atomic<uint32_t> attach_count;
  AllocationCounts allocations;           // every heap allocation of the worker's processes
  std::atomic<uint32_t> allocation_hook;  // AllocationHook of the last process attached
};
static_assert(sizeof(WorkerHeader) == 64);
static_assert(std::atomic<int32_t>::is_always_lock_free);

class ShmCounterRegion final : public CounterSource {
 public:
  /// Anonymous region (memfd named `name`, for /proc/PID/fd readability). Share it by
  /// forking after creation; fd() stays open (close-on-exec) for passing explicitly.
  static std::unique_ptr<ShmCounterRegion> create_anonymous(const std::string& name, size_t workers,
                                                            size_t slots_per_worker,
                                                            std::string* error);
  /// Region in a file at `path` (created or truncated, mode 0600). The file is unlinked
  /// when this object is destroyed in the creating process (unless release_path()).
  static std::unique_ptr<ShmCounterRegion> create_file(const std::string& path, size_t workers,
                                                       size_t slots_per_worker, std::string* error);
  /// Maps an existing region (file path) for reading and attaching. Checks the layout.
  static std::unique_ptr<ShmCounterRegion> open_file(const std::string& path, std::string* error);
  /// Same, from an open fd (a worker process inherits the creator's memfd); takes
  /// ownership of `fd` (closed on failure too).
  static std::unique_ptr<ShmCounterRegion> open_fd(int fd, std::string* error);

  ~ShmCounterRegion() override;
  ShmCounterRegion(const ShmCounterRegion&) = delete;
  ShmCounterRegion& operator=(const ShmCounterRegion&) = delete;

  size_t workers() const { return workers_; }
  size_t slots_per_worker() const { return slots_per_worker_; }
  int fd() const { return fd_; }
  size_t size_bytes() const { return size_; }
  /// Keeps the file on destruction (another process owns its lifetime).
  void release_path() { path_.clear(); }

  /// Claims worker `w` (< workers()) for the calling process: stores getpid(), zeroes
  /// the gauges left by a previous holder. Returns a CounterSlots over its slots, owned
  /// by the region. Call once per worker process, before its threads write.
  CounterSlots* attach_worker(size_t w);

  /// Direct access to worker w's slot s (tests, tools).
  ThreadCounters* block(size_t w, size_t s) const;
  int32_t worker_pid(size_t w) const;
  /// How many times worker w was attached (a restarted worker process attaches again).
  uint32_t attach_count(size_t w) const;
  /// Worker w's connections open now (0 when its process is gone) and sockets accepted.
  CounterSource::WorkerSample worker_sample(size_t w) const;

  void collect(CounterTotals* out) const override;
  /// Every attached worker's slots (workers < `workers`, default all).
  std::vector<LoopAccepts> loop_accepts(size_t workers) const;
  std::vector<LoopAccepts> per_loop_accepts() const override { return loop_accepts(workers_); }
  /// Live attached workers' pids, plus the calling process when it attached none.
  std::vector<pid_t> processes() const override;
  /// Distinct live pids among attached workers.
  size_t worker_processes() const override;

 private:
  class WorkerSlots;
  ShmCounterRegion(int fd, void* base, size_t size, std::string path);
  static std::unique_ptr<ShmCounterRegion> init_fd(int fd, std::string path, size_t workers,
                                                   size_t slots_per_worker, std::string* error);
  WorkerHeader* worker_header(size_t w) const;
  std::vector<pid_t> live_worker_pids() const;

  int fd_;
  uint8_t* base_;
  size_t size_;
  std::string path_;  // unlinked on destruction when non-empty
  size_t workers_ = 0;
  size_t slots_per_worker_ = 0;
  std::vector<std::unique_ptr<WorkerSlots>> attached_;
  bool allocation_target_ = false;  // received allocation counts: never unmapped
};

/// True when process `pid` exists (kill(pid, 0) succeeds or fails with EPERM).
bool process_alive(pid_t pid);

}  // namespace c10m::metrics
