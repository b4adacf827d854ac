#pragma once
// Session: the whole per-connection protocol of docs/PROTOCOL.md, engine-agnostic and
// socket-free. An engine feeds it bytes, EOF and time; it answers with bytes to write and
// a verdict. Written once, unit-tested without sockets, shared by every engine.
//
// Thread rule: a Session is used by exactly one thread (its loop or its connection thread).
// Memory: an idle session (no partial frame, nothing queued) owns no buffer; buffers come
// from the thread's BufferPool when needed and go back as soon as they are empty.
// Bounds: queued output stays under limits.write_queue (plus at most one reply frame);
// held input under one engine read (SessionEnv::read_chunk) plus one partial frame.
//
// Engine contract:
//  1. on_bytes(in): call only while wants_read(). All of `in` is consumed (what cannot be
//     processed yet is kept inside, e.g. behind an unfinished FETCH or a full write queue).
//  2. After any call, if has_output(): gather() and write; report with on_sent(n).
//     on_sent may produce more output (FETCH pieces, held requests) and may make
//     wants_read() true again.
//  3. on_peer_eof() when read() returns 0.
//  4. on_tick(now) no later than next_deadline() (kNever: no timer needed).
//  5. begin_drain() once when the server starts draining (queues GOAWAY);
//     force_close() at the drain deadline.
//  6. After any call, if finished(): close the socket (reset_on_close(): with RST).
//  Every call takes `now` (monotonic ns) from the engine; the session never reads a clock.
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/buffer_pool.h"
#include "base/clock.h"
#include "base/noncopyable.h"
#include "core/content_source.h"
#include "core/server_config.h"
#include "metrics/counters.h"
#include "proto/frame.h"

namespace c10m::core {

/// What a thread shares among its sessions. Outlives them all.
struct SessionEnv {
  SessionLimits limits;
  const ContentSource* content = nullptr;
  BufferPool* pool = nullptr;                  // blocks of kSessionBlockSize bytes
  metrics::ThreadCounters* counters = nullptr;  // this thread's counters
  size_t read_chunk = 64 * 1024;               // the most bytes one on_bytes call passes
};

/// Size of the pooled blocks sessions use for input and output (engines create the pool
/// with it). Holds one maximal frame (3 + 65535) with room to spare.
constexpr size_t kSessionBlockSize = 128 * 1024;

/// Why a session finished; engines count and report these (drain report).
enum class CloseCause : uint8_t {
  kNone,            // not finished
  kPeerClosed,      // peer EOF, all owed replies written
  kProtocolError,   // ERROR sent (bad frame, truncated frame counts as protocol error too)
  kTimeout,         // idle or frame timeout (ERROR TIMEOUT sent)
  kWriteTimeout,    // output waited longer than write_timeout (no ERROR; RST)
  kForced,          // drain deadline
  kOverloaded,      // refused by --max-conns
};

class Session : NonCopyable {
 public:
  Session(const SessionEnv& env, Nanos now);
  ~Session();  // returns any held buffers to env.pool

  // --- input ---
  bool wants_read() const;
  void on_bytes(std::span<const uint8_t> in, Nanos now);
  void on_peer_eof(Nanos now);

  // --- output ---
  bool has_output() const;
  size_t queued_bytes() const;
  /// Fills up to `max` iovecs describing the unsent bytes in order; returns the count.
  int gather(iovec* iov, int max) const;
  /// The kernel accepted `n` bytes from the front of what gather() described.
  void on_sent(size_t n, Nanos now);

  // --- time ---
  Nanos next_deadline() const;
  void on_tick(Nanos now);

  // --- drain / admission ---
  void begin_drain(Nanos now);
  void force_close(Nanos now);
  /// Queue ERROR OVERLOADED and finish after it is written (called right after accept).
  void refuse_overloaded(Nanos now);

  // --- end of life ---
  bool finished() const;
  CloseCause close_cause() const;
  bool reset_on_close() const;  // true for the write-timeout drop
  /// True when bytes of a request frame have been received but not the whole frame.
  bool request_in_flight() const;

 private:
  // (members: defined by the implementation; keep sizeof(Session) small: it is the
  //  per-connection cost of an idle connection together with the engine's own state)
};

}  // namespace c10m::core
