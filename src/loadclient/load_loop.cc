#include "loadclient/load_loop.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "proto/frame.h"

namespace c10m::loadclient {
namespace {

constexpr size_t kStageArenaSize = 512 * 1024;   // staged requests of one turn, per loop
constexpr size_t kStageMaxRequest = 128 * 1024;  // larger requests (STREAM) are written directly
constexpr Nanos kLateThreshold = kMillisecond;
constexpr double kSaturatedCpuShare = 0.95;
constexpr double kStarvedShare = 0.10;         // run-queue wait per second that counts as starved
constexpr unsigned long kTimerSlackNs = 1000;  // kernel slack of the loop's own wake-ups
constexpr Nanos kRampBatch = kMillisecond;     // --ramp: one wake opens every connect due
                                               // within this (not one wake per connect)

Nanos thread_cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<Nanos>(ts.tv_sec) * kSecond + ts.tv_nsec;
}

// Kernel entries a loop made on its connections so far: as the report counts them (plain
// reads and writes, epoll waits, io_uring enters; ring operations ride in the enters).
uint64_t syscalls_so_far(const WorkerCounters& c) {
  return c.read_calls.load() + c.write_calls.load() - c.batched_ops.load() + c.wait_calls.load() +
         c.enter_calls.load();
}

// Context switches of the calling thread so far (voluntary + involuntary).
uint64_t thread_switches() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return static_cast<uint64_t>(ru.ru_nvcsw + ru.ru_nivcsw);
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

void ActiveState::push(const Pending& p) {
  if (count == ring.size()) grow();
  ring[(head + count) & (ring.size() - 1)] = p;
  ++count;
}

void ActiveState::pop() {
  head = (head + 1) & static_cast<uint32_t>(ring.size() - 1);
  --count;
  got = 0;
}

void ActiveState::grow() {
  const size_t n = ring.empty() ? 8 : ring.size() * 2;
  std::vector<Pending> r(n);
  for (uint32_t i = 0; i < count; ++i) r[i] = ring[(head + i) & (ring.size() - 1)];
  ring.swap(r);
  head = 0;
}

LoadLoop::LoadLoop(const LoadConfig& c, const PayloadPattern& p, std::vector<uint64_t> ids,
                   double r)
    : cfg_(c), conns_(ids.size()), stage_(kStageArenaSize), pat_(p), ramp_(r), timers_(ids.size()) {
  for (size_t i = 0; i < ids.size(); ++i) {
    conns_[i].global_id = ids[i];
    conns_[i].active = is_active_conn(ids[i], cfg_.active_frac);
  }
  t0_ = cfg_.t0;
  t_warm_ = t0_ + cfg_.warmup;
  t_end_ = t_warm_ + cfg_.duration;
}

// ---- connections ---------------------------------------------------------------------
void LoadLoop::connect_failed(Conn& c, int err) {
  const ConnectFail kind = classify_connect_errno(err);
  ctr_.connect_fail[static_cast<size_t>(kind)].add();
  auto& msg = first_error_[static_cast<size_t>(kind)];
  if (msg.empty()) msg = std::strerror(err);
  c.state = ConnState::kClosed;
}

void LoadLoop::start_connect(uint32_t idx, Nanos now) {
  Conn& c = conns_[idx];
  ++c.gen;
  c.reader = proto::FrameReader{};
  c.goaway = c.got_error = false;
  if (const int rc = begin_connect(c, idx); rc < 0) {
    c.fd = -1;
    connect_failed(c, -rc);
    note_connect_phase(now);
    return;
  }
  c.state = ConnState::kConnecting;
  c.started = now;
  connecting_.emplace_back(idx, c.gen);
  ++in_progress_;
}

void LoadLoop::open_more(Nanos now) {
  size_t allowed = conns_.size();
  if (ramp_ > 0) {
    const double due = 1.0 + static_cast<double>(now + kRampBatch - t0_) * ramp_ / 1e9;
    if (due < static_cast<double>(allowed)) allowed = static_cast<size_t>(due);
  }
  while (next_to_open_ < allowed && in_progress_ < kMaxConnectsInProgress)
    start_connect(static_cast<uint32_t>(next_to_open_++), now);
  while (!reconnect_queue_.empty() && in_progress_ < kMaxConnectsInProgress) {
    const uint32_t idx = reconnect_queue_.back();
    reconnect_queue_.pop_back();
    start_connect(idx, now);
  }
}

Nanos LoadLoop::next_open_time() const {
  if (next_to_open_ >= conns_.size() || in_progress_ >= kMaxConnectsInProgress) return kNever;
  if (ramp_ <= 0) return 0;
  return t0_ + static_cast<Nanos>(static_cast<double>(next_to_open_) * 1e9 / ramp_);
}

void LoadLoop::expire_connects(Nanos now) {
  while (!connecting_.empty()) {
    const auto [idx, gen] = connecting_.front();
    Conn& c = conns_[idx];
    if (c.gen != gen || c.state != ConnState::kConnecting) {
      connecting_.pop_front();
      continue;
    }
    if (now - c.started < cfg_.connect_timeout) break;
    connecting_.pop_front();
    connect_done(c, idx, ETIMEDOUT, now);
  }
}

// The first time every connection was tried and none is in progress: how long the
// connects took (the connect rate's denominator).
void LoadLoop::note_connect_phase(Nanos now) {
  if (next_to_open_ == conns_.size() && in_progress_ == 0 && ctr_.connect_phase_ns.load() == 0)
    ctr_.connect_phase_ns.set(static_cast<uint64_t>(std::max<Nanos>(1, now - t0_)));
}

void LoadLoop::connect_done(Conn& c, uint32_t idx, int err, Nanos now) {
  --in_progress_;
  note_connect_phase(now);
  if (err != 0) {
    release_socket(c, idx);
    c.fd = -1;
    ++c.gen;
    connect_failed(c, err);
    return;
  }
  connected(c, idx, now);
}

void LoadLoop::connected(Conn& c, uint32_t idx, Nanos now) {
  c.state = ConnState::kOpen;
  ctr_.conns_opened.add();
  ctr_.conns_open.add();
  if (!c.active || !sending_) return;
  if (!c.act) {
    c.act = std::make_unique<ActiveState>();
    c.act->rng = Rng::for_stream(cfg_.seed, c.global_id);
  }
  if (cfg_.closed_loop()) {
    for (uint32_t k = 0; k < cfg_.inflight && c.state == ConnState::kOpen; ++k)
      send_op(c, idx, now, now);
  } else {
    timers_.push(idx,
                 std::max(now, t0_ + cfg_.sends_from) + cfg_.schedule.first_offset(c.act->rng));
  }
}

void LoadLoop::close_conn(Conn& c, uint32_t idx, CloseReason why) {
  if (c.fd >= 0) release_socket(c, idx);
  c.fd = -1;
  ++c.gen;
  if (c.state == ConnState::kOpen) ctr_.conns_open.sub();
  c.state = ConnState::kClosed;
  timers_.remove(idx);
  if (c.act) {
    if (c.act->count) {
      ctr_.unanswered.add(c.act->count);
      owed_ -= c.act->count;
    }
    c.act->count = 0;
    c.act->head = 0;
    c.act->got = 0;
    c.act->staged = {};  // its staged bytes are abandoned in the arena
    std::vector<uint8_t>().swap(c.act->wq);
    c.act->wq_off = 0;
  }
  if (why == CloseReason::kUnexpected) ctr_.unexpected_closes.add();
  if (cfg_.reconnect && sending_ && why != CloseReason::kMismatch) {
    ctr_.reconnects.add();
    reconnect_queue_.push_back(idx);
  }
}

// ---- writing -------------------------------------------------------------------------
void LoadLoop::queue_rest(Conn& c, uint32_t idx, const uint8_t* data, size_t len) {
  ActiveState& a = *c.act;
  const bool was_empty = a.wq.empty();
  a.wq.insert(a.wq.end(), data, data + len);
  if (was_empty) {
    a.wq_off = 0;
    want_writable(c, idx);
  }
}

ssize_t LoadLoop::took(Conn& c, uint32_t idx, ssize_t n) {
  ctr_.write_calls.add();
  if (n == -EAGAIN) return 0;
  if (n < 0) {
    close_conn(c, idx, CloseReason::kUnexpected);
    return -1;
  }
  ctr_.bytes_out.add(static_cast<uint64_t>(n));
  return n;
}

ssize_t LoadLoop::queued_sent(Conn& c, uint32_t idx, ssize_t n) {
  n = took(c, idx, n);
  if (n <= 0) return n;
  ActiveState& a = *c.act;
  a.wq_off += static_cast<size_t>(n);
  if (a.wq_off == a.wq.size()) {
    std::vector<uint8_t>().swap(a.wq);
    a.wq_off = 0;
    writable_done(c, idx);
  }
  return n;
}

void LoadLoop::queue_chain(Conn& c, uint32_t idx, uint32_t s, size_t skip) {
  for (; s != WriteStage::kNone; s = stage_.segment(s).next) {
    const WriteStage::Segment& seg = stage_.segment(s);
    if (skip >= seg.len) {
      skip -= seg.len;
      continue;
    }
    queue_rest(c, idx, stage_.bytes(seg) + skip, seg.len - skip);
    skip = 0;
  }
}

uint32_t LoadLoop::gather(uint32_t s, iovec* iov, int* cnt, size_t* want) const {
  *cnt = 0;
  *want = 0;
  for (; s != WriteStage::kNone && *cnt < kMaxIov; s = stage_.segment(s).next) {
    const WriteStage::Segment& seg = stage_.segment(s);
    iov[(*cnt)++] = {const_cast<uint8_t*>(stage_.bytes(seg)), seg.len};
    *want += seg.len;
  }
  return s;
}

bool LoadLoop::wrote(Conn& c, uint32_t idx, uint32_t first, ssize_t n, size_t want) {
  n = took(c, idx, n);
  if (n < 0) return false;
  if (static_cast<size_t>(n) == want) return true;
  ctr_.partial_writes.add();
  queue_chain(c, idx, first, static_cast<size_t>(n));
  return false;
}

uint32_t LoadLoop::take_staged(Conn& c, uint32_t idx) {
  if (!c.act) return WriteStage::kNone;
  ActiveState& a = *c.act;
  const uint32_t s = a.staged.head;
  a.staged = {};
  if (s == WriteStage::kNone || c.state != ConnState::kOpen) return WriteStage::kNone;
  if (!a.wq.empty()) {
    queue_chain(c, idx, s, 0);
    return WriteStage::kNone;
  }
  return s;
}

// ---- sending -------------------------------------------------------------------------
size_t LoadLoop::request_bytes(const Pending& p) const {
  switch (cfg_.op) {
    case Op::kPing:
      return proto::kHeaderSize;
    case Op::kEcho:
    case Op::kSink:
      return proto::kHeaderSize + p.size;
    case Op::kStream:
      return proto::kHeaderSize + proto::kStreamPayloadSize + p.size +
             proto::kHeaderSize * size_t{chunk_count(p.size, cfg_.chunk)};
    case Op::kFetch:
      return proto::kHeaderSize + proto::kStreamPayloadSize;
  }
  return 0;
}

// Writes the request's frames to `out` (request_bytes(p) bytes); returns the frame count.
uint64_t LoadLoop::build_request(uint8_t* out, const Pending& p) const {
  const Op op = cfg_.op;
  switch (op) {
    case Op::kPing:
      proto::write_header(out, proto::FrameType::kPing, 0);
      return 1;
    case Op::kEcho:
    case Op::kSink:
      proto::write_header(out, op == Op::kEcho ? proto::FrameType::kEcho : proto::FrameType::kSink,
                          static_cast<uint16_t>(p.size));
      std::memcpy(out + proto::kHeaderSize, pat_.at(p.pat_off), p.size);
      return 1;
    case Op::kStream: {
      proto::write_header(out, proto::FrameType::kStream, proto::kStreamPayloadSize);
      proto::write_stream_spec(out + proto::kHeaderSize, {p.size, cfg_.chunk});
      size_t len = proto::kHeaderSize + proto::kStreamPayloadSize;
      for (uint32_t off = 0; off < p.size; off += cfg_.chunk) {
        const uint32_t n = std::min(cfg_.chunk, p.size - off);
        proto::write_header(out + len, proto::FrameType::kChunk, static_cast<uint16_t>(n));
        std::memcpy(out + len + proto::kHeaderSize, pat_.at(p.pat_off + off), n);
        len += proto::kHeaderSize + n;
      }
      return 1 + uint64_t{chunk_count(p.size, cfg_.chunk)};
    }
    case Op::kFetch:
      proto::write_header(out, proto::FrameType::kFetch, proto::kStreamPayloadSize);
      proto::write_stream_spec(out + proto::kHeaderSize, {p.size, cfg_.chunk});
      return 1;
  }
  return 0;
}

// Stages one request (written at the end of the turn), or writes it at once when it is
// too large to stage. `intended`: when the schedule (or the reply it replaces) wanted it
// sent; `now`: this turn's clock.
void LoadLoop::send_op(Conn& c, uint32_t idx, Nanos intended, Nanos now) {
  ActiveState& a = *c.act;
  Pending p;
  p.origin = intended < now ? intended : now;
  p.measured = intended >= t_warm_ && intended < t_end_;
  const Op op = cfg_.op;
  if (op != Op::kPing) p.size = cfg_.payload.pick(a.rng);
  if (op == Op::kEcho || op == Op::kSink || op == Op::kStream)
    p.pat_off = PayloadPattern::pick_offset(a.rng);
  const size_t len = request_bytes(p);
  if (len > kStageMaxRequest) {
    if (!flush_conn(c, idx)) return;  // what it staged earlier goes first
    const uint64_t frames = build_request(wbuf_.data(), p);
    account_send(a, p, intended, now, frames);
    write_large(c, idx, wbuf_.data(), len);
    return;
  }
  if (stage_.room() < len) {
    flush_staged();  // a full arena ends the turn early
    if (c.state != ConnState::kOpen) return;
  }
  const uint64_t frames = build_request(stage_.reserve(len), p);
  stage_.commit(a.staged, idx, len);
  account_send(a, p, intended, now, frames);
}

void LoadLoop::account_send(ActiveState& a, const Pending& p, Nanos intended, Nanos now,
                            uint64_t frames) {
  a.push(p);
  ++owed_;
  ctr_.ops_sent.add();
  ctr_.frames_out.add(frames);
  if (p.measured) {
    ctr_.sent_measured.add();
    if (now > intended) {
      ctr_.send_lag_ns.add(static_cast<uint64_t>(now - intended));
      if (now - intended > kLateThreshold) ctr_.late_sends.add();
    } else if (now < intended) {
      ctr_.early_sends.add();
    }
  }
}

// Every send due by now + send_slack goes in this turn (early ones are timed from when
// they actually leave, late ones from when they should have left).
void LoadLoop::fire_timers(Nanos now) {
  const Nanos horizon = now + cfg_.send_slack;
  while (!timers_.empty() && timers_.top_when() <= horizon) {
    const uint32_t idx = timers_.top_conn();
    const Nanos when = timers_.top_when();
    if (when >= t_end_) {
      timers_.pop();
      continue;
    }
    Conn& c = conns_[idx];
    send_op(c, idx, when, now);                 // late sends still go, timed from `when`
    if (c.state != ConnState::kOpen) continue;  // closed: it left the heap
    const Nanos next = when + cfg_.schedule.next_gap(c.act->rng);
    if (timers_.top_conn() == idx) {
      timers_.reschedule_top(next);
    } else {
      timers_.remove(idx);
      timers_.push(idx, next);
    }
  }
}

// ---- receiving -----------------------------------------------------------------------
bool LoadLoop::header_ok(Conn& c, proto::FrameHeader h) {
  if (h.type == static_cast<uint8_t>(proto::FrameType::kGoaway)) return h.length == 0;
  if (h.type == static_cast<uint8_t>(proto::FrameType::kError)) {
    c.error_code = 0;
    return h.length >= 1 && h.length <= 1 + proto::kMaxErrorReason;
  }
  if (!c.act || c.act->count == 0) return false;  // a reply nobody asked for
  const Pending& p = c.act->front();
  const uint64_t got = c.act->got;
  switch (cfg_.op) {
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
      const uint64_t expect = got < p.size ? std::min<uint64_t>(cfg_.chunk, p.size - got) : 0;
      return h.length == expect;
    }
  }
  return false;
}

void LoadLoop::on_payload(Conn& c, std::span<const uint8_t> piece) {
  const proto::FrameHeader h = c.reader.header();
  const size_t pos = h.length - c.reader.remaining() - piece.size();
  if (h.type == static_cast<uint8_t>(proto::FrameType::kError)) {
    if (pos == 0) c.error_code = piece[0];
    return;
  }
  Pending& p = c.act->front();
  if (cfg_.op == Op::kEcho) {
    if (std::memcmp(piece.data(), pat_.at(p.pat_off) + pos, piece.size()) != 0) p.bad = true;
  } else if (cfg_.op == Op::kFetch) {
    const size_t start = (c.act->got + pos) % proto::kFetchModulus;
    if (std::memcmp(piece.data(), fetch_table_.data() + start, piece.size()) != 0) p.bad = true;
  }
}

// Returns false when the connection was closed.
bool LoadLoop::on_frame_end(Conn& c, uint32_t idx, Nanos now) {
  const proto::FrameHeader h = c.reader.header();
  ctr_.frames_in.add();
  if (h.type == static_cast<uint8_t>(proto::FrameType::kGoaway)) {
    ctr_.goaways.add();
    c.goaway = true;
    timers_.remove(idx);
    if (!c.act || c.act->count == 0) {
      close_conn(c, idx, CloseReason::kGoaway);
      return false;
    }
    return true;
  }
  if (h.type == static_cast<uint8_t>(proto::FrameType::kError)) {
    const uint8_t code = c.error_code;
    ctr_.error_frames[code >= 1 && code <= 6 ? code : 7].add();
    c.got_error = true;  // the server closes next
    return true;
  }
  ActiveState& a = *c.act;
  const Pending& p = a.front();
  bool done = false;
  switch (cfg_.op) {
    case Op::kPing:
    case Op::kEcho:
    case Op::kSink:
      done = true;
      break;
    case Op::kStream:
      done = ++a.got == 1 + uint64_t{chunk_count(p.size, cfg_.chunk)};
      break;
    case Op::kFetch:
      if (h.length == 0)
        done = true;
      else
        a.got += h.length;
      break;
  }
  if (done) complete(c, idx, now);
  return c.state == ConnState::kOpen;
}

void LoadLoop::complete(Conn& c, uint32_t idx, Nanos now) {
  ActiveState& a = *c.act;
  const Pending p = a.front();
  a.pop();
  --owed_;
  ctr_.ops_done.add();
  const Nanos latency = now - p.origin;
  interval_.record(latency);
  if (p.measured) {
    measured_.record(latency);
    ctr_.done_measured.add();
    ctr_.payload_bytes.add(p.size);
  }
  if (p.bad) ctr_.mismatches.add();
  if (c.goaway) {
    if (a.count == 0) close_conn(c, idx, CloseReason::kGoaway);
    return;
  }
  if (cfg_.closed_loop() && sending_) send_op(c, idx, now, now);
}

// Returns false when the connection was closed.
bool LoadLoop::consume(Conn& c, uint32_t idx, std::span<const uint8_t> in, Nanos now) {
  std::span<const uint8_t> piece;
  for (;;) {
    switch (c.reader.next(in, &piece)) {
      case proto::FrameReader::Event::kNeedMore:
        return true;
      case proto::FrameReader::Event::kHeader:
        if (!header_ok(c, c.reader.header())) {
          // The stream can no longer be trusted: count it and drop the connection.
          ctr_.mismatches.add();
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

bool LoadLoop::got_bytes(Conn& c, uint32_t idx, const uint8_t* buf, ssize_t n, Nanos now) {
  ctr_.read_calls.add();
  if (n == -EAGAIN) return false;
  if (n <= 0) {
    const bool expected = c.got_error || (c.goaway && (!c.act || c.act->count == 0));
    close_conn(c, idx,
               c.got_error ? CloseReason::kAfterError
               : expected  ? CloseReason::kGoaway
                           : CloseReason::kUnexpected);
    return false;
  }
  ctr_.bytes_in.add(static_cast<uint64_t>(n));
  return consume(c, idx, {buf, static_cast<size_t>(n)}, now);
}

// ---- the loop ------------------------------------------------------------------------
void LoadLoop::publish() {
  {
    std::lock_guard<std::mutex> lock(publish_mu_);
    published_.merge(interval_);
  }
  interval_.reset();
}

void LoadLoop::take_interval(HdrHistogram* into) {
  std::lock_guard<std::mutex> lock(publish_mu_);
  into->merge(published_);
  published_.reset();
}

std::string LoadLoop::first_connect_error() const {
  std::string out;
  for (size_t i = 0; i < kConnectFailKinds; ++i) {
    if (first_error_[i].empty()) continue;
    if (!out.empty()) out += "; ";
    out += std::string(connect_fail_name(static_cast<ConnectFail>(i))) + ": " + first_error_[i];
  }
  return out;
}

std::string LoadLoop::run() {
  // The loop times its own wake-ups (and batches them with --send-slack): keep the kernel
  // from adding its default 50 us of timer slack on top.
  prctl(PR_SET_TIMERSLACK, kTimerSlackNs, 0, 0, 0);
  if (cfg_.op == Op::kStream) {
    const uint32_t max_size = cfg_.payload.max_size();
    wbuf_.resize(proto::kHeaderSize + proto::kStreamPayloadSize + max_size +
                 proto::kHeaderSize * (chunk_count(max_size, cfg_.chunk) + 1));
  }
  if (cfg_.op == Op::kFetch) {
    fetch_table_.resize(proto::kFetchModulus + proto::kMaxPayload);
    for (size_t k = 0; k < fetch_table_.size(); ++k) fetch_table_[k] = proto::fetch_pattern_byte(k);
  }
  if (std::string err = setup_io(); !err.empty()) return err;
  const RunQueueClock run_queue;
  if (run_queue.now() >= 0) ctr_.schedstat_loops.add();
  Nanos next_tick = t0_ + kSecond;
  Nanos tick_cpu = thread_cpu_now();
  Nanos tick_wait = run_queue.now();
  Nanos tick_wall = mono_now();
  // The measured window's start: this loop's CPU, run-queue wait, switches and bytes.
  bool warm_marked = false;
  Nanos cpu_at_warm = 0, wait_at_warm = 0;
  uint64_t out_at_warm = 0, in_at_warm = 0, switches_at_warm = 0, syscalls_at_warm = 0;
  if (tick_wall >= t_warm_) {
    // This thread began after the window opened (a starved process starts late): its
    // counts since it was created, waiting for its first run included, belong to it.
    warm_marked = true;
    tick_cpu = tick_wait = 0;
    tick_wall = t0_;
  }
  for (;;) {
    Nanos now = mono_now();
    if (!warm_marked && now >= t_warm_) {
      warm_marked = true;
      cpu_at_warm = thread_cpu_now();
      wait_at_warm = run_queue.now();
      switches_at_warm = thread_switches();
      syscalls_at_warm = syscalls_so_far(ctr_);
      out_at_warm = ctr_.bytes_out.load();
      in_at_warm = ctr_.bytes_in.load();
    }
    if (sending_ && (now >= t_end_ || stop_.load(std::memory_order_relaxed))) {
      sending_ = false;
      if (warm_marked) {
        ctr_.cpu_ns.set(static_cast<uint64_t>(thread_cpu_now() - cpu_at_warm));
        const Nanos wait = run_queue.now();
        if (wait >= 0 && wait_at_warm >= 0)
          ctr_.run_delay_ns.set(static_cast<uint64_t>(wait - wait_at_warm));
        ctr_.context_switches.set(thread_switches() - switches_at_warm);
        ctr_.window_syscalls.set(syscalls_so_far(ctr_) - syscalls_at_warm);
        ctr_.wire_out.set(ctr_.bytes_out.load() - out_at_warm);
        ctr_.wire_in.set(ctr_.bytes_in.load() - in_at_warm);
      }
    }
    if (!sending_ && (owed_ == 0 || now >= t_end_ + cfg_.grace)) break;
    if (sending_) open_more(now);
    expire_connects(now);
    if (sending_) fire_timers(now);
    if (now >= next_tick) {
      const Nanos cpu = thread_cpu_now();
      const Nanos wait = run_queue.now();
      const double wall = static_cast<double>(now - tick_wall);
      if (sending_ && wall > 0) {
        if (static_cast<double>(cpu - tick_cpu) > kSaturatedCpuShare * wall)
          ctr_.saturated_ticks.add();
        if (wait >= 0 && tick_wait >= 0 &&
            static_cast<double>(wait - tick_wait) > kStarvedShare * wall)
          ctr_.starved_ticks.add();
      }
      tick_cpu = cpu;
      tick_wait = wait;
      tick_wall = now;
      publish();
      while (next_tick <= now) next_tick += kSecond;
    }
    // Every connection writes what the timers staged for it, once.
    flush_staged();
    if (!fatal_.empty()) return fatal_;
    Nanos wake = std::min(next_tick, sending_ ? t_end_ : t_end_ + cfg_.grace);
    if (sending_) {
      wake = std::min(wake, timers_.top_when());
      wake = std::min(wake, next_open_time());
      if (!reconnect_queue_.empty() && in_progress_ < kMaxConnectsInProgress) wake = now;
    }
    if (!connecting_.empty()) {
      const Conn& c = conns_[connecting_.front().first];
      if (c.gen == connecting_.front().second && c.state == ConnState::kConnecting)
        wake = std::min(wake, c.started + cfg_.connect_timeout);
      else
        wake = now;  // stale entry: pop it on the next pass
    }
    if (io_pending()) wake = now;
    wait_and_handle(wake);
    if (!fatal_.empty()) return fatal_;
  }
  // Measured requests still owed when the grace ran out.
  for (auto& c : conns_) {
    if (!c.act) continue;
    for (uint32_t i = 0; i < c.act->count; ++i)
      if (c.act->ring[(c.act->head + i) & (c.act->ring.size() - 1)].measured)
        ctr_.incomplete_at_end.add();
  }
  close_all();
  publish();
  return {};
}

}  // namespace c10m::loadclient
