#pragma once
// Prometheus text exposition format 0.0.4, written by hand (Debian packages no C++
// Prometheus client). Every metric is listed in docs/OBSERVABILITY.md.
//
// Cost: one scrape sums the counter blocks (O(slots)), reads a few /proc files per
// process and the allocator's figures; nothing in it grows with the number of
// connections. Any thread (the admin thread); never called from an event loop.
#include <cstddef>
#include <string>
#include <vector>

#include "metrics/allocator_stats.h"
#include "metrics/counter_source.h"
#include "metrics/counter_totals.h"
#include "metrics/process_stats.h"

namespace c10m::metrics {

inline constexpr const char* kExpositionContentType = "text/plain; version=0.0.4; charset=utf-8";

/// Everything one scrape reports.
struct Scrape {
  CounterTotals totals;
  size_t worker_processes = 1;
  /// One entry: unlabeled process_* series. Several (worker processes): one series per
  /// process with a pid="<pid>" label.
  std::vector<ProcessStats> processes;
  AllocatorStats allocator;
  /// Under a supervisor: one entry per worker (c10m_worker_* series); empty otherwise.
  std::vector<CounterSource::WorkerSample> workers;
  uint64_t worker_restarts = 0;
  /// Per counter block; rendered when there are several (event loops or workers).
  std::vector<CounterSource::LoopAccepts> loops;
};

/// Fills `out` from the source, /proc and the allocator.
void gather_scrape(const CounterSource& source, Scrape* out);

/// Appends the exposition of `scrape` to `out` (pure; unit-tested).
void render_prometheus(const Scrape& scrape, std::string* out);

/// gather_scrape + render_prometheus.
std::string render_metrics(const CounterSource& source);

/// Label values, by index (0 unused where the counters index by wire value).
const char* frame_type_label(size_t type_value);      // 1..6 -> "PING".."FETCH"
const char* error_code_label(size_t code_value);      // 1..6 -> "FRAME_TOO_LARGE".."OVERLOADED"
const char* accept_error_label(AcceptError e);        // "EMFILE" | "ENFILE" | "ENOMEM" | "other"
const char* timeout_kind_label(TimeoutKind k);        // "idle" | "frame" | "write"
const char* overload_action_label(OverloadAction a);  // "pause_read" ... "accept_rate"

}  // namespace c10m::metrics
