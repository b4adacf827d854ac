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
// A partial frame costs memory in proportion to the frame, so that many slow peers
// (slowloris) pin little: the first 14 bytes or fewer of a frame (a partial header, a
// partial STREAM/FETCH, the start of any frame) stay inline in the Session, no block; a
// partial frame of at most kSessionSmallFrame bytes (header included) is held in one small
// block (SessionEnv::small_pool); only a partial frame larger than that (ECHO up to
// max-frame), or input held behind backpressure or a FETCH, takes kSessionBlockSize
// blocks. The frame timeout bounds how long any partial frame is held.
//
// Engine contract:
//  1. on_bytes(in): call only while wants_read(). All of `in` is consumed (what cannot be
//     processed yet is kept inside, e.g. behind an unfinished FETCH or a full write queue).
//  2. After any call, if has_output(): gather() and write; report with on_sent(n).
//     on_sent may produce more output (FETCH pieces, held requests) and may make
//     wants_read() true again. An engine that can send file ranges uses gather_output()
//     with files=true instead: it writes the iovecs (with MSG_MORE when a file range
//     follows them), else the file range (sendfile), and reports either with on_sent(n).
//     Iovecs may point into the content source (FetchBody::kReference/kFile): that memory
//     is valid and unchanged for the engine's lifetime; the rest is valid until on_sent().
//  2b. Ingest in the kernel (env.ingest_trunc): before a read, if discard_pending() > 0
//     the engine may drop up to that many bytes in the kernel (recv MSG_TRUNC) and report
//     them with on_discarded(n) instead of reading them; else it reads at most
//     read_hint() bytes when that is non-zero (just the next header, so that a large
//     payload after it can be discarded instead of copied).
//     Whatever gather()/gather_output() described stays where it is, unchanged, until
//     on_sent() reports it or the Session is destroyed, even if it finishes first (a write
//     timeout, a shed): an engine whose writes complete later (io_uring) relies on it.
//  3. on_peer_eof() when read() returns 0.
//  4. on_tick(now) no later than next_deadline() (kNever: no timer needed). If
//     input_timeout_due(now), first read what the socket already holds and pass it to
//     on_bytes(): a timeout never blames the peer for the server's own delay.
//  5. begin_drain() once when the server starts draining (queues GOAWAY);
//     force_close() at the drain deadline.
//  6. After any call, if finished(): close the socket (reset_on_close(): with RST).
//  Every call takes `now` (monotonic ns) from the engine; the session never reads a clock.
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

#include "base/buffer_pool.h"
#include "base/clock.h"
#include "base/noncopyable.h"
#include "core/content_source.h"
#include "core/memory_budget.h"
#include "core/server_config.h"
#include "metrics/counters.h"
#include "proto/frame.h"

namespace c10m::core {

/// How FETCH DATA bodies are queued. Engines pick it from ServerConfig::fetch_send and
/// what they can send; every choice produces the same bytes on the wire.
enum class FetchBody : uint8_t {
  kCopy,       // copied from the content into pooled blocks (two copies on the send side)
  kReference,  // queued as references into the content's immutable memory: gather() hands
               // out iovecs pointing at it (the kernel's copy is the only one)
  kFile,       // as kReference, and bodies from a file source are marked so that
               // gather_output(files=true) hands them out as file ranges (sendfile)
};

/// What a thread shares among its sessions. Outlives them all.
struct SessionEnv {
  SessionLimits limits;
  const ContentSource* content = nullptr;  // nullptr: the protocol's pattern
  FetchBody fetch_body = FetchBody::kCopy;
  /// A FETCH whose chunk is smaller than this is copied whatever fetch_body says (two
  /// iovecs per tiny frame cost more than copying it). References are also used only when
  /// every body is at most two runs of the content (a file at least one chunk long).
  size_t ref_min_chunk = 16 * 1024;
  /// Ingest: offer SINK/CHUNK payloads of at least trunc_min bytes for discarding in the
  /// kernel (read_hint(), discard_pending(), on_discarded()).
  bool ingest_trunc = false;
  size_t trunc_min = 4096;
  BufferPool* pool = nullptr;                   // blocks of kSessionBlockSize bytes
  BufferPool* small_pool = nullptr;             // blocks of kSessionSmallBlockSize bytes for
                                                // short partial frames; nullptr: use `pool`
  metrics::ThreadCounters* counters = nullptr;  // this thread's counters
  size_t read_chunk = 64 * 1024;                // the most bytes one on_bytes call passes
  BudgetAccount* account = nullptr;  // this thread's memory budget account; nullptr: none
};

/// The write queue a connection gets under memory pressure (Pressure::kPause and up):
/// an eighth of --write-queue, at least 16 KiB (or the queue itself when smaller); 32 KiB
/// when the queue is unbounded.
size_t pressure_queue(size_t write_queue);

/// Size of the pooled blocks sessions use for input and output (engines create the pool
/// with it). Holds one maximal frame (3 + 65535) with room to spare.
constexpr size_t kSessionBlockSize = 128 * 1024;

/// The most FETCH DATA frames one call queues (bounds the work of one on_sent() whatever
/// the chunk size; bytes are bounded by the write queue).
constexpr size_t kProduceFrames = 1024;

/// A partial frame of at most this many bytes (header included) is held in a small block.
constexpr size_t kSessionSmallFrame = 4 * 1024;
/// Size of the small pooled blocks (engines create `small_pool` with it): one frame of
/// kSessionSmallFrame bytes plus the block's bookkeeping.
constexpr size_t kSessionSmallBlockSize = 5 * 1024;

/// Why a session finished; engines count and report these (drain report).
enum class CloseCause : uint8_t {
  kNone,           // not finished
  kPeerClosed,     // peer EOF, all owed replies written
  kProtocolError,  // ERROR sent (bad frame, truncated frame counts as protocol error too)
  kTimeout,        // idle or frame timeout (ERROR TIMEOUT sent)
  kWriteTimeout,   // output waited longer than write_timeout (no ERROR; RST)
  kForced,         // drain deadline
  kOverloaded,     // refused by --max-conns, or shed with ERROR OVERLOADED (memory budget)
  kShed,           // shed by the memory budget with output queued: dropped, RST
};

class Session : NonCopyable {
 public:
  Session(const SessionEnv& env, Nanos now);
  ~Session();  // returns any held buffers to env.pool / env.small_pool

  // --- input ---
  bool wants_read() const;
  void on_bytes(std::span<const uint8_t> in, Nanos now);
  void on_peer_eof(Nanos now);
  /// Payload bytes of the SINK/CHUNK being received that the engine may drop in the kernel
  /// instead of reading (0: none; only while wants_read() and nothing is held).
  size_t discard_pending() const;
  /// The engine dropped `n` <= discard_pending() bytes of the connection in the kernel.
  void on_discarded(size_t n, Nanos now);
  /// The most bytes the next read should take (0: no limit; see engine contract 2b).
  size_t read_hint() const;
  /// The fewest received bytes worth a wakeup: while the session wants to read and holds
  /// nothing but the start of one frame, the bytes that frame still misses; otherwise 1.
  /// An engine may set the socket's receive low-water mark (SO_RCVLOWAT) to it, capped, so
  /// that a peer trickling a frame does not wake it per segment. The frame timeout still
  /// bounds that frame: contract 4 reads what is waiting, below the mark too.
  size_t read_lowat() const;

  // --- output ---
  bool has_output() const;
  size_t queued_bytes() const;
  /// Fills up to `max` iovecs describing the unsent bytes in order; returns the count.
  int gather(iovec* iov, int max) const;
  /// What gather_output() found.
  struct OutputView {
    int iovcnt = 0;            // iovecs filled, in output order
    size_t bytes = 0;          // their total
    bool immutable = true;     // every iovec points into the content source or a static table
                               // (never rewritten or freed while the engine runs)
    int file_fd = -1;          // >= 0: after the iovecs the output continues with file_length
    uint64_t file_offset = 0;  // bytes of this file at file_offset (only with files=true)
    size_t file_length = 0;
  };
  /// Like gather(); with `files`, gathering stops at the first body that comes from a file
  /// (FetchBody::kFile) and describes it as a file range instead.
  OutputView gather_output(iovec* iov, int max, bool files) const;
  /// The kernel accepted `n` bytes from the front of what gather() described.
  void on_sent(size_t n, Nanos now);

  // --- time ---
  Nanos next_deadline() const;
  void on_tick(Nanos now);
  /// True when on_tick(now) would close the connection for the idle or frame timeout.
  bool input_timeout_due(Nanos now) const;

  // --- drain / admission ---
  void begin_drain(Nanos now);
  void force_close(Nanos now);
  /// Queue ERROR OVERLOADED and finish after it is written (called right after accept).
  void refuse_overloaded(Nanos now);

  // --- memory budget (core/memory_budget.h) ---
  /// Bytes of pooled blocks this session holds (output, held input, partial frame).
  size_t memory_held() const;
  /// The order in which an engine sheds (larger first): the memory held, then the bytes
  /// queued. A connection whose one reply block is still being sent ties on the first
  /// with a peer that leaves a block unread, and loses on the second.
  std::pair<size_t, size_t> shed_rank() const { return {memory_held(), out_bytes_}; }
  /// Closes the connection to give its memory back (the budget is past its limit): with
  /// nothing queued, ERROR OVERLOADED is queued (the engine writes it, then closes);
  /// otherwise everything is dropped and the engine closes with RST. Counted in
  /// overload_actions (close_error / close_reset).
  void shed(Nanos now);
  /// Counts pause_read once per episode when the budget's pressure now holds this
  /// connection back. Called by the session itself after it reads or sends; an engine
  /// whose connection can sit blocked (the thread engine's write slices) calls it on each
  /// wakeup after BudgetAccount::refresh().
  void note_pressure();

  // --- end of life ---
  bool finished() const;
  CloseCause close_cause() const;
  bool reset_on_close() const;  // true for the write-timeout drop and a shed with output
  /// True when bytes of a request frame have been received but not the whole frame.
  bool request_in_flight() const;

 private:
  struct Block;
  /// A FIFO of pooled blocks (singly linked through the blocks themselves).
  struct Chain {
    Block* head = nullptr;
    Block* tail = nullptr;
    bool empty() const { return head == nullptr; }
  };
  enum class Input : uint8_t {
    kOpen,    // reading from the peer
    kEof,     // peer shut down its side: answer what was received in full, then close
    kForced,  // drain deadline: same as kEof, without counting a truncated frame
    kDead,    // ERROR queued (or refused): nothing more is examined
  };

  // parsing and requests
  size_t parse(const uint8_t* p, size_t n, Nanos rx, Nanos now);
  bool examine_header(proto::FrameHeader h, Nanos now);
  void finish_discard(Nanos rx, Nanos now);
  void handle_stream(const uint8_t* payload, Nanos rx, Nanos now);
  void handle_fetch(const uint8_t* payload, Nanos rx, Nanos now);
  void produce(Nanos now);
  void drain_held(Nanos now);
  void drop_partial();
  size_t held_need() const;
  bool held_ends_mid_frame() const;
  bool holds_input() const { return part_len_ != 0 || !in_.empty(); }
  void hold(std::span<const uint8_t> in, Nanos now);
  void top_up_inline(std::span<const uint8_t> in, Nanos now);
  void pump(Nanos now);
  bool can_examine() const;
  bool fetch_active() const { return fetch_chunk_ != 0; }
  /// The write queue in effect (0 = unbounded): --write-queue, or pressure_queue() under
  /// memory pressure or for a connection accepted under kShrink.
  size_t queue_limit() const;

  // output
  const ContentSource& content() const;
  void append(const uint8_t* p, size_t n, Nanos now);
  /// Bytes append() can add before it needs another block.
  size_t out_room() const;
  void make_room_for_mark(Block* b);
  void append_ref(const uint8_t* p, size_t n, bool file, Nanos now);
  void cover(Block* t, Nanos now);
  size_t ref_capacity(const Block* b) const;
  void append_fetch_data(size_t n, Nanos now);
  void add_requests(uint32_t count, Nanos rx);
  void reply_empty(proto::FrameType type, Nanos rx, Nanos now);
  void fail(proto::ErrorCode code, std::string_view reason, CloseCause cause, Nanos now);
  Nanos write_deadline() const;
  bool check_write_timeout(Nanos now);

  // lifecycle
  void set_pending(CloseCause c);
  void maybe_finish();
  void drop_everything(bool keep_output_blocks);
  void refresh_frame_timer(Nanos now);
  Block* new_block(Chain& c, bool small = false);
  void free_block(Block* b);
  void release_front(Chain& c);
  void release_chain(Chain& c);
  size_t block_capacity() const;
  size_t small_capacity() const;
  size_t capacity(const Block* b) const;
  uint32_t max_payload() const;

  const SessionEnv* env_;
  Chain out_;                   // whole reply frames, unsent (marks live in the blocks)
  Chain in_;                    // held input: starts at a frame boundary (or inside a SINK/CHUNK);
                                // either one small block or big blocks only
  size_t out_bytes_ = 0;        // == queued_bytes()
  uint64_t stream_left_ = 0;    // bytes still owed by the open stream
  uint64_t fetch_left_ = 0;     // DATA bytes still to produce for the current FETCH
  uint64_t fetch_off_ = 0;      // content offset of the next DATA byte
  Nanos fetch_rx_ = 0;          // when the current FETCH was received in full
  Nanos last_rx_;               // last byte received (idle timeout)
  Nanos frame_start_ = kNever;  // first byte of the partial frame the session waits for
  uint32_t stream_chunk_ = 0;   // 0: no stream open
  uint32_t fetch_chunk_ = 0;    // 0: no FETCH producing
  uint32_t discard_left_ = 0;   // SINK/CHUNK payload bytes still to discard
  uint8_t discard_type_ = 0;
  uint8_t part_len_ = 0;  // bytes in part_ (0 whenever in_ holds anything)
  /// A short partial frame held inline: the first part_len_ bytes of one frame, never a
  /// whole frame (a whole STREAM/FETCH, 15 bytes, is one more than fits).
  uint8_t part_[proto::kHeaderSize + proto::kStreamPayloadSize - 1];
  Input input_ = Input::kOpen;
  CloseCause pending_ = CloseCause::kNone;  // why it will close once flushed
  CloseCause cause_ = CloseCause::kNone;    // set when finished
  bool goaway_sent_ : 1 = false;
  bool forced_in_flight_ : 1 = false;
  bool shrunk_ : 1 = false;       // accepted under Pressure::kShrink: pressure_queue() for life
  bool paused_ : 1 = false;       // held back by the pressure queue (counted once per episode)
  bool big_discard_ : 1 = false;  // the last request examined was a SINK/CHUNK >= trunc_min
};

}  // namespace c10m::core
