#pragma once
// Results of a load run: the per-second series, the per-process and merged results, and
// their three renderings (final table on stdout, JSON file, --hgrm text).
// Single-threaded: built by the reporting thread of the top-level process.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "base/clock.h"
#include "loadclient/hdr_histogram.h"
#include "loadclient/load_config.h"
#include "loadclient/load_stats.h"

namespace c10m::loadclient {

struct SeriesPoint {
  int t = 0;  // seconds since the run's start
  uint64_t conns_open = 0;
  uint64_t sent = 0;        // in this second
  uint64_t completed = 0;   // in this second
  uint64_t errors = 0;      // in this second
  uint64_t mismatches = 0;  // in this second
  int64_t p50_ns = 0;       // of replies completed in this second (warm-up included)
  int64_t p99_ns = 0;
  int64_t p99_so_far_ns = 0;
};

/// Turns (cumulative totals, latency samples of the last second) into series points.
class SeriesBuilder {
 public:
  SeriesPoint add(int t, const Totals& cumulative, const HdrHistogram& interval);
  const std::vector<SeriesPoint>& points() const { return points_; }

 private:
  Totals prev_;
  HdrHistogram so_far_;
  std::vector<SeriesPoint> points_;
};

/// One process's result (the only one without --procs).
struct ProcessResult {
  int index = 0;
  int pid = 0;
  uint64_t conns_target = 0;
  uint64_t active_target = 0;
  Totals totals;
  HdrHistogram histogram;  // measured window only
  std::string connect_errors;
  uint64_t rss_before_bytes = 0;  // this process's VmRSS before its loops were made
  uint64_t rss_end_bytes = 0;     // ... as the measured window ended
  nlohmann::json to_json() const;
  static bool from_json(const nlohmann::json& j, ProcessResult* out, std::string* error);
};

/// /proc/PID/stat CPU (user+system) and /proc/PID/status VmRSS.
struct ProcSample {
  bool ok = false;
  double cpu_s = 0;
  uint64_t rss_bytes = 0;
};
ProcSample sample_process(int pid);
/// This process and its waited-for children (getrusage), CPU seconds.
double self_cpu_seconds();

struct RunReport {
  LoadConfig config;
  std::vector<ProcessResult> processes;
  Totals totals;           // merged
  HdrHistogram histogram;  // merged, measured window
  std::vector<SeriesPoint> series;
  double measured_s = 0;                             // length of the measured window actually run
  ProcSample server_base, server_start, server_end;  // before connecting, window start, window end
  std::vector<std::string> warnings;

  void merge_processes();  // totals + histogram from processes
  /// Open model only: more than 1% of the measured sends left > 1 ms late, or a loop spent
  /// a second CPU-saturated or starved by the scheduler while it had sends scheduled, or
  /// the loops waited more than 10% of the window in the run queue.
  bool client_behind() const;
  /// Why the client fell behind ("busy loop", "starved by the scheduler", both, or
  /// "short stalls"), or "" when it did not.
  std::string behind_cause() const;
  /// Shares of the measured window (per loop, averaged): CPU used, and time spent waiting
  /// in the run queue (-1 when the kernel gives no schedstat).
  double loop_cpu_share() const;
  double loop_wait_share() const;
  double target_rate() const;  // requests/s over all active connections (open model)
  nlohmann::json to_json() const;
  std::string table() const;
  std::string hgrm() const { return histogram.percentile_distribution(); }
  /// Fills `warnings` (client behind, connect failures with their fixes, mismatches...).
  void compute_warnings();
};

}  // namespace c10m::loadclient
