#include "metrics/exposition.h"

#include <fmt/format.h>

#include <iterator>

#include "base/build_info.h"
#include "proto/frame.h"

namespace c10m::metrics {
namespace {

constexpr const char* kAcceptErrors[kAcceptErrorCount] = {"EMFILE", "ENFILE", "ENOMEM", "other"};
constexpr const char* kTimeoutKinds[kTimeoutKindCount] = {"idle", "frame", "write"};
constexpr const char* kOverloadActions[kOverloadActionCount] = {
    "pause_read", "shrink_queue", "stop_accept", "close_error", "close_reset", "accept_rate"};

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}

  void header(const char* name, const char* type, const char* help) {
    fmt::format_to(std::back_inserter(*out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                   type);
  }
  void sample(const char* name, uint64_t v) {
    fmt::format_to(std::back_inserter(*out_), "{} {}\n", name, v);
  }
  void sample(const char* name, double v) {
    fmt::format_to(std::back_inserter(*out_), "{} {}\n", name, v);
  }
  template <typename V>
  void labeled(const char* name, const char* label, const char* value, V v) {
    fmt::format_to(std::back_inserter(*out_), "{}{{{}=\"{}\"}} {}\n", name, label, value, v);
  }
  void counter(const char* name, const char* help, uint64_t v) {
    header(name, "counter", help);
    sample(name, v);
  }
  void gauge(const char* name, const char* help, uint64_t v) {
    header(name, "gauge", help);
    sample(name, v);
  }
  void raw(std::string_view s) { out_->append(s); }

 private:
  std::string* out_;
};

/// process_* for one or several processes (a pid label when several).
template <typename F>
void per_process(Writer& w, const Scrape& s, const char* name, const char* type, const char* help,
                 F value) {
  if (s.processes.empty()) return;
  w.header(name, type, help);
  if (s.processes.size() == 1) {
    w.sample(name, value(s.processes[0]));
    return;
  }
  for (const ProcessStats& p : s.processes) {
    const std::string pid = std::to_string(p.pid);
    w.labeled(name, "pid", pid.c_str(), value(p));
  }
}

}  // namespace

// The names are the protocol's own (proto/frame.h), so a new type or code has one home.
const char* frame_type_label(size_t v) {
  return v > 0 && v < kFrameTypeSlots ? proto::frame_type_name(static_cast<uint8_t>(v)) : "?";
}
const char* error_code_label(size_t v) {
  return v > 0 && v < kErrorCodeSlots ? proto::error_code_name(static_cast<proto::ErrorCode>(v))
                                      : "?";
}
const char* accept_error_label(AcceptError e) {
  const auto i = static_cast<size_t>(e);
  return i < kAcceptErrorCount ? kAcceptErrors[i] : "?";
}
const char* timeout_kind_label(TimeoutKind k) {
  const auto i = static_cast<size_t>(k);
  return i < kTimeoutKindCount ? kTimeoutKinds[i] : "?";
}
const char* overload_action_label(OverloadAction a) {
  const auto i = static_cast<size_t>(a);
  return i < kOverloadActionCount ? kOverloadActions[i] : "?";
}

void gather_scrape(const CounterSource& source, Scrape* out) {
  source.collect(&out->totals);
  out->worker_processes = source.worker_processes();
  out->workers = source.per_worker();
  out->worker_restarts = source.worker_restarts();
  out->loops = source.per_loop_accepts();
  out->processes.clear();
  for (pid_t pid : source.processes()) {
    ProcessStats ps;
    if (read_process_stats(pid, &ps)) out->processes.push_back(ps);
  }
  read_allocator_stats(&out->allocator);
}

void render_prometheus(const Scrape& s, std::string* out) {
  Writer w(out);
  const CounterTotals& t = s.totals;

  w.gauge("c10m_conns_open", "Connections open now (accepted and kept, not yet closed).",
          t.conns_open());
  w.counter("c10m_conns_opened_total", "Connections accepted and kept.", t.conns_opened);
  w.counter("c10m_conns_closed_total", "Connections closed, for any reason.", t.conns_closed);
  w.counter("c10m_accept_total", "Sockets accepted, including those refused by --max-conns.",
            t.accept_total);

  w.header("c10m_accept_errors_total", "counter", "accept() failures by errno class.");
  for (size_t i = 0; i < kAcceptErrorCount; ++i)
    w.labeled("c10m_accept_errors_total", "reason", kAcceptErrors[i], t.accept_errors[i]);

  w.counter("c10m_overloaded_total",
            "Connections refused with ERROR OVERLOADED (over --max-conns).", t.overloaded_total);
  w.counter("c10m_bytes_in_total", "Bytes read from client sockets.", t.bytes_in);
  w.counter("c10m_bytes_out_total", "Bytes handed to the kernel for client sockets.", t.bytes_out);

  w.header("c10m_frames_total", "counter", "Request frames fully received, by type.");
  for (size_t i = 1; i < kFrameTypeSlots; ++i)
    w.labeled("c10m_frames_total", "type", frame_type_label(i), t.frames[i]);

  w.header("c10m_frame_service_seconds", "histogram",
           "Time from a request fully received to its reply handed to the kernel.");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kServiceBucketCount; ++i) {
    cumulative += t.service_buckets[i];
    if (i + 1 < kServiceBucketCount) {
      fmt::format_to(std::back_inserter(*out),
                     "c10m_frame_service_seconds_bucket{{le=\"{}\"}} {}\n", kServiceBuckets[i],
                     cumulative);
    } else {
      fmt::format_to(std::back_inserter(*out),
                     "c10m_frame_service_seconds_bucket{{le=\"+Inf\"}} {}\n", cumulative);
    }
  }
  w.sample("c10m_frame_service_seconds_sum", static_cast<double>(t.service_sum_ns) * 1e-9);
  // _count equals the +Inf bucket by construction of the exposition (blocks are read
  // non-atomically, so service_count itself may lag the buckets by a request or two).
  w.sample("c10m_frame_service_seconds_count", cumulative);

  w.header("c10m_protocol_errors_total", "counter", "ERROR frames sent, by code.");
  for (size_t i = 1; i < kErrorCodeSlots; ++i)
    w.labeled("c10m_protocol_errors_total", "code", error_code_label(i), t.protocol_errors[i]);

  w.counter("c10m_truncated_frames_total", "Peer EOF inside a request frame.", t.truncated_frames);

  w.header("c10m_timeouts_total", "counter", "Connections closed by a timeout, by kind.");
  for (size_t i = 0; i < kTimeoutKindCount; ++i)
    w.labeled("c10m_timeouts_total", "kind", kTimeoutKinds[i], t.timeouts[i]);

  w.counter("c10m_write_queue_drops_total",
            "Connections closed because output waited longer than --write-timeout.",
            t.write_queue_drops);
  w.gauge("c10m_write_queue_bytes",
          "Reply bytes queued in the server, not yet taken by the kernel.", t.write_queue_bytes());
  w.counter("c10m_drain_forced_total", "Connections force-closed at the drain deadline.",
            t.drain_forced);
  w.counter("c10m_sendfile_bytes_total",
            "FETCH body bytes handed to the kernel with sendfile (--fetch-send sendfile).",
            t.sendfile_bytes);
  w.counter("c10m_zerocopy_sends_total",
            "sendmsg(MSG_ZEROCOPY) calls the kernel accepted (--fetch-send zerocopy).",
            t.zerocopy_sends);
  w.counter("c10m_zerocopy_completed_total",
            "MSG_ZEROCOPY sends whose completion was read from the socket error queue.",
            t.zerocopy_completed);
  w.counter("c10m_zerocopy_copied_total",
            "MSG_ZEROCOPY sends the kernel copied after all (SO_EE_CODE_ZEROCOPY_COPIED: "
            "loopback and other local delivery).",
            t.zerocopy_copied);
  w.counter("c10m_ingest_discarded_bytes_total",
            "SINK/CHUNK payload bytes dropped in the kernel without a copy (--ingest trunc).",
            t.discarded_bytes);
  if (t.allocation_hook != AllocationHook::kNone) {
    // Counted by the allocator's own hook (metrics/allocation_counter.h); absent when the
    // allocator has none (glibc malloc).
    w.header("c10m_allocations_total", "counter",
             "Heap allocations made by the server processes (every malloc, calloc, realloc, "
             "operator new), counted by the allocator hook named in the label.");
    w.labeled("c10m_allocations_total", "hook", allocation_hook_name(t.allocation_hook),
              t.allocations);
    w.header("c10m_allocation_bytes_total", "counter",
             "Bytes requested by those heap allocations.");
    w.labeled("c10m_allocation_bytes_total", "hook", allocation_hook_name(t.allocation_hook),
              t.allocation_bytes);
  }

  w.gauge("c10m_memory_budget_bytes",
          "Memory budget in use: bytes of pooled blocks connections hold (queued output, held "
          "input, partial frames).",
          t.memory_budget_bytes());
  w.gauge("c10m_memory_budget_limit_bytes",
          "The memory budget (--memory-limit; with workers, the sum of their shares; 0 = none).",
          t.live_memory_budget_limit);
  w.header("c10m_overload_actions_total", "counter",
           "Actions taken as the memory budget filled, by action (docs/PROTOCOL.md).");
  for (size_t i = 0; i < kOverloadActionCount; ++i)
    w.labeled("c10m_overload_actions_total", "action", kOverloadActions[i], t.overload_actions[i]);

  uint64_t threads = 0;
  for (const ProcessStats& p : s.processes) threads += p.threads;
  w.gauge("c10m_threads",
          "OS threads of the reported processes (/proc/PID/stat), all kinds: loops, admin, "
          "connection threads.",
          threads);
  w.gauge("c10m_worker_processes", "Live worker processes whose counters are summed here.",
          s.worker_processes);
  if (!s.workers.empty()) {
    // Per worker (--workers): imbalance is visible; the totals above are their sums (plus
    // the supervisor's own refusals in the accept and overload counters).
    w.header("c10m_worker_conns_open", "gauge",
             "Connections open now in each worker process (c10m_conns_open per worker).");
    for (size_t i = 0; i < s.workers.size(); ++i)
      w.labeled("c10m_worker_conns_open", "worker", std::to_string(i).c_str(),
                s.workers[i].conns_open);
    w.header("c10m_worker_accept_total", "counter", "Sockets accepted by each worker process.");
    for (size_t i = 0; i < s.workers.size(); ++i)
      w.labeled("c10m_worker_accept_total", "worker", std::to_string(i).c_str(),
                s.workers[i].accept_total);
    w.counter("c10m_worker_restarts_total",
              "Worker processes the supervisor started again after they died.", s.worker_restarts);
  }
  if (s.loops.size() > 1) {
    w.header("c10m_loop_accept_total", "counter",
             "Sockets accepted by each event loop (counter block) of each worker process.");
    for (const CounterSource::LoopAccepts& l : s.loops)
      fmt::format_to(std::back_inserter(*out),
                     "c10m_loop_accept_total{{worker=\"{}\",loop=\"{}\"}} {}\n", l.worker, l.loop,
                     l.accept_total);
  }

  w.header("c10m_build_info", "gauge", "Build stamp; always 1.");
  fmt::format_to(std::back_inserter(*out), "c10m_build_info{{version=\"{}\",git=\"{}\"}} 1\n",
                 version_string(), git_commit());

  // Allocator instead of GC (C++ has no collector): see docs/OBSERVABILITY.md.
  w.header("c10m_allocator_info", "gauge", "The allocator in use (label); always 1.");
  w.labeled("c10m_allocator_info", "allocator", s.allocator.allocator, 1);
  w.gauge("c10m_allocator_bytes_in_use",
          "Heap bytes allocated and not freed (glibc mallinfo2 uordblks+hblkhd, tcmalloc "
          "generic.current_allocated_bytes, or the sanitizer allocator) of the process serving "
          "/metrics.",
          s.allocator.bytes_in_use);
  if (s.allocator.has_tcmalloc) {
    const TcmallocStats& m = s.allocator.tcmalloc;
    w.gauge("c10m_tcmalloc_allocated_bytes", "tcmalloc generic.current_allocated_bytes.",
            m.current_allocated_bytes);
    w.gauge("c10m_tcmalloc_heap_size_bytes", "tcmalloc generic.heap_size (bytes reserved).",
            m.heap_size);
    w.gauge("c10m_tcmalloc_pageheap_free_bytes", "tcmalloc tcmalloc.pageheap_free_bytes.",
            m.pageheap_free_bytes);
    w.gauge("c10m_tcmalloc_pageheap_unmapped_bytes", "tcmalloc tcmalloc.pageheap_unmapped_bytes.",
            m.pageheap_unmapped_bytes);
    w.gauge("c10m_tcmalloc_thread_cache_bytes",
            "tcmalloc tcmalloc.current_total_thread_cache_bytes.", m.thread_cache_bytes);
    w.gauge("c10m_tcmalloc_central_cache_free_bytes", "tcmalloc tcmalloc.central_cache_free_bytes.",
            m.central_cache_free_bytes);
    w.gauge("c10m_tcmalloc_transfer_cache_free_bytes",
            "tcmalloc tcmalloc.transfer_cache_free_bytes.", m.transfer_cache_free_bytes);
  }

  per_process(w, s, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
              [](const ProcessStats& p) { return p.resident_bytes; });
  per_process(w, s, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
              [](const ProcessStats& p) { return p.virtual_bytes; });
  per_process(w, s, "process_cpu_seconds_total", "counter",
              "Total user and system CPU time spent in seconds.",
              [](const ProcessStats& p) { return p.cpu_seconds; });
  per_process(w, s, "process_open_fds", "gauge", "Number of open file descriptors.",
              [](const ProcessStats& p) { return p.open_fds; });
  per_process(w, s, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
              [](const ProcessStats& p) { return p.max_fds; });
  per_process(w, s, "process_start_time_seconds", "gauge",
              "Start time of the process since unix epoch in seconds.",
              [](const ProcessStats& p) { return p.start_time_seconds; });
}

std::string render_metrics(const CounterSource& source) {
  Scrape s;
  gather_scrape(source, &s);
  std::string out;
  out.reserve(8192);
  render_prometheus(s, &out);
  return out;
}

}  // namespace c10m::metrics
