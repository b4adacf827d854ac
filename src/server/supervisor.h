#pragma once
// Supervisor (--workers N): one process above N worker processes, each with its own fd
// table running the chosen engine (docs/ARCHITECTURE.md "Processes" has the design,
// docs/FINDINGS.md 8.1 its evidence).
//
//  - Port: binds ONE listening socket before starting the workers, who inherit it and
//    all accept from it (epoll: EPOLLEXCLUSIVE in every loop). A worker at capacity
//    deregisters and the others keep accepting (engine.h WorkerListener); while NO worker
//    accepts, the supervisor registers the listener itself and refuses each connection
//    with ERROR OVERLOADED, so no connection waits in the backlog unanswered. With
//    --reuseport each worker binds its own SO_REUSEPORT listener instead (kernel hashing;
//    a full worker refuses).
//  - Workers: fork + exec of the same binary with a hidden --worker flag; they inherit the
//    listener, the worker board (server/worker_board.h), the counter region and the kick
//    eventfd. PR_SET_PDEATHSIG: they die with the supervisor.
//  - Restart: a worker that dies outside the drain is logged (exit status or signal),
//    counted (c10m_worker_restarts_total) and started again at once; more than
//    kMaxDeaths deaths within kDeathWindow is a crash loop: the supervisor kills the rest
//    and exits 1 with a message.
//  - Signals: the first SIGTERM/SIGINT stops listening (shutdown of the listener: pending
//    and new connects are refused), forwards SIGTERM to every worker, and when all have
//    exited prints ONE drain line summed over the workers' reports (same format as one
//    process) and exits 0; a second signal kills the workers and exits 1 at once.
//  - Metrics: one admin port (/metrics, /healthz, /debug/pprof/*) summing every worker's
//    counter blocks, with per-worker series (c10m_worker_conns_open{worker="i"}).
//  - Start-up: logs the capacity the workers computed from their fd limits
//    ("3 workers x ~19,964 = ~59,892 connections") before "listening on".
//
// Thread rule: run() on the main thread (the one that forks: PR_SET_PDEATHSIG follows the
// forking thread); the admin server has its own threads and only reads.
#include "base/clock.h"
#include "server/server_options.h"

namespace c10m::server {

inline constexpr int kMaxDeaths = 5;
inline constexpr Nanos kDeathWindow = 30 * kSecond;
inline constexpr Nanos kStartTimeout = 30 * kSecond;

/// --workers 0: ceil(--max-conns / per-worker capacity) when --max-conns is set (at least
/// 2), else one worker per core (at least 2).
int resolved_workers(const ServerOptions& options);

}  // namespace c10m::server
