#pragma once
// The engine interface, drawn at "serve these listeners with this session logic": an
// engine moves bytes and time between sockets and core::Session, nothing else. One folder
// per engine; only engine_factory.cc knows them all.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/server_config.h"
#include "metrics/counters.h"

namespace c10m::engine {

enum class EngineKind { kThread, kEpoll, kUring };

/// "thread" / "epoll" / "uring" -> kind; false on an unknown name (and for "auto": see
/// choose_engine).
bool parse_engine_kind(const std::string& name, EngineKind* out);
/// `--engine auto` (the server's default): uring where this kernel and `config` allow it,
/// else epoll. Sets `*why` to the reason, for the start-up line: "io_uring available,
/// kernel 6.18", "io_uring disabled by kernel.io_uring_disabled=2", "--fetch-send sendfile
/// needs epoll", ... Probes io_uring (once per process).
EngineKind choose_engine(const core::ServerConfig& config, std::string* why);
/// choose_engine's decision from its inputs (pure, for tests): the io_uring probe's error
/// ("" = available), the contents of /proc/sys/kernel/io_uring_disabled and the kernel
/// release (uname -r).
EngineKind choose_engine_from(const core::ServerConfig& config, const std::string& uring_error,
                              const std::string& io_uring_disabled,
                              const std::string& kernel_release, std::string* why);
const char* engine_kind_name(EngineKind kind);
/// The engines this machine can run; probes io_uring at run time (once per process).
std::vector<EngineKind> available_engines();
/// Why `kind` cannot run here ("" when it can): for uring, the kernel probe's answer.
std::string engine_unavailable_reason(EngineKind kind);

/// What drain printed, also returned for tests.
struct DrainReport {
  uint64_t closed_by_peer = 0;  // connections the peer closed during the drain
  uint64_t force_closed = 0;    // still open at the drain deadline
  uint64_t in_flight = 0;       // ... of which had a request half-received
  uint64_t open_at_start = 0;   // connections open when the drain began
};

using metrics::CounterSlots;

/// Told when a worker process stops or resumes taking new connections (src/server
/// implements it over the worker board). Called from any engine thread.
class AcceptGate {
 public:
  virtual ~AcceptGate() = default;
  virtual void set_accepting(bool accepting) = 0;
};

/// Worker-process mode (src/server, --workers): how this process shares the port with its
/// sibling workers and the supervisor. See docs/ARCHITECTURE.md "Processes" and FINDINGS 8.1.
///
/// Shared listener (listen_fd >= 0): the supervisor's listening socket, inherited,
/// non-blocking. The engine neither binds, shuts down nor closes it (the supervisor owns
/// it and stops listening at drain); every loop registers it (epoll: EPOLLEXCLUSIVE).
/// Pause at capacity: when the process holds `capacity` connections it stops accepting
/// (deregisters, so the kernel wakes a sibling instead), calls gate->set_accepting(false)
/// and then writes 1 to `kick_fd`; it resumes below `resume_below` (gate true, kick).
/// `kick_fd` is an eventfd shared by every worker and the supervisor and never read: an
/// engine that can (epoll) registers it edge-triggered and, on each kick, re-arms its
/// listener registration so that connections a pausing sibling left in the backlog wake an
/// accepting loop at once (a woken waiter that does not accept would otherwise strand
/// them until the next connect). The supervisor refuses connections (OVERLOADED) while no
/// worker accepts.
///
/// Own listeners (listen_fd < 0, config.reuseport): the engine binds its own SO_REUSEPORT
/// listener(s) on config.addr. The kernel hashes connections to listeners and cannot skip
/// a full one, so at `capacity` the engine keeps accepting and refuses (OVERLOADED) instead
/// of pausing.
struct WorkerListener {
  int listen_fd = -1;
  int kick_fd = -1;
  uint64_t capacity = 0;  // 0: no pause
  uint64_t resume_below = 0;
  AcceptGate* gate = nullptr;  // outlives the engine
};

class Engine {
 public:
  virtual ~Engine() = default;

  /// Worker-process mode: call once, before bind()/run(). Returns "" or why this engine
  /// cannot run as a worker (the default: not supported).
  virtual std::string adopt_worker_listener(const WorkerListener& /*listener*/) {
    return "this engine cannot run as a worker process (--workers)";
  }

  /// Binds the listening socket(s) now (so "address in use" is reported before run()).
  /// Returns an empty string on success, else a message naming the problem.
  virtual std::string bind() = 0;
  /// The port actually bound (useful with port 0). Valid after bind().
  virtual uint16_t port() const = 0;

  /// Serves until a drain completes (or forever). Blocks the calling thread.
  virtual DrainReport run() = 0;

  /// Starts the graceful drain. Async-signal-safe (e.g. writes to an eventfd); may be
  /// called from any thread, any number of times (later calls are no-ops).
  virtual void request_drain() = 0;

  /// Connections currently open (for tests and reports). Any thread.
  virtual uint64_t open_connections() const = 0;
};

/// `counters` must hold counter_slots_needed(kind, config) slots and outlive the engine;
/// nullptr: the engine keeps private counters. Throws std::runtime_error on a bad config
/// (e.g. an unreadable --fetch-file).
std::unique_ptr<Engine> make_engine(EngineKind kind, const core::ServerConfig& config,
                                    CounterSlots* counters);

/// Plain heap counter blocks (tests, and the server until shared memory is wired in).
std::unique_ptr<CounterSlots> make_heap_counter_slots(size_t count);

/// How many CounterSlots slots an engine writes (epoll, uring: one per loop; thread: one
/// shared).
size_t counter_slots_needed(EngineKind kind, const core::ServerConfig& config);
/// config.threads with 0 resolved to the number of cores.
int resolved_threads(const core::ServerConfig& config);
/// How many connections one process can hold with `kind`, given its fd limit and the fds
/// it already uses: epoll and thread take one fd each; uring keeps connections as direct
/// descriptors in each loop's ring, which holds up to the fd limit on its own.
uint64_t connection_capacity(EngineKind kind, const core::ServerConfig& config, uint64_t fd_limit,
                             uint64_t fds_in_use);

}  // namespace c10m::engine
