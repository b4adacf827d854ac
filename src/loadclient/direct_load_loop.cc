#include "loadclient/direct_load_loop.h"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace c10m::loadclient {
namespace {

constexpr uint32_t kMaxSends = 1024;           // sends prepared per batch of enters
constexpr uint32_t kMaxFixedFiles = 1u << 20;  // the kernel's cap on one table
constexpr int kMaxRegisteredRings = 16;        // registered ring fds per thread (kernel)
constexpr int kMaxEvents = 64;

// Rings of active connections receive the load's replies; rings of idle ones only a
// GOAWAY or an ERROR now and then. Incremental consumption lets many receives share one
// buffer either way.
constexpr DirectRing::Options kActiveRing{1, 2048, 8192, 16, 64 * 1024};
constexpr DirectRing::Options kIdleRing{1, 1024, 4096, 8, 4 * 1024};

}  // namespace

std::vector<uint64_t> actives_first(std::vector<uint64_t> ids, double active_frac) {
  std::stable_partition(ids.begin(), ids.end(),
                        [&](uint64_t g) { return is_active_conn(g, active_frac); });
  return ids;
}

DirectLoadLoop::DirectLoadLoop(const LoadConfig& c, const PayloadPattern& p,
                               std::vector<uint64_t> ids, double r)
    : LoadLoop(c, p, actives_first(std::move(ids), c.active_frac), r) {}

DirectLoadLoop::~DirectLoadLoop() {
  close_all();
  if (ep_ >= 0) ::close(ep_);
}

std::string DirectLoadLoop::setup_io() {
  nodelay_ = cfg_.nodelay ? 1 : 0;
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  const uint64_t n = conns_.size();
  per_ring_ = static_cast<uint32_t>(std::clamp<uint64_t>(
      std::min<uint64_t>(lim.rlim_cur, kMaxFixedFiles), 1, std::max<uint64_t>(n, 1)));
  uint64_t actives = 0;
  for (const Conn& c : conns_) actives += c.active ? 1 : 0;
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) return std::string("epoll_create1: ") + std::strerror(errno);
  const uint64_t count = (n + per_ring_ - 1) / per_ring_;
  for (uint64_t r = 0; r < count; ++r) {
    const uint64_t first = r * per_ring_;
    DirectRing::Options o = first < actives ? kActiveRing : kIdleRing;
    o.slots = static_cast<uint32_t>(std::min<uint64_t>(per_ring_, n - first));
    auto ring = std::make_unique<DirectRing>();
    if (std::string err = ring->init(o, &ctr_.enter_calls); !err.empty())
      return "--io direct: ring " + std::to_string(r + 1) + " of " + std::to_string(count) + ": " +
             err;
    if (static_cast<int>(r) < kMaxRegisteredRings) ring->register_fd();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = r;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, ring->ring_fd(), &ev) != 0)
      return std::string("--io direct: epoll_ctl on a ring: ") + std::strerror(errno);
    rings_.push_back(std::move(ring));
  }
  ring_dirty_.assign(rings_.size(), 0);
  ctr_.rings.add(rings_.size());
  sends_ = std::make_unique_for_overwrite<SendOp[]>(kMaxSends);  // touched as used
  completions_.reserve(4096);
  return {};
}

void DirectLoadLoop::close_all() {
  rings_.clear();  // closing a ring closes every direct descriptor it holds
  for (Conn& c : conns_) c.fd = -1;
}

DirectRing& DirectLoadLoop::ring_of(uint32_t idx) {
  const uint32_t r = ring_index(idx);
  if (!ring_dirty_[r]) {
    ring_dirty_[r] = 1;
    dirty_rings_.push_back(r);
  }
  return *rings_[r];
}

// ---- connections ---------------------------------------------------------------------
int DirectLoadLoop::begin_connect(Conn& c, uint32_t idx) {
  const size_t na = cfg_.addrs.size();
  DirectRing::SocketSetup s{};
  s.dest = &cfg_.addrs[c.global_id % na];
  s.source = cfg_.srcips.empty() ? nullptr : &cfg_.srcips[(c.global_id / na) % cfg_.srcips.size()];
  s.nodelay = &nodelay_;
  s.sndbuf = cfg_.sndbuf > 0 ? &cfg_.sndbuf : nullptr;
  s.rcvbuf = cfg_.rcvbuf > 0 ? &cfg_.rcvbuf : nullptr;
  ring_of(idx).connect(slot(idx), s, ud(kStep, idx, c.gen), ud(kConnect, idx, c.gen));
  c.fd = static_cast<int>(slot(idx));
  c.io_flags = kConnectArmed;
  return 0;
}

void DirectLoadLoop::release_socket(Conn& c, uint32_t idx) {
  // A cancel only where something may be pending (a connect, the receive, a POLLOUT).
  ring_of(idx).close_slot(slot(idx), c.io_flags != 0, ud(kIgnore, idx, c.gen));
  c.io_flags = 0;
}

void DirectLoadLoop::arm_recv(Conn& c, uint32_t idx) {
  ring_of(idx).recv(slot(idx), ud(kRecv, idx, c.gen));
  c.io_flags |= kRecvArmed;
}

// ---- writing -------------------------------------------------------------------------
void DirectLoadLoop::want_writable(Conn& c, uint32_t idx) {
  if (c.io_flags & kPollArmed) return;
  ring_of(idx).poll_out(slot(idx), ud(kPollOut, idx, c.gen));
  c.io_flags |= kPollArmed;
}

// A large request joins the queue (behind what the connection staged before it) and
// leaves once POLLOUT says the socket takes bytes.
bool DirectLoadLoop::flush_conn(Conn& c, uint32_t idx) {
  if (const uint32_t s = take_staged(c, idx); s != WriteStage::kNone) queue_chain(c, idx, s, 0);
  return true;
}

void DirectLoadLoop::write_large(Conn& c, uint32_t idx, const uint8_t* data, size_t len) {
  queue_rest(c, idx, data, len);
}

DirectLoadLoop::SendOp& DirectLoadLoop::next_send() {
  if (nsends_ == kMaxSends) submit_and_reap_sends();
  ++sends_open_;
  return sends_[nsends_++];
}

// The end of a turn (or a full arena): every dirty connection sends once, and every queue
// POLLOUT released; then each ring with requests makes one io_uring_enter, in which the
// sends complete.
void DirectLoadLoop::flush_staged() {
  for (const uint32_t idx : stage_.dirty()) {
    Conn& c = conns_[idx];
    const uint32_t s = take_staged(c, idx);
    if (s == WriteStage::kNone) continue;
    iovec iov[kMaxIov];
    int cnt;
    size_t want;
    if (gather(s, iov, &cnt, &want) != WriteStage::kNone) {
      // More segments than one sendmsg takes (a catch-up after a stall): the chain waits
      // in the queue and leaves whole at POLLOUT.
      queue_chain(c, idx, s, 0);
      continue;
    }
    SendOp& op = next_send();
    op.idx = idx;
    op.gen = c.gen;
    op.head = s;
    op.want = want;
    op.queue = false;
    const uint64_t tag = ud(kSend, nsends_ - 1, 0);
    if (cnt == 1) {
      ring_of(idx).send(slot(idx), iov[0].iov_base, iov[0].iov_len, tag);
    } else {
      std::memcpy(op.iov, iov, sizeof(iovec) * static_cast<size_t>(cnt));
      op.hdr = {};
      op.hdr.msg_iov = op.iov;
      op.hdr.msg_iovlen = static_cast<size_t>(cnt);
      ring_of(idx).sendmsg(slot(idx), &op.hdr, tag);
    }
  }
  for (const auto& [idx, gen] : writable_) {
    Conn& c = conns_[idx];
    if (c.gen != gen || c.state != ConnState::kOpen || !c.act || c.act->wq.empty()) continue;
    const ActiveState& a = *c.act;
    SendOp& op = next_send();
    op.idx = idx;
    op.gen = gen;
    op.queue = true;
    ring_of(idx).send(slot(idx), a.wq.data() + a.wq_off, a.wq.size() - a.wq_off,
                      ud(kSend, nsends_ - 1, 0));
  }
  writable_.clear();
  submit_and_reap_sends();
  stage_.reset();
}

// Requests queued outside a flush (a close after a failed send) leave before the loop
// sleeps.
void DirectLoadLoop::submit_dirty() {
  for (const uint32_t r : dirty_rings_) {
    ring_dirty_[r] = 0;
    if (rings_[r]->queued() == 0) continue;
    const int rc = rings_[r]->submit();
    if (rc < 0 && fatal_.empty()) fatal_ = std::string("io_uring_enter: ") + std::strerror(-rc);
  }
  dirty_rings_.clear();
}

void DirectLoadLoop::submit_and_reap_sends() {
  submit_dirty();
  reap_all();
  if (sends_open_ != 0 && fatal_.empty())
    fatal_ = "--io direct: " + std::to_string(sends_open_) +
             " non-blocking sends did not complete inside io_uring_enter";
  nsends_ = 0;
  sends_open_ = 0;
}

// Every ring's completions: sends are handled at once (their bytes are still staged),
// the rest are kept, in order, for handle().
void DirectLoadLoop::reap_all() {
  for (uint32_t r = 0; r < rings_.size(); ++r) {
    const int rc = rings_[r]->reap([&](uint64_t u, int32_t res, uint32_t flags) {
      if ((u >> 56) == kSend)
        on_send_done(u, res);
      else
        completions_.push_back({u, res, flags, r});
    });
    if (rc < 0 && fatal_.empty()) fatal_ = std::string("io_uring_enter: ") + std::strerror(-rc);
  }
}

void DirectLoadLoop::on_send_done(uint64_t u, int32_t res) {
  const SendOp& op = sends_[static_cast<uint32_t>(u)];
  --sends_open_;
  Conn& c = conns_[op.idx];
  if (c.gen != op.gen) return;  // closed meanwhile
  ctr_.batched_ops.add();
  if (!op.queue) {
    wrote(c, op.idx, op.head, res, op.want);  // a short send queues the rest (POLLOUT)
    return;
  }
  if (queued_sent(c, op.idx, res) >= 0 && c.state == ConnState::kOpen && !c.act->wq.empty())
    want_writable(c, op.idx);
}

// ---- completions ---------------------------------------------------------------------
void DirectLoadLoop::on_recv(Conn& c, uint32_t idx, const Completion& e,
                             std::span<const uint8_t> bytes, Nanos now) {
  if (!(e.flags & IORING_CQE_F_MORE)) c.io_flags &= ~kRecvArmed;
  if (e.res == -ENOBUFS) {
    ctr_.recv_enobufs.add();  // the buffer ring ran dry: the bytes wait in the socket
  } else if (e.res != -EAGAIN) {  // (not expected from a multishot receive: armed again)
    ctr_.batched_ops.add();
    if (!got_bytes(c, idx, bytes.data(), e.res > 0 ? static_cast<ssize_t>(bytes.size()) : e.res,
                   now))
      return;
  }
  if (c.state == ConnState::kOpen && !(c.io_flags & kRecvArmed)) {
    ctr_.recv_rearms.add();
    arm_recv(c, idx);
  }
}

void DirectLoadLoop::handle(const Completion& e, Nanos now) {
  const auto idx = static_cast<uint32_t>(e.ud);
  const auto op = static_cast<Op>(e.ud >> 56);
  if (op == kIgnore) return;
  Conn& c = conns_[idx];
  const bool live = current(c, e.ud);
  switch (op) {
    case kRecv: {
      // Every piece is taken, stale or not: the buffer's next piece starts behind it.
      std::span<const uint8_t> bytes;
      const auto bid = static_cast<uint16_t>(e.flags >> 16);
      const bool has_buffer = (e.flags & IORING_CQE_F_BUFFER) != 0;
      if (has_buffer && e.res > 0) {
        bytes = rings_[e.ring]->take(bid, static_cast<uint32_t>(e.res));
        if (bytes.empty()) {
          fatal_ = "--io direct: a receive completion named a buffer out of range";
          return;
        }
      }
      if (live && c.state == ConnState::kOpen) on_recv(c, idx, e, bytes, now);
      if (has_buffer) rings_[e.ring]->release(bid, (e.flags & DirectRing::kCqeBufMore) != 0);
      break;
    }
    case kStep:  // a step before the connect failed (the rest of the chain is cancelled)
      if (live && c.state == ConnState::kConnecting && e.res != -ECANCELED) {
        c.io_flags &= ~kConnectArmed;
        connect_done(c, idx, -e.res, now);
      }
      break;
    case kConnect:
      if (!live || c.state != ConnState::kConnecting) break;
      c.io_flags &= ~kConnectArmed;
      if (e.res == 0) arm_recv(c, idx);
      connect_done(c, idx, e.res < 0 ? -e.res : 0, now);
      break;
    case kPollOut:
      if (!live) break;
      c.io_flags &= ~kPollArmed;
      if (c.state == ConnState::kOpen && c.act && !c.act->wq.empty())
        writable_.emplace_back(idx, c.gen);
      break;
    default:
      break;
  }
}

bool DirectLoadLoop::io_pending() const {
  return handled_ < completions_.size() || !writable_.empty();
}

void DirectLoadLoop::wait_and_handle(Nanos wake) {
  submit_dirty();
  if (handled_ == completions_.size()) {
    bool ready = false;
    for (const auto& r : rings_) ready = ready || r->ready() > 0;
    if (!ready) {
      epoll_event events[kMaxEvents];
      const Nanos wait = std::max<Nanos>(0, wake - mono_now());
      timespec ts{static_cast<time_t>(wait / kSecond), static_cast<long>(wait % kSecond)};
      // A completion wakes the thread: EINTR (its task work ran on the way out) or a ring
      // fd readable; either way the rings' CQs say what arrived.
      const int n = epoll_pwait2(ep_, events, kMaxEvents, &ts, nullptr);
      ctr_.wait_calls.add();
      if (n < 0 && errno != EINTR) {
        fatal_ = std::string("epoll_pwait2: ") + std::strerror(errno);
        return;
      }
    }
    reap_all();
  }
  // A reply's time is read once per batch, after the completions arrived.
  const Nanos now = mono_now();
  while (handled_ < completions_.size() && fatal_.empty()) {
    const Completion e = completions_[handled_++];  // a full arena may reap more meanwhile
    handle(e, now);
  }
  completions_.clear();
  handled_ = 0;
  for (const auto& r : rings_) r->publish();
}

}  // namespace c10m::loadclient
