#pragma once
// Counters of a load run. `WorkerCounters` is written by one worker thread (single-writer
// relaxed counters, read live by the reporting thread); `Totals` is the plain sum that
// results carry, merge across threads and processes, and serialize.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "metrics/counters.h"

namespace c10m::loadclient {

/// Why a connect failed; each kind has a message naming the fix (connect_fail_hint).
enum class ConnectFail : uint8_t { kFdLimit, kPortsExhausted, kRefused, kTimeout, kOther, kCount };
constexpr size_t kConnectFailKinds = static_cast<size_t>(ConnectFail::kCount);
const char* connect_fail_name(ConnectFail kind);  // "emfile", "eaddrnotavail", ...
const char* connect_fail_hint(ConnectFail kind);  // "fd limit reached: use --procs", ...
ConnectFail classify_connect_errno(int err);      // err > 0

#define C10M_LOADCLIENT_COUNTERS(X)                                                        \
  X(conns_opened) /* connects that succeeded (reconnects included) */                      \
  X(conns_open)   /* gauge: open now (at the end: open when sending stopped) */            \
  X(reconnects)                                                                            \
  X(ops_sent)      /* requests sent, whole run */                                          \
  X(ops_done)      /* replies complete, whole run */                                       \
  X(sent_measured) /* requests whose intended time is in the measured window */            \
  X(done_measured) /* ... completed (these are in the histogram) */                        \
  X(late_sends)    /* measured sends that left > 1 ms after their intended time */         \
  X(mismatches)    /* replies that were not what the request asked for */                  \
  X(goaways)                                                                               \
  X(unexpected_closes) /* the server closed or reset a connection we did not close */      \
  X(unanswered)        /* requests lost with a closed connection */                        \
  X(incomplete_at_end) /* measured requests still unanswered when the grace ended */       \
  X(bytes_out)                                                                             \
  X(bytes_in)                                                                              \
  X(saturated_ticks) /* seconds a worker loop spent > 95% on CPU while sending */          \
  X(starved_ticks)   /* seconds a loop waited > 10% of the time in the run queue */        \
  X(cpu_ns)          /* worker threads' CPU time in the measured window */                 \
  X(run_delay_ns)    /* ... their run-queue wait (schedstat) in the measured window */     \
  X(schedstat_loops) /* loops whose run-queue wait could be read (0: not known) */         \
  X(early_sends)     /* measured sends that left before their intended time (slack) */     \
  X(send_lag_ns)     /* sum over measured sends of how late each left (0 if early) */      \
  X(frames_out)      /* request frames handed to write/writev (CHUNKs included) */         \
  X(frames_in)       /* reply frames read */                                               \
  X(write_calls)     /* writes on connections (syscalls, or ring operations) */            \
  X(read_calls)      /* reads on connections (syscalls, or ring operations) */             \
  X(wait_calls)      /* epoll_pwait2 syscalls (one per loop turn) */                       \
  X(enter_calls)     /* io_uring_enter syscalls (--io uring: reads or writes batched) */   \
  X(batched_ops)     /* reads and writes that went through a ring (in the two above) */    \
  X(partial_writes)  /* writes the kernel took only part of (rest queued) */               \
  X(payload_bytes)   /* payload of the measured requests completed (STREAM/FETCH total) */ \
  X(wire_out)        /* bytes written in the measured window */                            \
  X(wire_in)         /* bytes read in the measured window */                            \
  X(context_switches) /* the loop threads' context switches in the measured window */      \
  X(window_syscalls)  /* kernel entries on connections in the measured window */           \
  X(rings)            /* --io direct: io_uring instances the loops drive */                \
  X(recv_rearms)      /* --io direct: multishot receives armed again after they ended */   \
  X(recv_enobufs)     /* --io direct: ... of them because the buffer ring was empty */

struct WorkerCounters {
#define C10M_X(name) metrics::Counter name;
  C10M_LOADCLIENT_COUNTERS(C10M_X)
#undef C10M_X
  metrics::Counter connect_fail[kConnectFailKinds];
  metrics::Counter error_frames[8];  // ERROR frames received by code (7: any other code)
  // Nanoseconds from the run's start until this loop had tried every connection and none
  // was in progress (0: not yet). Totals keep the largest: the connect phase of the run.
  metrics::Counter connect_phase_ns;
};

struct Totals {
#define C10M_X(name) uint64_t name = 0;
  C10M_LOADCLIENT_COUNTERS(C10M_X)
#undef C10M_X
  uint64_t connect_fail[kConnectFailKinds] = {};
  uint64_t error_frames[8] = {};
  uint64_t connect_phase_ns = 0;  // the largest over loops and processes

  void add(const WorkerCounters& w);
  void add(const Totals& t);
  uint64_t connect_failures() const;
  uint64_t error_frame_count() const;
  /// Everything that is an error: connect failures, ERROR frames, unexpected closes,
  /// unanswered requests. (Mismatches are reported on their own.)
  uint64_t errors() const;
  nlohmann::json to_json() const;
  static Totals from_json(const nlohmann::json& j);  // throws on malformed input
};

}  // namespace c10m::loadclient
