#include "loadclient/epoll_load_loop.h"

#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sys/socket.h"

namespace c10m::loadclient {
namespace {

constexpr size_t kReadBufferSize = 256 * 1024;
constexpr int kMaxEvents = 256;                // per epoll_pwait2
constexpr size_t kBatchReadSlice = 16 * 1024;  // --io uring: each batched read's share
constexpr unsigned kBatchOps = 1024;           // --io uring: operations per io_uring_enter
constexpr int kReadBurst = 8;                  // reads per readiness event: no starvation

}  // namespace

EpollLoadLoop::EpollLoadLoop(const LoadConfig& c, const PayloadPattern& p,
                             std::vector<uint64_t> ids, double r)
    : LoadLoop(c, p, std::move(ids), r) {}

EpollLoadLoop::~EpollLoadLoop() {
  close_all();
  if (ep_ >= 0) ::close(ep_);
}

std::string EpollLoadLoop::setup_io() {
  static_assert(IoBatch::kMaxIov >= kMaxIov, "a staged chain's sendmsg must fit the batcher");
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) return std::string("epoll_create1: ") + std::strerror(errno);
  rbuf_.resize(kReadBufferSize);
  if (cfg_.io == IoMode::kUring) {
    io_ = std::make_unique<IoBatch>();
    if (std::string err = io_->init(kBatchOps); !err.empty()) return "--io uring: " + err;
    rbuf_.resize(kMaxEvents * kBatchReadSlice);
    ready_.reserve(kMaxEvents);
    reads_done_.reserve(kMaxEvents);
    sends_.reserve(kBatchOps);
  }
  return {};
}

void EpollLoadLoop::close_all() {
  for (auto& c : conns_) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
  }
}

// ---- connections ---------------------------------------------------------------------
int EpollLoadLoop::begin_connect(Conn& c, uint32_t idx) {
  const size_t na = cfg_.addrs.size();
  const sockaddr_in& dest = cfg_.addrs[c.global_id % na];
  const sockaddr_in* src =
      cfg_.srcips.empty() ? nullptr : &cfg_.srcips[(c.global_id / na) % cfg_.srcips.size()];
  const int fd = sys::connect_tcp(dest, src, /*nonblocking=*/true);
  if (fd < 0) return fd;
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.u64 = idx | (uint64_t{c.gen} << 32);
  if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int err = errno;
    ::close(fd);
    return -err;
  }
  c.fd = fd;
  return 0;
}

void EpollLoadLoop::release_socket(Conn& c, uint32_t) { ::close(c.fd); }

void EpollLoadLoop::set_events(Conn& c, uint32_t idx, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = idx | (uint64_t{c.gen} << 32);
  epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
}

void EpollLoadLoop::on_connect_event(Conn& c, uint32_t idx, Nanos now) {
  const int err = -sys::socket_error(c.fd);
  if (err == 0) {
    sys::SocketOptions opts;
    opts.nodelay = cfg_.nodelay;
    opts.sndbuf = cfg_.sndbuf;
    opts.rcvbuf = cfg_.rcvbuf;
    sys::apply_socket_options(c.fd, opts);
    set_events(c, idx, EPOLLIN | EPOLLRDHUP);
  }
  connect_done(c, idx, err, now);
}

// ---- writing -------------------------------------------------------------------------
// Queued bytes leave on EPOLLOUT (flush_queue).
void EpollLoadLoop::want_writable(Conn& c, uint32_t idx) {
  set_events(c, idx, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
}

void EpollLoadLoop::writable_done(Conn& c, uint32_t idx) {
  set_events(c, idx, EPOLLIN | EPOLLRDHUP);
}

void EpollLoadLoop::write_large(Conn& c, uint32_t idx, const uint8_t* data, size_t len) {
  ActiveState& a = *c.act;
  if (!a.wq.empty()) {
    queue_rest(c, idx, data, len);
    return;
  }
  const ssize_t n = took(c, idx, sys::write_some(c.fd, data, len));
  if (n < 0) return;
  if (static_cast<size_t>(n) < len) {
    ctr_.partial_writes.add();
    queue_rest(c, idx, data + n, len - static_cast<size_t>(n));
  }
}

// Writes a chain: one write (one segment) or writev (several, up to kMaxIov per call).
void EpollLoadLoop::write_chain(Conn& c, uint32_t idx, uint32_t s) {
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

bool EpollLoadLoop::flush_conn(Conn& c, uint32_t idx) {
  if (const uint32_t s = take_staged(c, idx); s != WriteStage::kNone) write_chain(c, idx, s);
  return c.state == ConnState::kOpen;
}

// --io uring: one io_uring_enter. Returns its completions (valid until the next one), or
// an empty span with fatal_ set when the ring failed.
std::span<const IoBatch::Result> EpollLoadLoop::submit_batch() {
  const unsigned ops = io_->queued();
  int err = 0;
  const std::span<const IoBatch::Result> res = io_->submit(&err);
  ctr_.enter_calls.add();
  ctr_.batched_ops.add(ops);
  if (err != 0) fatal_ = std::string("io_uring_enter: ") + std::strerror(err);
  return res;
}

// --io uring: the queued sends leave in one io_uring_enter; each result is handled as a
// write's (which never submits again).
void EpollLoadLoop::submit_sends() {
  for (const IoBatch::Result& r : submit_batch()) {
    const SendOp& op = sends_[r.tag];
    Conn& c = conns_[op.idx];
    if (c.gen == op.gen) wrote(c, op.idx, op.head, r.res, op.want);
  }
  sends_.clear();
}

// The end of a turn (or a full arena): every dirty connection writes once; with --io
// uring, all of them in one io_uring_enter.
void EpollLoadLoop::flush_staged() {
  if (stage_.idle()) return;
  for (const uint32_t idx : stage_.dirty()) {
    Conn& c = conns_[idx];
    if (!io_) {
      flush_conn(c, idx);
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
    sends_.push_back({idx, c.gen, s, want});
    const uint64_t tag = sends_.size() - 1;
    if (cnt == 1)
      io_->send(c.fd, iov[0].iov_base, iov[0].iov_len, tag);
    else
      io_->sendmsg(c.fd, iov, cnt, tag);
    if (io_->full()) submit_sends();
  }
  if (io_) submit_sends();
  stage_.reset();
}

// EPOLLOUT: continue the queue the kernel refused earlier.
void EpollLoadLoop::flush_queue(Conn& c, uint32_t idx) {
  if (!c.act || c.act->wq.empty()) return;
  ActiveState& a = *c.act;
  queued_sent(c, idx, sys::write_some(c.fd, a.wq.data() + a.wq_off, a.wq.size() - a.wq_off));
}

// ---- reading -------------------------------------------------------------------------
// Plain reads into `buf` until the socket is drained (at most kReadBurst).
void EpollLoadLoop::on_readable(Conn& c, uint32_t idx, uint8_t* buf, size_t cap) {
  for (int burst = 0; burst < kReadBurst; ++burst) {
    const ssize_t n = sys::read_some(c.fd, buf, cap);
    if (!got_bytes(c, idx, buf, n, mono_now()) || static_cast<size_t>(n) < cap) return;
  }
}

// --io uring: every connection of this epoll batch is read in one io_uring_enter, each
// into its own slice of rbuf_; a slice filled to the brim is drained with plain reads. The
// completions are copied first: consuming them stages requests, and a full arena submits
// sends through the same ring.
void EpollLoadLoop::read_batch() {
  for (size_t k = 0; k < ready_.size(); ++k)
    io_->recv(conns_[ready_[k].first].fd, rbuf_.data() + k * kBatchReadSlice, kBatchReadSlice, k);
  const std::span<const IoBatch::Result> res = submit_batch();
  reads_done_.assign(res.begin(), res.end());
  const Nanos now = mono_now();
  for (const IoBatch::Result& r : reads_done_) {
    const auto [idx, gen] = ready_[r.tag];
    Conn& c = conns_[idx];
    uint8_t* slice = rbuf_.data() + r.tag * kBatchReadSlice;
    if (c.gen == gen && got_bytes(c, idx, slice, r.res, now) &&
        static_cast<size_t>(r.res) == kBatchReadSlice)
      on_readable(c, idx, slice, kBatchReadSlice);
  }
  ready_.clear();
}

// ---- waiting -------------------------------------------------------------------------
void EpollLoadLoop::wait_and_handle(Nanos wake) {
  epoll_event events[kMaxEvents];
  const Nanos wait = std::max<Nanos>(0, wake - mono_now());
  timespec ts{static_cast<time_t>(wait / kSecond), static_cast<long>(wait % kSecond)};
  const int n = epoll_pwait2(ep_, events, kMaxEvents, &ts, nullptr);
  ctr_.wait_calls.add();
  if (n < 0 && errno != EINTR) {
    fatal_ = std::string("epoll_pwait2: ") + std::strerror(errno);
    return;
  }
  for (int i = 0; i < n; ++i) {
    const uint32_t idx = static_cast<uint32_t>(events[i].data.u64);
    const uint32_t gen = static_cast<uint32_t>(events[i].data.u64 >> 32);
    Conn& c = conns_[idx];
    if (c.gen != gen) continue;  // closed earlier in this batch
    if (c.state == ConnState::kConnecting) {
      on_connect_event(c, idx, mono_now());
    } else if (c.state == ConnState::kOpen) {
      if (events[i].events & EPOLLOUT) flush_queue(c, idx);
      if (c.gen == gen && (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        if (io_) {
          ready_.emplace_back(idx, gen);
          continue;  // read with the rest of the batch, written at the next turn's top
        }
        on_readable(c, idx, rbuf_.data(), rbuf_.size());
      }
    }
    // This connection's turn ends here: the requests its replies released leave now, in
    // one write, while the rest of the batch is served (the server is kept busy).
    if (!io_) flush_staged();
  }
  if (!ready_.empty()) read_batch();
}

}  // namespace c10m::loadclient
