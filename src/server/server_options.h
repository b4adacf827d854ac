#pragma once
// What apps/c10m_server.cc hands the server library after parsing the command line, and
// the three ways to run: one process (run_single), a supervisor with worker processes
// (run_supervisor, --workers), or one of those workers (run_worker, started by the
// supervisor with the hidden --worker flag). Each returns the process exit code.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/server_config.h"
#include "engine/engine.h"

namespace c10m::server {

/// What a supervisor passes to the worker it starts (hidden --worker flag): its index,
/// the worker count, the inherited fds and the port. Formatted as "i,n,listen,kick,board,
/// region,port" (listen -1: the worker binds its own SO_REUSEPORT listener on `port`).
struct WorkerHandoff {
  int index = -1;
  int count = 0;
  int listen_fd = -1;
  int kick_fd = -1;
  int board_fd = -1;
  int region_fd = -1;
  uint16_t port = 0;

  std::string format() const;
  static std::optional<WorkerHandoff> parse(const std::string& text);
};

struct ServerOptions {
  core::ServerConfig config;
  engine::EngineKind kind = engine::EngineKind::kEpoll;
  std::string engine_why;           // how --engine auto chose `kind` ("" when named)
  std::string metrics_addr;         // "off" or "" = no admin port
  bool metrics_addr_given = false;  // given on the command line (else a taken default warns)
  int workers = 1;                  // 1 = one process; 0 = automatic; >= 2 = supervisor
  std::vector<std::string> argv;    // the command line as given (workers re-execute it)
  WorkerHandoff handoff;            // index >= 0: this process is a worker
};

/// One process serving everything (the default): admin port, engine, signal thread.
int run_single(const ServerOptions& options);
/// A supervisor and options.workers worker processes (see supervisor.h).
int run_supervisor(const ServerOptions& options);
/// One worker process (see worker_process.h).
int run_worker(const ServerOptions& options);

/// "19,988".
std::string thousands(uint64_t v);

}  // namespace c10m::server
