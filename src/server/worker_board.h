#pragma once
// WorkerBoard: the few words a supervisor and its worker processes share besides the
// counters (metrics/shm_counter_region.h): per worker, its pid, whether it is ready and
// taking new connections, the capacity it computed from its fd limit, and its part of
// the drain report. A memfd the supervisor creates and every worker maps (MAP_SHARED),
// inherited as an fd across fork + exec.
//
// Thread rule: every field is an atomic with one writer at a time: the worker process
// writes its own slot; the supervisor resets a slot before (re)starting that worker and
// reads all of them. Readers in any process, any thread.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/noncopyable.h"
#include "engine/engine.h"

namespace c10m::server {

enum class WorkerState : uint32_t {
  kStarting = 0,  // forked, not yet serving
  kReady = 1,     // serving; capacity is valid
  kDrained = 2,   // drain finished; the drain fields are valid
};

struct alignas(64) BoardSlot {
  std::atomic<int32_t> pid;
  std::atomic<uint32_t> state;      // WorkerState
  std::atomic<uint32_t> accepting;  // 1 while the worker takes new connections
  std::atomic<uint64_t> capacity;   // connections it keeps before it pauses
  std::atomic<uint64_t> fd_limit;
  std::atomic<uint32_t> admin_port;  // the worker's loopback admin port (profiles); 0 = none
  std::atomic<uint64_t> drain_open_at_start;
  std::atomic<uint64_t> drain_closed_by_peer;
  std::atomic<uint64_t> drain_force_closed;
  std::atomic<uint64_t> drain_in_flight;

  /// Supervisor, before (re)starting the worker.
  void reset();
  /// Worker, when its drain is done.
  void store_drain(const engine::DrainReport& r);
  engine::DrainReport load_drain() const;
};

class WorkerBoard : NonCopyable {
 public:
  /// A fresh board for `workers` workers (memfd, close-on-exec). nullptr + *error.
  static std::unique_ptr<WorkerBoard> create(size_t workers, std::string* error);
  /// Maps an inherited board; takes ownership of `fd`. nullptr + *error when it does not
  /// hold `workers` slots.
  static std::unique_ptr<WorkerBoard> open(int fd, size_t workers, std::string* error);
  ~WorkerBoard();

  BoardSlot& slot(size_t w) const;
  size_t workers() const { return workers_; }
  int fd() const { return fd_; }

 private:
  WorkerBoard(int fd, void* base, size_t size, size_t workers);
  int fd_;
  uint8_t* base_;
  size_t size_;
  size_t workers_;
};

}  // namespace c10m::server
