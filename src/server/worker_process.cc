#include "server/worker_process.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <thread>

#include "admin/admin_server.h"
#include "base/log.h"
#include "metrics/shm_counter_region.h"
#include "server/server_options.h"
#include "server/worker_board.h"
#include "sys/socket.h"

namespace c10m::server {
namespace {

std::atomic<engine::Engine*> g_worker_engine{nullptr};

void worker_signal_thread() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  int count = 0;
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (++count == 1) {
      if (auto* e = g_worker_engine.load()) e->request_drain();
    } else {
      _exit(1);
    }
  }
}

// The engine's view of the board: whether this worker takes new connections.
class BoardGate final : public engine::AcceptGate {
 public:
  explicit BoardGate(BoardSlot* slot) : slot_(slot) {}
  void set_accepting(bool accepting) override { slot_->accepting.store(accepting ? 1 : 0); }

 private:
  BoardSlot* slot_;
};

}  // namespace

core::ServerConfig worker_config(const core::ServerConfig& config, int index, int count) {
  core::ServerConfig c = config;
  if (c.threads == 0) c.threads = 1;
  if (c.max_conns != 0 && count > 0) {
    const auto n = static_cast<uint64_t>(count);
    const auto i = static_cast<uint64_t>(index);
    c.max_conns = config.max_conns / n + (i < config.max_conns % n ? 1 : 0);
    if (c.max_conns == 0) c.max_conns = 1;  // more workers than --max-conns: one each
  }
  if (count > 0) c.accept_rate = config.accept_rate / count;
  return c;
}

uint64_t resume_hysteresis(uint64_t capacity) {
  uint64_t h = capacity / 100;
  if (h < 1) h = 1;
  if (h > 256) h = 256;
  return h;
}

int run_worker(const ServerOptions& o) {
  const WorkerHandoff& h = o.handoff;
  std::string error;
  auto board = WorkerBoard::open(h.board_fd, static_cast<size_t>(h.count), &error);
  if (!board) {
    fmt::print(stderr, "c10m-server worker {}: {}\n", h.index, error);
    return 1;
  }
  auto region = metrics::ShmCounterRegion::open_fd(h.region_fd, &error);
  if (!region) {
    fmt::print(stderr, "c10m-server worker {}: counter region: {}\n", h.index, error);
    return 1;
  }
  BoardSlot& slot = board->slot(static_cast<size_t>(h.index));
  metrics::CounterSlots* counters = region->attach_worker(static_cast<size_t>(h.index));

  core::ServerConfig cfg = worker_config(o.config, h.index, h.count);
  if (h.listen_fd < 0)
    cfg.addr = cfg.addr.substr(0, cfg.addr.rfind(':')) + ":" + std::to_string(h.port);
  std::unique_ptr<engine::Engine> eng;
  try {
    eng = engine::make_engine(o.kind, cfg, counters);
  } catch (const std::exception& e) {
    fmt::print(stderr, "c10m-server worker {}: {}\n", h.index, e.what());
    return 2;
  }
  const uint64_t fd_limit = sys::raise_fd_limit();
  uint64_t capacity = 0;
  if (o.kind == engine::EngineKind::kUring) {
    // Connections are direct descriptors, not fds: each loop's table (sized by the fd
    // limit) bounds them, and the engine never accepts into a full one.
    capacity = engine::connection_capacity(o.kind, cfg, fd_limit, 0);
  } else {
    const uint64_t loops = o.kind == engine::EngineKind::kEpoll
                               ? static_cast<uint64_t>(engine::resolved_threads(cfg))
                               : 0;
    const uint64_t used = sys::count_open_fds() + loops + kWorkerFdReserve;
    capacity = fd_limit > used ? fd_limit - used : 1;
  }
  if (cfg.max_conns != 0 && cfg.max_conns < capacity) capacity = cfg.max_conns;
  BoardGate gate(&slot);
  engine::WorkerListener wl;
  wl.listen_fd = h.listen_fd;
  wl.kick_fd = h.kick_fd;
  wl.capacity = capacity;
  wl.resume_below = capacity - resume_hysteresis(capacity) + 1;
  if (wl.resume_below > capacity) wl.resume_below = capacity;
  wl.gate = &gate;
  if (std::string err = eng->adopt_worker_listener(wl); !err.empty()) {
    fmt::print(stderr, "c10m-server worker {}: {}\n", h.index, err);
    return 1;
  }
  if (std::string err = eng->bind(); !err.empty()) {
    fmt::print(stderr, "c10m-server worker {}: {}\n", h.index, err);
    return 1;
  }

  // Profiles of this worker (/debug/pprof/*?worker=I on the supervisor's admin port) come
  // from its own admin server on a loopback port the board publishes.
  std::unique_ptr<admin::AdminServer> admin;
  if (o.metrics_addr != "off" && !o.metrics_addr.empty()) {
    admin = std::make_unique<admin::AdminServer>(admin::AdminConfig{"127.0.0.1:0"}, region.get());
    if (std::string err = admin->start(); !err.empty()) {
      log_warn("worker {}: no profiles: {}", h.index, err);
      admin.reset();
    } else {
      slot.admin_port.store(admin->port());
    }
  }

  g_worker_engine.store(eng.get());
  std::thread(worker_signal_thread).detach();
  slot.capacity.store(capacity);
  slot.fd_limit.store(fd_limit);
  slot.accepting.store(1);
  slot.pid.store(static_cast<int32_t>(::getpid()));
  slot.state.store(static_cast<uint32_t>(WorkerState::kReady));
  // Tell the supervisor (and the siblings) that one more worker accepts.
  const uint64_t one = 1;
  ssize_t rc = ::write(h.kick_fd, &one, sizeof one);
  (void)rc;

  const engine::DrainReport r = eng->run();
  slot.store_drain(r);
  g_worker_engine.store(nullptr);
  return 0;
}

}  // namespace c10m::server
