#include "loadclient/load_worker.h"

#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <queue>
#include <span>

#include "proto/frame.h"
#include "proto/frame_reader.h"
#include "sys/socket.h"

namespace c10m::loadclient {
namespace {

constexpr size_t kReadBufferSize = 256 * 1024;
constexpr size_t kMaxConnectsInProgress = 512;  // per loop; keeps SYN bursts under the backlog
constexpr int kReadBurst = 8;                   // reads per readiness event: no starvation
constexpr Nanos kLateThreshold = kMillisecond;
constexpr double kSaturatedCpuShare = 0.95;

enum class State : uint8_t { kNew, kConnecting, kOpen, kClosed };
enum class CloseReason : uint8_t { kGoaway, kUnexpected, kMismatch, kAfterError };

// One request whose reply is owed.
struct Pending {
  Nanos intended = 0;    // when the schedule meant to send it: latency starts here
  uint32_t size = 0;     // payload / total bytes
  uint32_t pat_off = 0;  // where its bytes start in the PayloadPattern
  bool measured = false;
  bool bad = false;  // a reply byte differed
};

// Only active connections have one (allocated at connect).
struct ActiveState {
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

struct TimerEntry {
  Nanos when;
  uint32_t idx;
  uint32_t gen;
  bool operator>(const TimerEntry& o) const { return when > o.when; }
};

Nanos thread_cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<Nanos>(ts.tv_sec) * kSecond + ts.tv_nsec;
}

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
  Nanos started = 0;
  Nanos next_send = kNever;
  Rng rng;
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
  std::vector<uint8_t> wbuf;
  std::vector<uint8_t> fetch_table;  // fetch_table[k] = k mod 251, k < 251 + 65535
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<TimerEntry>> timers;
  std::deque<std::pair<uint32_t, uint32_t>> connecting;  // (idx, gen) in start order
  std::vector<uint32_t> reconnect_queue;
  size_t next_to_open = 0;
  size_t in_progress = 0;
  uint64_t owed = 0;
  bool sending = true;
  Nanos t0, t_warm, t_end;
  Nanos cpu_at_warm = -1;
  std::string first_error[kConnectFailKinds];

  Impl(LoadWorker& worker, const LoadConfig& c, const PayloadPattern& p, std::vector<uint64_t> ids,
       double r)
      : w(worker), cfg(c), pat(p), ctr(worker.counters_), conns(ids.size()), ramp(r) {
    for (size_t i = 0; i < ids.size(); ++i) {
      conns[i].global_id = ids[i];
      conns[i].active = is_active_conn(ids[i], cfg.active_frac);
      conns[i].rng = Rng::for_stream(cfg.seed, ids[i]);
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
    rbuf.resize(kReadBufferSize);
    const uint32_t max_size = cfg.payload.max_size();
    const uint32_t chunk = cfg.chunk;
    wbuf.resize(proto::kHeaderSize + proto::kStreamPayloadSize + max_size +
                proto::kHeaderSize * (chunk_count(max_size, chunk) + 1) + proto::kMaxFrame);
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
    sys::apply_socket_options(c.fd, opts);
    c.state = State::kOpen;
    set_events(c, idx, EPOLLIN | EPOLLRDHUP);
    ctr.conns_opened.add();
    ctr.conns_open.add();
    if (!c.active || !sending) return;
    if (!c.act) c.act = std::make_unique<ActiveState>();
    if (cfg.closed_loop()) {
      for (uint32_t k = 0; k < cfg.inflight && c.state == State::kOpen; ++k)
        send_op(c, idx, now, now);
    } else {
      c.next_send = now + cfg.schedule.first_offset(c.rng);
      timers.push({c.next_send, idx, c.gen});
    }
  }

  void close_conn(Conn& c, uint32_t idx, CloseReason why) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    ++c.gen;
    if (c.state == State::kOpen) ctr.conns_open.sub();
    c.state = State::kClosed;
    c.next_send = kNever;
    if (c.act) {
      if (c.act->count) {
        ctr.unanswered.add(c.act->count);
        owed -= c.act->count;
      }
      c.act->count = 0;
      c.act->head = 0;
      c.act->got = 0;
      std::vector<uint8_t>().swap(c.act->wq);
      c.act->wq_off = 0;
    }
    if (why == CloseReason::kUnexpected) ctr.unexpected_closes.add();
    if (cfg.reconnect && sending && why != CloseReason::kMismatch) {
      ctr.reconnects.add();
      reconnect_queue.push_back(idx);
    }
  }

  // ---- sending -----------------------------------------------------------------------
  void write_bytes(Conn& c, uint32_t idx, const uint8_t* data, size_t len) {
    ActiveState& a = *c.act;
    if (!a.wq.empty()) {
      a.wq.insert(a.wq.end(), data, data + len);
      return;
    }
    ssize_t n = sys::write_some(c.fd, data, len);
    if (n < 0) {
      if (n != -EAGAIN) {
        close_conn(c, idx, CloseReason::kUnexpected);
        return;
      }
      n = 0;
    }
    ctr.bytes_out.add(static_cast<uint64_t>(n));
    if (static_cast<size_t>(n) < len) {
      a.wq.assign(data + n, data + len);
      a.wq_off = 0;
      set_events(c, idx, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
    }
  }

  void flush(Conn& c, uint32_t idx) {
    if (!c.act || c.act->wq.empty()) return;
    ActiveState& a = *c.act;
    const ssize_t n = sys::write_some(c.fd, a.wq.data() + a.wq_off, a.wq.size() - a.wq_off);
    if (n < 0) {
      if (n != -EAGAIN) close_conn(c, idx, CloseReason::kUnexpected);
      return;
    }
    ctr.bytes_out.add(static_cast<uint64_t>(n));
    a.wq_off += static_cast<size_t>(n);
    if (a.wq_off == a.wq.size()) {
      std::vector<uint8_t>().swap(a.wq);
      a.wq_off = 0;
      set_events(c, idx, EPOLLIN | EPOLLRDHUP);
    }
  }

  void send_op(Conn& c, uint32_t idx, Nanos intended, Nanos now) {
    Pending p;
    p.intended = intended;
    p.measured = intended >= t_warm && intended < t_end;
    const Op op = cfg.op;
    if (op != Op::kPing) p.size = cfg.payload.pick(c.rng);
    if (op == Op::kEcho || op == Op::kSink || op == Op::kStream)
      p.pat_off = PayloadPattern::pick_offset(c.rng);
    uint8_t* out = wbuf.data();
    size_t len = 0;
    switch (op) {
      case Op::kPing:
        proto::write_header(out, proto::FrameType::kPing, 0);
        len = proto::kHeaderSize;
        break;
      case Op::kEcho:
      case Op::kSink:
        proto::write_header(out,
                            op == Op::kEcho ? proto::FrameType::kEcho : proto::FrameType::kSink,
                            static_cast<uint16_t>(p.size));
        std::memcpy(out + proto::kHeaderSize, pat.at(p.pat_off), p.size);
        len = proto::kHeaderSize + p.size;
        break;
      case Op::kStream: {
        proto::write_header(out, proto::FrameType::kStream, proto::kStreamPayloadSize);
        proto::write_stream_spec(out + proto::kHeaderSize, {p.size, cfg.chunk});
        len = proto::kHeaderSize + proto::kStreamPayloadSize;
        for (uint32_t off = 0; off < p.size; off += cfg.chunk) {
          const uint32_t n = std::min(cfg.chunk, p.size - off);
          proto::write_header(out + len, proto::FrameType::kChunk, static_cast<uint16_t>(n));
          std::memcpy(out + len + proto::kHeaderSize, pat.at(p.pat_off + off), n);
          len += proto::kHeaderSize + n;
        }
        break;
      }
      case Op::kFetch:
        proto::write_header(out, proto::FrameType::kFetch, proto::kStreamPayloadSize);
        proto::write_stream_spec(out + proto::kHeaderSize, {p.size, cfg.chunk});
        len = proto::kHeaderSize + proto::kStreamPayloadSize;
        break;
    }
    c.act->push(p);
    ++owed;
    ctr.ops_sent.add();
    if (p.measured) {
      ctr.sent_measured.add();
      if (now - intended > kLateThreshold) ctr.late_sends.add();
    }
    write_bytes(c, idx, out, len);
  }

  void fire_timers(Nanos now) {
    while (!timers.empty() && timers.top().when <= now) {
      const TimerEntry t = timers.top();
      timers.pop();
      Conn& c = conns[t.idx];
      if (c.gen != t.gen || c.state != State::kOpen || c.goaway || c.next_send != t.when) continue;
      if (t.when >= t_end) continue;
      send_op(c, t.idx, t.when, now);  // late sends still go, timed from t.when
      if (c.state != State::kOpen) continue;
      c.next_send = t.when + cfg.schedule.next_gap(c.rng);
      timers.push({c.next_send, t.idx, c.gen});
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
    if (h.type == static_cast<uint8_t>(proto::FrameType::kGoaway)) {
      ctr.goaways.add();
      c.goaway = true;
      c.next_send = kNever;
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
    const Nanos latency = now - p.intended;
    w.interval_.record(latency);
    if (p.measured) {
      w.measured_.record(latency);
      ctr.done_measured.add();
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

  void on_readable(Conn& c, uint32_t idx) {
    for (int burst = 0; burst < kReadBurst; ++burst) {
      const ssize_t n = sys::read_some(c.fd, rbuf.data(), rbuf.size());
      if (n == -EAGAIN) return;
      if (n <= 0) {
        const bool expected = c.got_error || (c.goaway && (!c.act || c.act->count == 0));
        close_conn(c, idx,
                   c.got_error ? CloseReason::kAfterError
                   : expected  ? CloseReason::kGoaway
                               : CloseReason::kUnexpected);
        return;
      }
      ctr.bytes_in.add(static_cast<uint64_t>(n));
      if (!consume(c, idx, {rbuf.data(), static_cast<size_t>(n)}, mono_now())) return;
      if (static_cast<size_t>(n) < rbuf.size()) return;
    }
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
    epoll_event events[256];
    Nanos next_tick = t0 + kSecond;
    Nanos tick_cpu = thread_cpu_now();
    Nanos tick_wall = mono_now();
    for (;;) {
      Nanos now = mono_now();
      if (cpu_at_warm < 0 && now >= t_warm) cpu_at_warm = thread_cpu_now();
      if (sending && (now >= t_end || w.stop_.load(std::memory_order_relaxed))) {
        sending = false;
        if (cpu_at_warm >= 0) ctr.cpu_ns.set(static_cast<uint64_t>(thread_cpu_now() - cpu_at_warm));
      }
      if (!sending && (owed == 0 || now >= t_end + cfg.grace)) break;
      if (sending) open_more(now);
      expire_connects(now);
      if (sending) fire_timers(now);
      if (now >= next_tick) {
        const Nanos cpu = thread_cpu_now();
        if (sending && now - tick_wall > 0 &&
            static_cast<double>(cpu - tick_cpu) >
                kSaturatedCpuShare * static_cast<double>(now - tick_wall))
          ctr.saturated_ticks.add();
        tick_cpu = cpu;
        tick_wall = now;
        publish();
        while (next_tick <= now) next_tick += kSecond;
      }
      Nanos wake = std::min(next_tick, sending ? t_end : t_end + cfg.grace);
      if (sending) {
        if (!timers.empty()) wake = std::min(wake, timers.top().when);
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
      const Nanos wait = std::max<Nanos>(0, wake - now);
      timespec ts{static_cast<time_t>(wait / kSecond), static_cast<long>(wait % kSecond)};
      const int n = epoll_pwait2(ep, events, 256, &ts, nullptr);
      if (n < 0 && errno != EINTR) return std::string("epoll_pwait2: ") + std::strerror(errno);
      for (int i = 0; i < n; ++i) {
        const uint32_t idx = static_cast<uint32_t>(events[i].data.u64);
        const uint32_t gen = static_cast<uint32_t>(events[i].data.u64 >> 32);
        Conn& c = conns[idx];
        if (c.gen != gen) continue;  // closed earlier in this batch
        if (c.state == State::kConnecting) {
          on_connected(c, idx, mono_now());
          continue;
        }
        if (c.state != State::kOpen) continue;
        if (events[i].events & EPOLLOUT) {
          flush(c, idx);
          if (c.gen != gen) continue;
        }
        if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c, idx);
      }
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
