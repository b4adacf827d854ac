#pragma once
// A worker process (--workers): started by the supervisor (fork + exec of the same binary
// with the hidden --worker flag), it maps the worker board and the counter region it
// inherited, attaches its counter slots, computes its capacity from its own fd limit (uring:
// --threads x the direct-descriptor table, which that limit sizes),
// runs the engine on the inherited listener (or its own SO_REUSEPORT listener), and on
// SIGTERM drains and leaves its drain report on the board. SIGINT is ignored: the
// supervisor forwards one SIGTERM (a terminal's Ctrl-C reaches the whole process group).
#include <cstdint>

#include "core/server_config.h"
#include "engine/engine.h"

namespace c10m::server {

/// fds a worker keeps free beyond its capacity: the epoll fds, a refusal's socket, /proc
/// reads, and the connections several loops may accept at once just past capacity.
inline constexpr uint64_t kWorkerFdReserve = 32;

/// The worker's own config: --threads 0 means one loop per worker (the workers are the
/// parallelism), and --max-conns is split among the workers (worker i gets M/N, plus one
/// for i < M mod N).
core::ServerConfig worker_config(const core::ServerConfig& config, int index, int count);

/// Resume accepting this many connections below capacity (no flapping at the edge).
uint64_t resume_hysteresis(uint64_t capacity);

}  // namespace c10m::server
