#pragma once
// LoadLoop: what every load-generating loop does, whatever moves its bytes. It owns a share
// of the run's connections (paced by --ramp), sends on each active connection's open-model
// schedule (or keeps --inflight requests outstanding), validates every reply, records
// latency from the intended send time, and watches itself (CPU, run-queue wait, lateness).
//
// The I/O is a subclass's (the backend): EpollLoadLoop (sockets in the process fd table,
// readiness from epoll; --io epoll|uring) and DirectLoadLoop (io_uring direct descriptors,
// several rings per loop; --io direct). The backend opens and closes sockets, writes what
// the turn staged, waits, and hands this class what arrived (got_bytes), what connected
// (connected) and what a write returned (wrote, queued_sent). The request logic, the
// schedule, the reply checks and the counters are written once, here.
//
// A turn (run()): open due connects, expire slow ones, stage every send due within
// --send-slack (send_heap.h, write_stage.h), once a second sample CPU and run-queue wait,
// flush_staged() (every connection writes once), then wait_and_handle() until the next
// timer. Requests released by replies are staged and leave at the top of the next turn.
//
// Memory: a connection costs a Conn (conn_struct_bytes()) plus 4 bytes of heap position;
// an idle one owns no buffer. An active one gets, on its first send, its schedule state
// and a ring of owed requests (grows only while replies are owed) and a write queue used
// only when the kernel refuses bytes.
//
// Thread rule: construct, then run() on one thread; counters()/take_interval()/stop() from
// any thread; measured() only after run() returned.
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/noncopyable.h"
#include "loadclient/hdr_histogram.h"
#include "loadclient/load_config.h"
#include "loadclient/load_stats.h"
#include "loadclient/send_heap.h"
#include "loadclient/workload.h"
#include "loadclient/write_stage.h"
#include "proto/frame_reader.h"

namespace c10m::loadclient {

enum class ConnState : uint8_t { kNew, kConnecting, kOpen, kClosed };
enum class CloseReason : uint8_t { kGoaway, kUnexpected, kMismatch, kAfterError };

/// One request whose reply is owed.
struct Pending {
  Nanos origin = 0;      // latency starts here: the intended send time, or the actual one if
                         // the request left early (within --send-slack): never understated
  uint32_t size = 0;     // payload / total bytes
  uint32_t pat_off = 0;  // where its bytes start in the PayloadPattern
  bool measured = false;
  bool bad = false;  // a reply byte differed
};

/// Only active connections have one (allocated at their first connect, kept across
/// reconnects so the seeded stream continues).
struct ActiveState {
  Rng rng;                    // schedule, payload sizes and offsets
  WriteStage::Chain staged;   // requests staged in this turn
  std::vector<Pending> ring;  // power-of-two capacity
  uint32_t head = 0;
  uint32_t count = 0;
  uint64_t got = 0;         // progress within the front request: STREAM ACKs or FETCH data bytes
  std::vector<uint8_t> wq;  // bytes the kernel refused; empty (no capacity) otherwise
  size_t wq_off = 0;

  Pending& front() { return ring[head]; }
  void push(const Pending& p);
  void pop();
  void grow();
};

/// The record every connection has, idle ones included (keep it small: 1,000,000 of them
/// live in one process with --io direct).
struct Conn {
  int fd = -1;       // the backend's handle while a socket exists: a process fd, or a ring slot
  uint32_t gen = 0;  // bumped at every close: completions and events of an old socket
                     // carry the old value and are ignored
  ConnState state = ConnState::kNew;
  bool active = false;
  bool goaway = false;
  bool got_error = false;
  uint8_t error_code = 0;
  uint8_t io_flags = 0;  // the backend's (DirectLoadLoop: which operations are in flight)
  uint64_t global_id = 0;
  Nanos started = 0;  // when the connect began
  proto::FrameReader reader;
  std::unique_ptr<ActiveState> act;
};

class LoadLoop : NonCopyable {
 public:
  /// `global_ids`: the connections this loop owns, in the order it opens them (their ids
  /// pick address, source IP, activity and the seeded streams). `pattern` must outlive it.
  LoadLoop(const LoadConfig& config, const PayloadPattern& pattern,
           std::vector<uint64_t> global_ids, double ramp_per_s);
  virtual ~LoadLoop() = default;

  /// Runs until the run's end (t0 + warmup + duration, then up to `grace` for owed
  /// replies) or stop(). Returns an empty string, or a fatal set-up or I/O error.
  std::string run();
  void stop() { stop_.store(true, std::memory_order_relaxed); }

  const WorkerCounters& counters() const { return ctr_; }
  /// Moves the latency samples recorded since the last call (warm-up included) into `into`.
  void take_interval(HdrHistogram* into);
  /// Samples whose intended send time is inside the measured window. After run().
  const HdrHistogram& measured() const { return measured_; }
  /// First error message per connect-failure kind (errno text), for the report.
  std::string first_connect_error() const;

 protected:
  // ---- the backend -------------------------------------------------------------------
  /// Creates what the backend needs (on the loop's thread). "" or a fatal error.
  virtual std::string setup_io() = 0;
  /// Begins connecting `c` (its gen already bumped): on success sets c.fd and later calls
  /// connect_done(). Returns 0, or -errno when it failed at once (counted by the caller).
  virtual int begin_connect(Conn& c, uint32_t idx) = 0;
  /// Drops the socket of `c` (connecting or open): nothing of it is reported any more.
  virtual void release_socket(Conn& c, uint32_t idx) = 0;
  /// Every connection writes what it staged in this turn (and what else is due to go).
  virtual void flush_staged() = 0;
  /// Writes (or queues) what `c` staged so far, before a request too large to stage.
  /// Returns false when that closed the connection.
  virtual bool flush_conn(Conn& c, uint32_t idx) = 0;
  /// A request too large to stage, after flush_conn(): written, or queued.
  virtual void write_large(Conn& c, uint32_t idx, const uint8_t* data, size_t len) = 0;
  /// The write queue of `c` went from empty to non-empty: the backend writes its front
  /// when the kernel can take more, and reports it with queued_sent().
  virtual void want_writable(Conn& c, uint32_t idx) = 0;
  /// The write queue of `c` emptied.
  virtual void writable_done(Conn& c, uint32_t idx) = 0;
  /// Waits until `wake` (or until I/O happens) and handles what happened.
  virtual void wait_and_handle(Nanos wake) = 0;
  /// Work the backend queued for the next turn (the loop must not sleep).
  virtual bool io_pending() const { return false; }
  /// After the run: closes every socket.
  virtual void close_all() = 0;

  // ---- what backends call ------------------------------------------------------------
  /// A connect begun by begin_connect() finished: `err` 0 (open: counters, schedule, the
  /// closed loop's first requests, staged) or an errno (the socket is released, counted).
  void connect_done(Conn& c, uint32_t idx, int err, Nanos now);
  void close_conn(Conn& c, uint32_t idx, CloseReason why);
  /// What one read returned (n bytes at buf, 0 for EOF, -errno). Counts the read; EOF or an
  /// error closes the connection. Returns true when bytes were consumed and it is still open.
  bool got_bytes(Conn& c, uint32_t idx, const uint8_t* buf, ssize_t n, Nanos now);
  /// Counts one write that returned `n`. Returns the bytes taken (0 for EAGAIN), or -1
  /// when the error closed the connection.
  ssize_t took(Conn& c, uint32_t idx, ssize_t n);
  /// What a write of the staged chain from `first` (`want` bytes) returned: counted; on a
  /// short write the rest of the chain is queued, in order. True when all of it left.
  bool wrote(Conn& c, uint32_t idx, uint32_t first, ssize_t n, size_t want);
  /// Takes what `c` staged in this turn: its chain's head, or kNone when there is nothing
  /// to write now (while a queue exists, staged bytes go behind it).
  uint32_t take_staged(Conn& c, uint32_t idx);
  /// Up to kMaxIov segments of a chain from `s`; returns the segment after them.
  uint32_t gather(uint32_t s, iovec* iov, int* cnt, size_t* want) const;
  /// Queues the bytes of the staged chain from segment `s` on, less the first `skip`.
  void queue_chain(Conn& c, uint32_t idx, uint32_t s, size_t skip);
  /// Queues bytes the kernel refused (or that must wait behind a queue).
  void queue_rest(Conn& c, uint32_t idx, const uint8_t* data, size_t len);
  /// A write of the queue's front returned `n` (counted): advances it, and says so to the
  /// backend when it emptied. Returns the bytes taken, or -1 when the error closed it.
  ssize_t queued_sent(Conn& c, uint32_t idx, ssize_t n);

  static constexpr int kMaxIov = 64;                     // iovecs per writev / sendmsg
  static constexpr size_t kMaxConnectsInProgress = 512;  // per loop; under the backlog

  const LoadConfig& cfg_;
  WorkerCounters ctr_;
  std::vector<Conn> conns_;
  WriteStage stage_;
  std::string fatal_;  // an I/O failure the backend hit; run() returns it

 private:
  void connect_failed(Conn& c, int err);
  void connected(Conn& c, uint32_t idx, Nanos now);
  void note_connect_phase(Nanos now);
  void start_connect(uint32_t idx, Nanos now);
  void open_more(Nanos now);
  Nanos next_open_time() const;
  void expire_connects(Nanos now);
  size_t request_bytes(const Pending& p) const;
  uint64_t build_request(uint8_t* out, const Pending& p) const;
  void send_op(Conn& c, uint32_t idx, Nanos intended, Nanos now);
  void account_send(ActiveState& a, const Pending& p, Nanos intended, Nanos now, uint64_t frames);
  void fire_timers(Nanos now);
  bool header_ok(Conn& c, proto::FrameHeader h);
  void on_payload(Conn& c, std::span<const uint8_t> piece);
  bool on_frame_end(Conn& c, uint32_t idx, Nanos now);
  void complete(Conn& c, uint32_t idx, Nanos now);
  bool consume(Conn& c, uint32_t idx, std::span<const uint8_t> in, Nanos now);
  void publish();

  const PayloadPattern& pat_;
  double ramp_;
  std::vector<uint8_t> wbuf_;         // requests too large to stage (STREAM)
  std::vector<uint8_t> fetch_table_;  // fetch_table_[k] = k mod 251, k < 251 + 65535
  SendHeap timers_;
  std::deque<std::pair<uint32_t, uint32_t>> connecting_;  // (idx, gen) in start order
  std::vector<uint32_t> reconnect_queue_;
  size_t next_to_open_ = 0;
  size_t in_progress_ = 0;
  uint64_t owed_ = 0;
  bool sending_ = true;
  Nanos t0_, t_warm_, t_end_;
  std::string first_error_[kConnectFailKinds];

  HdrHistogram measured_;
  HdrHistogram interval_;
  HdrHistogram published_;
  std::mutex publish_mu_;
  std::atomic<bool> stop_{false};
};

}  // namespace c10m::loadclient
