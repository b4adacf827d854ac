#include "loadclient/load_worker.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <span>

#include "loadclient/io_batch.h"
#include "loadclient/send_heap.h"
#include "loadclient/write_stage.h"
#include "proto/frame.h"
#include "proto/frame_reader.h"
#include "sys/socket.h"

namespace c10m::loadclient {
namespace {

constexpr size_t kReadBufferSize = 256 * 1024;
constexpr int kMaxEvents = 256;                  // per epoll_pwait2
constexpr size_t kBatchReadSlice = 16 * 1024;    // --io uring: each batched read's share
constexpr unsigned kBatchOps = 1024;             // --io uring: operations per io_uring_enter
constexpr size_t kStageArenaSize = 512 * 1024;   // staged requests of one turn, per loop
constexpr size_t kStageMaxRequest = 128 * 1024;  // larger requests (STREAM) are written directly
constexpr int kMaxIov = IoBatch::kMaxIov;        // iovecs per writev
constexpr size_t kMaxConnectsInProgress = 512;   // per loop; keeps SYN bursts under the backlog
constexpr int kReadBurst = 8;                    // reads per readiness event: no starvation
constexpr Nanos kLateThreshold = kMillisecond;
constexpr double kSaturatedCpuShare = 0.95;
constexpr double kStarvedShare = 0.10;         // run-queue wait per second that counts as starved
constexpr unsigned long kTimerSlackNs = 1000;  // kernel slack of the loop's own wake-ups

enum class State : uint8_t { kNew, kConnecting, kOpen, kClosed };
enum class CloseReason : uint8_t { kGoaway, kUnexpected, kMismatch, kAfterError };

// One request whose reply is owed.
struct Pending {
  Nanos origin = 0;      // latency starts here: the intended send time, or the actual one if
                         // the request left early (within --send-slack): never understated
  uint32_t size = 0;     // payload / total bytes
  uint32_t pat_off = 0;  // where its bytes start in the PayloadPattern
  bool measured = false;
  bool bad = false;  // a reply byte differed
};

// Only active connections have one (allocated at their first connect, kept across
// reconnects so the seeded stream continues).
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
  void push(const Pending& p) {
    if (count == ring.size()) grow();
    ring[(head + count) & (ring.size() - 1)] = p;
    ++count;
  }
  void pop() {
    head = (head + 1) & static_cast<uint32_t>(ring.size() - 1);
    --count;
    got = 0;
  }
  void grow() {
    const size_t n = ring.empty() ? 8 : ring.size() * 2;
    std::vector<Pending> r(n);
    for (uint32_t i = 0; i < count; ++i) r[i] = ring[(head + i) & (ring.size() - 1)];
    ring.swap(r);
    head = 0;
  }
};

Nanos thread_cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<Nanos>(ts.tv_sec) * kSecond + ts.tv_nsec;
}

// The calling thread's run-queue wait: the second field of /proc/thread-self/schedstat,
// nanoseconds spent runnable but not running. Opened on the loop's own thread.
class RunQueueClock {
 public:
  RunQueueClock() : fd_(::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)) {}
  ~RunQueueClock() {
    if (fd_ >= 0) ::close(fd_);
  }
  RunQueueClock(const RunQueueClock&) = delete;
  RunQueueClock& operator=(const RunQueueClock&) = delete;
  /// -1 when unknown (no schedstat in this kernel).
  Nanos now() const {
    if (fd_ < 0) return -1;
    char buf[96];
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    if (n <= 0) return -1;
    buf[n] = 0;
    char* end = nullptr;
    std::strtoull(buf, &end, 10);  // on-CPU time
    if (end == buf) return -1;
    const char* p = end;
    const unsigned long long wait = std::strtoull(p, &end, 10);
    return end == p ? -1 : static_cast<Nanos>(wait);
  }

 private:
  int fd_;
};

uint32_t chunk_count(uint32_t total, uint32_t chunk) { return (total + chunk - 1) / chunk; }

}  // namespace

struct LoadWorker::Conn {
  int fd = -1;
  uint32_t gen = 0;
  State state = State::kNew;
  bool active = false;
  bool goaway = false;
  bool got_error = false;
  uint8_t error_code = 0;
  uint64_t global_id = 0;
  Nanos started = 0;  // when the connect began
  proto::FrameReader reader;
  std::unique_ptr<ActiveState> act;
};

struct LoadWorker::Impl {
  LoadWorker& w;
  const LoadConfig& cfg;
  const PayloadPattern& pat;
  WorkerCounters& ctr;
  std::vector<Conn> conns;
  double ramp;
  int ep = -1;
  std::vector<uint8_t> rbuf;
  std::vector<uint8_t> wbuf;         // requests too large to stage (STREAM)
  std::vector<uint8_t> fetch_table;  // fetch_table[k] = k mod 251, k < 251 + 65535
  SendHeap timers;
  WriteStage stage;
  // --io uring: the batcher, the connections of this epoll batch to read (idx, gen), the
  // read completions being handled, and the sends of this batch (tag = index).
  std::unique_ptr<IoBatch> io;
  std::vector<std::pair<uint32_t, uint32_t>> ready;
  std::vector<IoBatch::Result> reads_done;
  struct SendOp {
    uint32_t idx, gen, head;  // head: the staged chain this send carries
    size_t want;
  };
  std::vector<SendOp> sends;
  std::string fatal;                                     // a ring failure ends the loop with this
  std::deque<std::pair<uint32_t, uint32_t>> connecting;  // (idx, gen) in start order
  std::vector<uint32_t> reconnect_queue;
  size_t next_to_open = 0;
  size_t in_progress = 0;
  uint64_t owed = 0;
  bool sending = true;
  Nanos t0, t_warm, t_end;
  // The measured window's start: this loop's CPU, run-queue wait and bytes at t_warm.
  bool warm_marked = false;
  Nanos cpu_at_warm = 0, wait_at_warm = 0;
  uint64_t out_at_warm = 0, in_at_warm = 0;
  std::string first_error[kConnectFailKinds];

  Impl(LoadWorker& worker, const LoadConfig& c, const PayloadPattern& p, std::vector<uint64_t> ids,
       double r)
      : w(worker),
        cfg(c),
        pat(p),
        ctr(worker.counters_),
        conns(ids.size()),
        ramp(r),
        timers(ids.size()),
        stage(kStageArenaSize) {
    for (size_t i = 0; i < ids.size(); ++i) {
      conns[i].global_id = ids[i];
      conns[i].active = is_active_conn(ids[i], cfg.active_frac);
    }
    t0 = cfg.t0;
    t_warm = t0 + cfg.warmup;
    t_end = t_warm + cfg.duration;
  }

  ~Impl() {
    for (auto& c : conns)
      if (c.fd >= 0) ::close(c.fd);
    if (ep >= 0) ::close(ep);
  }

  std::string setup() {
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return std::string("epoll_create1: ") + std::strerror(errno);
    // The loop times its own wake-ups (and batches them with --send-slack): keep the
    // kernel from adding its default 50 us of timer slack on top.
    prctl(PR_SET_TIMERSLACK, kTimerSlackNs, 0, 0, 0);
    rbuf.resize(kReadBufferSize);
    if (cfg.io == IoMode::kUring) {
      io = std::make_unique<IoBatch>();
      if (std::string err = io->init(kBatchOps); !err.empty()) return "--io uring: " + err;
      rbuf.resize(kMaxEvents * kBatchReadSlice);
      ready.reserve(kMaxEvents);
      reads_done.reserve(kMaxEvents);
      sends.reserve(kBatchOps);
    }
    if (cfg.op == Op::kStream) {
      const uint32_t max_size = cfg.payload.max_size();
      wbuf.resize(proto::kHeaderSize + proto::kStreamPayloadSize + max_size +
                  proto::kHeaderSize * (chunk_count(max_size, cfg.chunk) + 1));
    }
    if (cfg.op == Op::kFetch) {
      fetch_table.resize(proto::kFetchModulus + proto::kMaxPayload);
      for (size_t k = 0; k < fetch_table.size(); ++k) fetch_table[k] = proto::fetch_pattern_byte(k);
    }
    return {};
  }

  // ---- connections -------------------------------------------------------------------
  void connect_failed(Conn& c, int err) {
    const ConnectFail kind = classify_connect_errno(err);
    ctr.connect_fail[static_cast<size_t>(kind)].add();
    auto& msg = first_error[static_cast<size_t>(kind)];
    if (msg.empty()) msg = std::strerror(err);
    c.state = State::kClosed;
  }

  void start_connect(uint32_t idx, Nanos now) {
    Conn& c = conns[idx];
    const size_t na = cfg.addrs.size();
    const sockaddr_in& dest = cfg.addrs[c.global_id % na];
    const sockaddr_in* src =
        cfg.srcips.empty() ? nullptr : &cfg.srcips[(c.global_id / na) % cfg.srcips.size()];
    ++c.gen;
    c.reader = proto::FrameReader{};
    c.goaway = c.got_error = false;
    const int fd = sys::connect_tcp(dest, src, /*nonblocking=*/true);
    if (fd < 0) {
      connect_failed(c, -fd);
      return;
    }
    c.fd = fd;
    c.state = State::kConnecting;
    c.started = now;
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = idx | (uint64_t{c.gen} << 32);
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      const int err = errno;
      ::close(fd);
      c.fd = -1;
      connect_failed(c, err);
      return;
    }
    connecting.emplace_back(idx, c.gen);
    ++in_progress;
  }

  void open_more(Nanos now) {
    size_t allowed = conns.size();
    if (ramp > 0) {
      const double due = 1.0 + static_cast<double>(now - t0) * ramp / 1e9;
      if (due < static_cast<double>(allowed)) allowed = static_cast<size_t>(due);
    }
    while (next_to_open < allowed && in_progress < kMaxConnectsInProgress)
      start_connect(static_cast<uint32_t>(next_to_open++), now);
    while (!reconnect_queue.empty() && in_progress < kMaxConnectsInProgress) {
      const uint32_t idx = reconnect_queue.back();
      reconnect_queue.pop_back();
      start_connect(idx, now);
    }
  }

  Nanos next_open_time() const {
    if (next_to_open >= conns.size() || in_progress >= kMaxConnectsInProgress) return kNever;
    if (ramp <= 0) return 0;
    return t0 + static_cast<Nanos>(static_cast<double>(next_to_open) * 1e9 / ramp);
  }

  void expire_connects(Nanos now) {
    while (!connecting.empty()) {
      const auto [idx, gen] = connecting.front();
      Conn& c = conns[idx];
      if (c.gen != gen || c.state != State::kConnecting) {
        connecting.pop_front();
        continue;
      }
      if (now - c.started < cfg.connect_timeout) break;
      connecting.pop_front();
      ::close(c.fd);
      c.fd = -1;
      ++c.gen;
      --in_progress;
      connect_failed(c, ETIMEDOUT);
    }
  }

  void set_events(Conn& c, uint32_t idx, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = idx | (uint64_t{c.gen} << 32);
    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void on_connected(Conn& c, uint32_t idx, Nanos now) {
    --in_progress;
    const int err = sys::socket_error(c.fd);
    if (err != 0) {
      ::close(c.fd);
      c.fd = -1;
      ++c.gen;
      connect_failed(c, -err);
      return;
    }
    sys::SocketOptions opts;
    opts.nodelay = cfg.nodelay;
    opts.sndbuf = cfg.sndbuf;
    opts.rcvbuf = cfg.rcvbuf;
    sys::apply_socket_options(c.fd, opts);
    c.state = State::kOpen;
    set_events(c, idx, EPOLLIN | EPOLLRDHUP);
    ctr.conns_opened.add();
    ctr.conns_open.add();
    if (!c.active || !sending) return;
    if (!c.act) {
      c.act = std::make_unique<ActiveState>();
      c.act->rng = Rng::for_stream(cfg.seed, c.global_id);
    }
    if (cfg.closed_loop()) {
      for (uint32_t k = 0; k < cfg.inflight && c.state == State::kOpen; ++k)
        send_op(c, idx, now, now);
    } else {
      timers.push(idx, std::max(now, t0 + cfg.sends_from) + cfg.schedule.first_offset(c.act->rng));
    }
  }

  void close_conn(Conn& c, uint32_t idx, CloseReason why) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    ++c.gen;
    if (c.state == State::kOpen) ctr.conns_open.sub();
    c.state = State::kClosed;
    timers.remove(idx);
    if (c.act) {
      if (c.act->count) {
        ctr.unanswered.add(c.act->count);
        owed -= c.act->count;
      }
      c.act->count = 0;
      c.act->head = 0;
      c.act->got = 0;
      c.act->staged = {};  // its staged bytes are abandoned in the arena
      std::vector<uint8_t>().swap(c.act->wq);
      c.act->wq_off = 0;
    }
    if (why == CloseReason::kUnexpected) ctr.unexpected_closes.add();
    if (cfg.reconnect && sending && why != CloseReason::kMismatch) {
      ctr.reconnects.add();
      reconnect_queue.push_back(idx);
    }
  }

  // ---- writing -----------------------------------------------------------------------
  // Queues bytes the kernel refused; EPOLLOUT brings the connection back to flush().
  void queue_rest(Conn& c, uint32_t idx, const uint8_t* data, size_t len) {
    ActiveState& a = *c.act;
    const bool was_empty = a.wq.empty();
    a.wq.insert(a.wq.end(), data, data + len);
    if (was_empty) {
      a.wq_off = 0;
      set_events(c, idx, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
    }
  }

  // Counts one write (a syscall or a ring operation) that returned `n`. Returns the bytes
  // the kernel took (0 for EAGAIN), or -1 when the error closed the connection.
  ssize_t took(Conn& c, uint32_t idx, ssize_t n) {
    ctr.write_calls.add();
    if (n == -EAGAIN) return 0;
    if (n < 0) {
      close_conn(c, idx, CloseReason::kUnexpected);
      return -1;
    }
    ctr.bytes_out.add(static_cast<uint64_t>(n));
    return n;
  }

  // One write of `len` bytes (requests too large to stage). Returns false when closed.
  bool write_direct(Conn& c, uint32_t idx, const uint8_t* data, size_t len) {
    ActiveState& a = *c.act;
    if (!a.wq.empty()) {
      queue_rest(c, idx, data, len);
      return true;
    }
    const ssize_t n = took(c, idx, sys::write_some(c.fd, data, len));
    if (n < 0) return false;
    if (static_cast<size_t>(n) < len) {
      ctr.partial_writes.add();
      queue_rest(c, idx, data + n, len - static_cast<size_t>(n));
    }
    return true;
  }

  // Queues the bytes of the staged chain from segment `s` on, less the first `skip`.
  void queue_chain(Conn& c, uint32_t idx, uint32_t s, size_t skip) {
    for (; s != WriteStage::kNone; s = stage.segment(s).next) {
      const WriteStage::Segment& seg = stage.segment(s);
      if (skip >= seg.len) {
        skip -= seg.len;
        continue;
      }
      queue_rest(c, idx, stage.bytes(seg) + skip, seg.len - skip);
      skip = 0;
    }
  }

  // Up to kMaxIov segments of a chain from `s` into `iov`; returns the segment after them.
  uint32_t gather(uint32_t s, iovec* iov, int* cnt, size_t* want) const {
    *cnt = 0;
    *want = 0;
    for (; s != WriteStage::kNone && *cnt < kMaxIov; s = stage.segment(s).next) {
      const WriteStage::Segment& seg = stage.segment(s);
      iov[(*cnt)++] = {const_cast<uint8_t*>(stage.bytes(seg)), seg.len};
      *want += seg.len;
    }
    return s;
  }

  // What a write of the chain from `first` (`want` bytes) returned: counted, and on a
  // short write the rest of the chain is queued, in order, so frame boundaries stay
  // intact. Returns true when all of it left.
  bool wrote(Conn& c, uint32_t idx, uint32_t first, ssize_t n, size_t want) {
    n = took(c, idx, n);
    if (n < 0) return false;
    if (static_cast<size_t>(n) == want) return true;
    ctr.partial_writes.add();
    queue_chain(c, idx, first, static_cast<size_t>(n));
    return false;
  }

  // Writes a chain: one write (one segment) or writev (several, up to kMaxIov per call).
  void write_chain(Conn& c, uint32_t idx, uint32_t s) {
    while (s != WriteStage::kNone) {
      const uint32_t first = s;
      iovec iov[kMaxIov];
      int cnt;
      size_t want;
      s = gather(s, iov, &cnt, &want);
      const ssize_t n = cnt == 1 ? sys::write_some(c.fd, iov[0].iov_base, iov[0].iov_len)
                                 : sys::writev_some(c.fd, iov, cnt);
      if (!wrote(c, idx, first, n, want)) return;
    }
  }

  // Takes what this connection staged in this turn: its chain's head, or kNone when there
  // is nothing to write now (while a queue exists, staged bytes go behind it).
  uint32_t take_staged(Conn& c, uint32_t idx) {
    if (!c.act) return WriteStage::kNone;
    ActiveState& a = *c.act;
    const uint32_t s = a.staged.head;
    a.staged = {};
    if (s == WriteStage::kNone || c.state != State::kOpen) return WriteStage::kNone;
    if (!a.wq.empty()) {
      queue_chain(c, idx, s, 0);
      return WriteStage::kNone;
    }
    return s;
  }

  void flush_staged_conn(Conn& c, uint32_t idx) {
    if (const uint32_t s = take_staged(c, idx); s != WriteStage::kNone) write_chain(c, idx, s);
  }

  // --io uring: one io_uring_enter. Returns its completions (valid until the next one),
  // or an empty span with `fatal` set when the ring failed.
  std::span<const IoBatch::Result> submit_batch() {
    const unsigned ops = io->queued();
    int err = 0;
    const std::span<const IoBatch::Result> res = io->submit(&err);
    ctr.enter_calls.add();
    ctr.batched_ops.add(ops);
    if (err != 0) fatal = std::string("io_uring_enter: ") + std::strerror(err);
    return res;
  }

  // --io uring: the queued sends leave in one io_uring_enter; each result is handled as a
  // write's (which never submits again).
  void submit_sends() {
    for (const IoBatch::Result& r : submit_batch()) {
      const SendOp& op = sends[r.tag];
      Conn& c = conns[op.idx];
      if (c.gen == op.gen) wrote(c, op.idx, op.head, r.res, op.want);
    }
    sends.clear();
  }

  // The end of a turn (or a full arena): every dirty connection writes once; with
  // --io uring, all of them in one io_uring_enter.
  void flush_staged() {
    if (stage.idle()) return;
    for (const uint32_t idx : stage.dirty()) {
      Conn& c = conns[idx];
      if (!io) {
        flush_staged_conn(c, idx);
        continue;
      }
      const uint32_t s = take_staged(c, idx);
      if (s == WriteStage::kNone) continue;
      iovec iov[kMaxIov];
      int cnt;
      size_t want;
      if (gather(s, iov, &cnt, &want) != WriteStage::kNone) {
        write_chain(c, idx, s);  // more segments than one sendmsg takes: plain writes
        continue;
      }
      sends.push_back({idx, c.gen, s, want});
      const uint64_t tag = sends.size() - 1;
      if (cnt == 1)
        io->send(c.fd, iov[0].iov_base, iov[0].iov_len, tag);
      else
        io->sendmsg(c.fd, iov, cnt, tag);
      if (io->full()) submit_sends();
    }
    if (io) submit_sends();
    stage.reset();
  }

  // EPOLLOUT: continue the queue the kernel refused earlier.
  void flush_queue(Conn& c, uint32_t idx) {
    if (!c.act || c.act->wq.empty()) return;
    ActiveState& a = *c.act;
    const ssize_t n =
        took(c, idx, sys::write_some(c.fd, a.wq.data() + a.wq_off, a.wq.size() - a.wq_off));
    if (n <= 0) return;
    a.wq_off += static_cast<size_t>(n);
    if (a.wq_off == a.wq.size()) {
      std::vector<uint8_t>().swap(a.wq);
      a.wq_off = 0;
      set_events(c, idx, EPOLLIN | EPOLLRDHUP);
    }
  }

  // ---- sending -----------------------------------------------------------------------
  size_t request_bytes(const Pending& p) const {
    switch (cfg.op) {
      case Op::kPing:
        return proto::kHeaderSize;
      case Op::kEcho:
      case Op::kSink:
        return proto::kHeaderSize + p.size;
      case Op::kStream:
        return proto::kHeaderSize + proto::kStreamPayloadSize + p.size +
               proto::kHeaderSize * size_t{chunk_count(p.size, cfg.chunk)};
      case Op::kFetch:
        return proto::kHeaderSize + proto::kStreamPayloadSize;
    }
    return 0;
  }

  // Writes the request's frames to `out` (request_bytes(p) bytes); returns the frame count.
  uint64_t build_request(uint8_t* out, const Pending& p) const {
    const Op op = cfg.op;
    switch (op) {
      case Op::kPing:
        proto::write_header(out, proto::FrameType::kPing, 0);
        return 1;
      case Op::kEcho:
      case Op::kSink:
        proto::write_header(out,
                            op == Op::kEcho ? proto::FrameType::kEcho : proto::FrameType::kSink,
                            static_cast<uint16_t>(p.size));
        std::memcpy(out + proto::kHeaderSize, pat.at(p.pat_off), p.size);
        return 1;
      case Op::kStream: {
        proto::write_header(out, proto::FrameType::kStream, proto::kStreamPayloadSize);
        proto::write_stream_spec(out + proto::kHeaderSize, {p.size, cfg.chunk});
        size_t len = proto::kHeaderSize + proto::kStreamPayloadSize;
        for (uint32_t off = 0; off < p.size; off += cfg.chunk) {
          const uint32_t n = std::min(cfg.chunk, p.size - off);
          proto::write_header(out + len, proto::FrameType::kChunk, static_cast<uint16_t>(n));
          std::memcpy(out + len + proto::kHeaderSize, pat.at(p.pat_off + off), n);
          len += proto::kHeaderSize + n;
        }
        return 1 + uint64_t{chunk_count(p.size, cfg.chunk)};
      }
      case Op::kFetch:
        proto::write_header(out, proto::FrameType::kFetch, proto::kStreamPayloadSize);
        proto::write_stream_spec(out + proto::kHeaderSize, {p.size, cfg.chunk});
        return 1;
    }
    return 0;
  }

  // Stages one request (written at the end of the turn), or writes it at once when it is
  // too large to stage. `intended`: when the schedule (or the reply it replaces) wanted
  // it sent; `now`: this turn's clock.
  void send_op(Conn& c, uint32_t idx, Nanos intended, Nanos now) {
    ActiveState& a = *c.act;
    Pending p;
    p.origin = intended < now ? intended : now;
    p.measured = intended >= t_warm && intended < t_end;
    const Op op = cfg.op;
    if (op != Op::kPing) p.size = cfg.payload.pick(a.rng);
    if (op == Op::kEcho || op == Op::kSink || op == Op::kStream)
      p.pat_off = PayloadPattern::pick_offset(a.rng);
    const size_t len = request_bytes(p);
    uint64_t frames = 0;
    if (len > kStageMaxRequest) {
      flush_staged_conn(c, idx);  // what this connection staged earlier goes first
      if (c.state != State::kOpen) return;
      frames = build_request(wbuf.data(), p);
      account_send(a, p, intended, now, frames);
      write_direct(c, idx, wbuf.data(), len);
      return;
    }
    if (stage.room() < len) {
      flush_staged();  // a full arena ends the turn early
      if (c.state != State::kOpen) return;
    }
    frames = build_request(stage.reserve(len), p);
    stage.commit(a.staged, idx, len);
    account_send(a, p, intended, now, frames);
  }

  void account_send(ActiveState& a, const Pending& p, Nanos intended, Nanos now, uint64_t frames) {
    a.push(p);
    ++owed;
    ctr.ops_sent.add();
    ctr.frames_out.add(frames);
    if (p.measured) {
      ctr.sent_measured.add();
      if (now > intended) {
        ctr.send_lag_ns.add(static_cast<uint64_t>(now - intended));
        if (now - intended > kLateThreshold) ctr.late_sends.add();
      } else if (now < intended) {
        ctr.early_sends.add();
      }
    }
  }

  // Every send due by now + send_slack goes in this turn (early ones are timed from when
  // they actually leave, late ones from when they should have left).
  void fire_timers(Nanos now) {
    const Nanos horizon = now + cfg.send_slack;
    while (!timers.empty() && timers.top_when() <= horizon) {
      const uint32_t idx = timers.top_conn();
      const Nanos when = timers.top_when();
      if (when >= t_end) {
        timers.pop();
        continue;
      }
      Conn& c = conns[idx];
      send_op(c, idx, when, now);             // late sends still go, timed from `when`
      if (c.state != State::kOpen) continue;  // closed: it left the heap
      const Nanos next = when + cfg.schedule.next_gap(c.act->rng);
      if (timers.top_conn() == idx) {
        timers.reschedule_top(next);
      } else {
        timers.remove(idx);
        timers.push(idx, next);
      }
    }
  }

  // ---- receiving ---------------------------------------------------------------------
  bool header_ok(Conn& c, proto::FrameHeader h) {
    if (h.type == static_cast<uint8_t>(proto::FrameType::kGoaway)) return h.length == 0;
    if (h.type == static_cast<uint8_t>(proto::FrameType::kError)) {
      c.error_code = 0;
      return h.length >= 1 && h.length <= 1 + proto::kMaxErrorReason;
    }
    if (!c.act || c.act->count == 0) return false;  // a reply nobody asked for
    const Pending& p = c.act->front();
    const uint64_t got = c.act->got;
    switch (cfg.op) {
      case Op::kPing:
        return h.type == 0x01 && h.length == 0;
      case Op::kEcho:
        return h.type == 0x02 && h.length == p.size;
      case Op::kSink:
        return h.type == 0x03 && h.length == 0;
      case Op::kStream:
        return h.type == (got == 0 ? 0x04 : 0x05) && h.length == 0;
      case Op::kFetch: {
        if (h.type != 0x06) return false;
        const uint64_t expect = got < p.size ? std::min<uint64_t>(cfg.chunk, p.size - got) : 0;
        return h.length == expect;
      }
    }
    return false;
  }

  void on_payload(Conn& c, std::span<const uint8_t> piece) {
    const proto::FrameHeader h = c.reader.header();
    const size_t pos = h.length - c.reader.remaining() - piece.size();
    if (h.type == static_cast<uint8_t>(proto::FrameType::kError)) {
      if (pos == 0) c.error_code = piece[0];
      return;
    }
    Pending& p = c.act->front();
    if (cfg.op == Op::kEcho) {
      if (std::memcmp(piece.data(), pat.at(p.pat_off) + pos, piece.size()) != 0) p.bad = true;
    } else if (cfg.op == Op::kFetch) {
      const size_t start = (c.act->got + pos) % proto::kFetchModulus;
      if (std::memcmp(piece.data(), fetch_table.data() + start, piece.size()) != 0) p.bad = true;
    }
  }

  // Returns false when the connection was closed.
  bool on_frame_end(Conn& c, uint32_t idx, Nanos now) {
    const proto::FrameHeader h = c.reader.header();
    ctr.frames_in.add();
    if (h.type == static_cast<uint8_t>(proto::FrameType::kGoaway)) {
      ctr.goaways.add();
      c.goaway = true;
      timers.remove(idx);
      if (!c.act || c.act->count == 0) {
        close_conn(c, idx, CloseReason::kGoaway);
        return false;
      }
      return true;
    }
    if (h.type == static_cast<uint8_t>(proto::FrameType::kError)) {
      const uint8_t code = c.error_code;
      ctr.error_frames[code >= 1 && code <= 6 ? code : 7].add();
      c.got_error = true;  // the server closes next
      return true;
    }
    ActiveState& a = *c.act;
    const Pending& p = a.front();
    bool done = false;
    switch (cfg.op) {
      case Op::kPing:
      case Op::kEcho:
      case Op::kSink:
        done = true;
        break;
      case Op::kStream:
        done = ++a.got == 1 + uint64_t{chunk_count(p.size, cfg.chunk)};
        break;
      case Op::kFetch:
        if (h.length == 0)
          done = true;
        else
          a.got += h.length;
        break;
    }
    if (done) complete(c, idx, now);
    return c.state == State::kOpen;
  }

  void complete(Conn& c, uint32_t idx, Nanos now) {
    ActiveState& a = *c.act;
    const Pending p = a.front();
    a.pop();
    --owed;
    ctr.ops_done.add();
    const Nanos latency = now - p.origin;
    w.interval_.record(latency);
    if (p.measured) {
      w.measured_.record(latency);
      ctr.done_measured.add();
      ctr.payload_bytes.add(p.size);
    }
    if (p.bad) ctr.mismatches.add();
    if (c.goaway) {
      if (a.count == 0) close_conn(c, idx, CloseReason::kGoaway);
      return;
    }
    if (cfg.closed_loop() && sending) send_op(c, idx, now, now);
  }

  // Returns false when the connection was closed.
  bool consume(Conn& c, uint32_t idx, std::span<const uint8_t> in, Nanos now) {
    std::span<const uint8_t> piece;
    for (;;) {
      switch (c.reader.next(in, &piece)) {
        case proto::FrameReader::Event::kNeedMore:
          return true;
        case proto::FrameReader::Event::kHeader:
          if (!header_ok(c, c.reader.header())) {
            // The stream can no longer be trusted: count it and drop the connection.
            ctr.mismatches.add();
            close_conn(c, idx, CloseReason::kMismatch);
            return false;
          }
          break;
        case proto::FrameReader::Event::kPayload:
          on_payload(c, piece);
          break;
        case proto::FrameReader::Event::kEnd:
          if (!on_frame_end(c, idx, now)) return false;
          break;
      }
    }
  }

  // What one read into `buf` returned. Returns true when bytes were consumed and the
  // connection is still open.
  bool got_bytes(Conn& c, uint32_t idx, const uint8_t* buf, ssize_t n, Nanos now) {
    ctr.read_calls.add();
    if (n == -EAGAIN) return false;
    if (n <= 0) {
      const bool expected = c.got_error || (c.goaway && (!c.act || c.act->count == 0));
      close_conn(c, idx,
                 c.got_error ? CloseReason::kAfterError
                 : expected  ? CloseReason::kGoaway
                             : CloseReason::kUnexpected);
      return false;
    }
    ctr.bytes_in.add(static_cast<uint64_t>(n));
    return consume(c, idx, {buf, static_cast<size_t>(n)}, now);
  }

  // Plain reads into `buf` until the socket is drained (at most kReadBurst).
  void on_readable(Conn& c, uint32_t idx, uint8_t* buf, size_t cap) {
    for (int burst = 0; burst < kReadBurst; ++burst) {
      const ssize_t n = sys::read_some(c.fd, buf, cap);
      if (!got_bytes(c, idx, buf, n, mono_now()) || static_cast<size_t>(n) < cap) return;
    }
  }

  // --io uring: every connection of this epoll batch is read in one io_uring_enter, each
  // into its own slice of rbuf; a slice filled to the brim is drained with plain reads.
  // The completions are copied first: consuming them stages requests, and a full arena
  // submits sends through the same ring.
  void read_batch() {
    for (size_t k = 0; k < ready.size(); ++k)
      io->recv(conns[ready[k].first].fd, rbuf.data() + k * kBatchReadSlice, kBatchReadSlice, k);
    const std::span<const IoBatch::Result> res = submit_batch();
    reads_done.assign(res.begin(), res.end());
    const Nanos now = mono_now();
    for (const IoBatch::Result& r : reads_done) {
      const auto [idx, gen] = ready[r.tag];
      Conn& c = conns[idx];
      uint8_t* slice = rbuf.data() + r.tag * kBatchReadSlice;
      if (c.gen == gen && got_bytes(c, idx, slice, r.res, now) &&
          static_cast<size_t>(r.res) == kBatchReadSlice)
        on_readable(c, idx, slice, kBatchReadSlice);
    }
    ready.clear();
  }

  // ---- the loop ----------------------------------------------------------------------
  void publish() {
    {
      std::lock_guard<std::mutex> lock(w.publish_mu_);
      w.published_.merge(w.interval_);
    }
    w.interval_.reset();
  }

  std::string run() {
    if (std::string err = setup(); !err.empty()) return err;
    const RunQueueClock run_queue;
    if (run_queue.now() >= 0) ctr.schedstat_loops.add();
    epoll_event events[kMaxEvents];
    Nanos next_tick = t0 + kSecond;
    Nanos tick_cpu = thread_cpu_now();
    Nanos tick_wait = run_queue.now();
    Nanos tick_wall = mono_now();
    if (tick_wall >= t_warm) {
      // This thread began after the window opened (a starved process starts late): its
      // counts since it was created, waiting for its first run included, belong to it.
      warm_marked = true;
      tick_cpu = tick_wait = 0;
      tick_wall = t0;
    }
    for (;;) {
      Nanos now = mono_now();
      if (!warm_marked && now >= t_warm) {
        warm_marked = true;
        cpu_at_warm = thread_cpu_now();
        wait_at_warm = run_queue.now();
        out_at_warm = ctr.bytes_out.load();
        in_at_warm = ctr.bytes_in.load();
      }
      if (sending && (now >= t_end || w.stop_.load(std::memory_order_relaxed))) {
        sending = false;
        if (warm_marked) {
          ctr.cpu_ns.set(static_cast<uint64_t>(thread_cpu_now() - cpu_at_warm));
          const Nanos wait = run_queue.now();
          if (wait >= 0 && wait_at_warm >= 0)
            ctr.run_delay_ns.set(static_cast<uint64_t>(wait - wait_at_warm));
          ctr.wire_out.set(ctr.bytes_out.load() - out_at_warm);
          ctr.wire_in.set(ctr.bytes_in.load() - in_at_warm);
        }
      }
      if (!sending && (owed == 0 || now >= t_end + cfg.grace)) break;
      if (sending) open_more(now);
      expire_connects(now);
      if (sending) fire_timers(now);
      if (now >= next_tick) {
        const Nanos cpu = thread_cpu_now();
        const Nanos wait = run_queue.now();
        const double wall = static_cast<double>(now - tick_wall);
        if (sending && wall > 0) {
          if (static_cast<double>(cpu - tick_cpu) > kSaturatedCpuShare * wall)
            ctr.saturated_ticks.add();
          if (wait >= 0 && tick_wait >= 0 &&
              static_cast<double>(wait - tick_wait) > kStarvedShare * wall)
            ctr.starved_ticks.add();
        }
        tick_cpu = cpu;
        tick_wait = wait;
        tick_wall = now;
        publish();
        while (next_tick <= now) next_tick += kSecond;
      }
      // Every connection writes what the timers staged for it, once.
      flush_staged();
      Nanos wake = std::min(next_tick, sending ? t_end : t_end + cfg.grace);
      if (sending) {
        wake = std::min(wake, timers.top_when());
        wake = std::min(wake, next_open_time());
        if (!reconnect_queue.empty() && in_progress < kMaxConnectsInProgress) wake = now;
      }
      if (!connecting.empty()) {
        const Conn& c = conns[connecting.front().first];
        if (c.gen == connecting.front().second && c.state == State::kConnecting)
          wake = std::min(wake, c.started + cfg.connect_timeout);
        else
          wake = now;  // stale entry: pop it on the next pass
      }
      const Nanos wait = std::max<Nanos>(0, wake - mono_now());
      timespec ts{static_cast<time_t>(wait / kSecond), static_cast<long>(wait % kSecond)};
      const int n = epoll_pwait2(ep, events, kMaxEvents, &ts, nullptr);
      ctr.wait_calls.add();
      if (n < 0 && errno != EINTR) return std::string("epoll_pwait2: ") + std::strerror(errno);
      for (int i = 0; i < n; ++i) {
        const uint32_t idx = static_cast<uint32_t>(events[i].data.u64);
        const uint32_t gen = static_cast<uint32_t>(events[i].data.u64 >> 32);
        Conn& c = conns[idx];
        if (c.gen != gen) continue;  // closed earlier in this batch
        if (c.state == State::kConnecting) {
          on_connected(c, idx, mono_now());
        } else if (c.state == State::kOpen) {
          if (events[i].events & EPOLLOUT) flush_queue(c, idx);
          if (c.gen == gen && (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
            if (io) {
              ready.emplace_back(idx, gen);
              continue;  // read with the rest of the batch, written at the next turn's top
            }
            on_readable(c, idx, rbuf.data(), rbuf.size());
          }
        }
        // This connection's turn ends here: the requests its replies released leave now, in
        // one write, while the rest of the batch is served (the server is kept busy).
        if (!io) flush_staged();
      }
      if (!ready.empty()) read_batch();
      if (!fatal.empty()) return fatal;
    }
    if (sending) sending = false;
    // Measured requests still owed when the grace ran out.
    for (auto& c : conns) {
      if (!c.act) continue;
      for (uint32_t i = 0; i < c.act->count; ++i)
        if (c.act->ring[(c.act->head + i) & (c.act->ring.size() - 1)].measured)
          ctr.incomplete_at_end.add();
    }
    for (auto& c : conns) {
      if (c.fd >= 0) ::close(c.fd);
      c.fd = -1;
    }
    publish();
    return {};
  }
};

LoadWorker::LoadWorker(const LoadConfig& config, const PayloadPattern& pattern,
                       std::vector<uint64_t> global_ids, double ramp_per_s)
    : impl_(std::make_unique<Impl>(*this, config, pattern, std::move(global_ids), ramp_per_s)) {}

LoadWorker::~LoadWorker() = default;

std::string LoadWorker::run() { return impl_->run(); }

size_t LoadWorker::conn_struct_bytes() { return sizeof(Conn); }

void LoadWorker::take_interval(HdrHistogram* into) {
  std::lock_guard<std::mutex> lock(publish_mu_);
  into->merge(published_);
  published_.reset();
}

std::string LoadWorker::first_connect_error() const {
  std::string out;
  for (size_t i = 0; i < kConnectFailKinds; ++i) {
    if (impl_->first_error[i].empty()) continue;
    if (!out.empty()) out += "; ";
    out +=
        std::string(connect_fail_name(static_cast<ConnectFail>(i))) + ": " + impl_->first_error[i];
  }
  return out;
}

}  // namespace c10m::loadclient
