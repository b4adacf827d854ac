#include "engine/epoll/epoll_loop.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "sys/socket.h"

namespace c10m::engine {
namespace {

// epoll_event.data.ptr tags for the two non-connection fds (connections use their
// EpollConn*).
char kListenTag;
char kDrainTag;

}  // namespace

EpollLoop::EpollLoop(EpollShared* shared, int listen_fd, bool exclusive_listener,
                     metrics::ThreadCounters* counters)
    : shared_(shared),
      config_(*shared->config),
      listen_fd_(listen_fd),
      exclusive_listener_(exclusive_listener),
      counters_(counters),
      pool_(core::kSessionBlockSize, shared->config->pool),
      small_pool_(core::kSessionSmallBlockSize, shared->config->pool),
      scratch_(new uint8_t[shared->config->readbuf]),
      wheel_(mono_now()) {
  env_.limits = config_.limits;
  env_.content = shared->content;
  env_.pool = &pool_;
  env_.small_pool = &small_pool_;
  env_.counters = counters_;
  env_.read_chunk = config_.readbuf;
  switch (config_.fetch_send) {
    case core::FetchSend::kCopy:
      env_.fetch_body = core::FetchBody::kCopy;
      break;
    case core::FetchSend::kWritev:
    case core::FetchSend::kZerocopy:
      env_.fetch_body = core::FetchBody::kReference;
      break;
    case core::FetchSend::kSendfile:
      env_.fetch_body = core::FetchBody::kFile;
      break;
  }
  env_.ingest_trunc = config_.ingest_trunc;
  env_.ref_min_chunk = config_.fetch_ref_min;
}

EpollLoop::~EpollLoop() {
  abort_all();
  if (epfd_ >= 0) ::close(epfd_);
}

std::string EpollLoop::init() {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) return std::string("epoll_create1: ") + std::strerror(errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &kDrainTag;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, shared_->drain_fd, &ev) != 0)
    return std::string("epoll_ctl(drain): ") + std::strerror(errno);
  add_listener();
  if (!listener_registered_) return std::string("epoll_ctl(listener): ") + std::strerror(errno);
  return "";
}

void EpollLoop::add_listener() {
  epoll_event ev{};
  // EPOLLEXCLUSIVE: one loop (not all) wakes per incoming connection on a shared listener.
  ev.events = EPOLLIN | (exclusive_listener_ ? EPOLLEXCLUSIVE : 0u);
  ev.data.ptr = &kListenTag;
  listener_registered_ = ::epoll_ctl(epfd_, EPOLL_CTL_ADD, listen_fd_, &ev) == 0;
  listener_resume_at_ = kNever;
}

void EpollLoop::remove_listener() {
  // EPOLLEXCLUSIVE registrations cannot be modified, only deleted and added again.
  if (listener_registered_) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
  listener_registered_ = false;
}

int EpollLoop::epoll_timeout_ms(Nanos now) const {
  Nanos next = wheel_.next_advance();
  if (listener_resume_at_ < next) next = listener_resume_at_;
  if (draining_) {
    if (!forced_ && drain_deadline_ < next) next = drain_deadline_;
    if (hard_deadline_ < next) next = hard_deadline_;
  }
  if (next == kNever) return -1;
  if (next <= now) return 0;
  const Nanos ms = (next - now + kMillisecond - 1) / kMillisecond;
  return ms > 1'000'000 ? 1'000'000 : static_cast<int>(ms);
}

DrainReport EpollLoop::run() {
  epoll_event events[kMaxEvents];
  for (;;) {
    if (draining_ && conns_ == 0) break;
    const int n = ::epoll_wait(epfd_, events, kMaxEvents, epoll_timeout_ms(mono_now()));
    if (n < 0 && errno != EINTR) {
      log_warn("epoll_wait: {}", std::strerror(errno));
      break;
    }
    const Nanos now = mono_now();
    bool accept_ready = false;
    bool drain_ready = false;
    for (int i = 0; i < n; ++i) {
      void* p = events[i].data.ptr;
      if (p == &kListenTag) {
        accept_ready = true;
      } else if (p == &kDrainTag) {
        drain_ready = true;
      } else {
        on_conn_event(static_cast<EpollConn*>(p), events[i].events, now);
      }
    }
    // Connection events first: drain and accept may close or create connections, which
    // must not happen while later events of the batch still point at them.
    if (drain_ready && !draining_) start_drain(now);
    if (accept_ready && !draining_ && listener_registered_) accept_burst(now);
    wheel_.advance(now, [this, now](TimerNode* node) {
      auto* c = static_cast<EpollConn*>(node);
      c->session.on_tick(now);
      if (c->session.has_output() && !flush(c, now)) {
        close_conn(c, true);
        return;
      }
      settle(c, now);
    });
    if (!draining_ && !listener_registered_ && now >= listener_resume_at_) add_listener();
    if (draining_ && !forced_ && now >= drain_deadline_) force_all(now);
    if (draining_ && now >= hard_deadline_) abort_all();
  }
  return report_;
}

bool EpollLoop::reap_zerocopy(EpollConn* c) {
  sys::ZerocopyCompletions z;
  const int rc = sys::read_zerocopy_completions(c->fd, &z);
  counters_->zerocopy_completed.add(z.completed);
  counters_->zerocopy_copied.add(z.copied);
  return rc == 0 && sys::socket_error(c->fd) == 0;
}

void EpollLoop::on_conn_event(EpollConn* c, uint32_t ev, Nanos now) {
  // With MSG_ZEROCOPY, EPOLLERR also means "completions wait on the error queue".
  if ((ev & EPOLLERR) && config_.fetch_send == core::FetchSend::kZerocopy && reap_zerocopy(c))
    ev &= ~EPOLLERR;
  bool alive = true;
  if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->peer_eof && c->session.wants_read()) {
    alive = read_burst(c, now);
  } else if (c->session.has_output()) {
    alive = flush(c, now);
  }
  if (alive && (ev & (EPOLLHUP | EPOLLERR)) && !c->session.finished()) {
    // Both directions are gone (RST): nothing more can be delivered.
    alive = false;
  }
  if (!alive) {
    close_conn(c, true);
    return;
  }
  settle(c, now);
}

bool EpollLoop::read_burst(EpollConn* c, Nanos now) {
  core::Session& s = c->session;
  size_t bytes = 0;
  for (int reads = 0; reads < kMaxReadsPerEvent && bytes < kMaxReadBytesPerEvent; ++reads) {
    if (!s.wants_read()) {
      // Backpressure: write first; reading resumes only if that made room.
      if (!flush(c, now)) return false;
      if (!s.wants_read()) break;
    }
    if (config_.ingest_trunc) {
      // A large SINK/CHUNK payload: drop it in the kernel instead of copying it here.
      if (const size_t d = s.discard_pending(); d != 0) {
        const ssize_t n = sys::discard_some(c->fd, d);
        if (n > 0) {
          bytes += static_cast<size_t>(n);
          counters_->discarded_bytes.add(static_cast<uint64_t>(n));
          s.on_discarded(static_cast<size_t>(n), now);
          if (static_cast<size_t>(n) < d) break;  // socket drained (likely)
          continue;
        }
        if (n == 0) {
          c->peer_eof = true;
          s.on_peer_eof(now);
          break;
        }
        if (n == -EAGAIN || n == -EWOULDBLOCK) break;
        return false;
      }
    }
    // Just the next header when the session expects a large payload to discard after it.
    const size_t hint = s.read_hint();
    const size_t want = hint != 0 && hint < config_.readbuf ? hint : config_.readbuf;
    const ssize_t n = sys::read_some(c->fd, scratch_.get(), want);
    if (n > 0) {
      bytes += static_cast<size_t>(n);
      s.on_bytes({scratch_.get(), static_cast<size_t>(n)}, now);
      if (static_cast<size_t>(n) < want) break;  // socket drained (likely)
      continue;
    }
    if (n == 0) {
      c->peer_eof = true;
      s.on_peer_eof(now);
      break;
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK) break;
    return false;  // ECONNRESET and friends
  }
  return flush(c, now);
}

bool EpollLoop::flush(EpollConn* c, Nanos now) {
  core::Session& s = c->session;
  const bool files = config_.fetch_send == core::FetchSend::kSendfile;
  const bool zerocopy = config_.fetch_send == core::FetchSend::kZerocopy;
  size_t written = 0;
  while (s.has_output() && !s.finished()) {
    iovec iov[kMaxIov];
    const core::Session::OutputView v = s.gather_output(iov, kMaxIov, files);
    ssize_t n;
    size_t want;
    if (v.iovcnt > 0) {
      int flags = 0;
      // Headers now, their body by sendfile next: let them leave in one segment.
      if (v.file_fd >= 0) flags |= MSG_MORE;
      // Only content and static tables are sent zero-copy: they never change, so no
      // send has to wait for its completion before its memory may be reused.
      if (zerocopy && v.immutable && v.bytes >= kZerocopyMin) flags |= MSG_ZEROCOPY;
      n = sys::sendmsg_some(c->fd, iov, v.iovcnt, flags);
      if (n == -ENOBUFS && (flags & MSG_ZEROCOPY)) {
        // The socket's option memory is full of unread completions: read them, and send
        // this batch with a copy.
        if (!reap_zerocopy(c)) return false;
        flags &= ~MSG_ZEROCOPY;
        n = sys::sendmsg_some(c->fd, iov, v.iovcnt, flags);
      }
      if (n > 0 && (flags & MSG_ZEROCOPY)) counters_->zerocopy_sends.add();
      want = v.bytes;
    } else if (v.file_fd >= 0) {
      n = sys::sendfile_some(c->fd, v.file_fd, v.file_offset, v.file_length);
      if (n > 0) counters_->sendfile_bytes.add(static_cast<uint64_t>(n));
      want = v.file_length;
    } else {
      break;
    }
    if (n > 0) {
      // A fresh clock read (vDSO, no syscall): frame_service_seconds ends when the kernel
      // took the reply, not when this event began.
      now = mono_now();
      s.on_sent(static_cast<size_t>(n), now);
      written += static_cast<size_t>(n);
      if (static_cast<size_t>(n) < want) break;      // kernel buffer full: EPOLLOUT
      if (written >= kMaxWriteBytesPerEvent) break;  // fairness: EPOLLOUT brings us back
      continue;
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK) break;
    return false;  // EPIPE, ECONNRESET
  }
  return true;
}

void EpollLoop::settle(EpollConn* c, Nanos now) {
  (void)now;
  core::Session& s = c->session;
  if (s.finished()) {
    close_conn(c, false);
    return;
  }
  uint32_t want = 0;
  if (!c->peer_eof && s.wants_read()) want |= EPOLLIN;
  if (s.has_output()) want |= EPOLLOUT;
  if (want != c->events) {
    epoll_event ev{};
    ev.events = want;
    ev.data.ptr = c;
    ::epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = want;
  }
  wheel_.schedule(c, s.next_deadline());
}

void EpollLoop::close_conn(EpollConn* c, bool aborted) {
  wheel_.cancel(c);
  if (c->all_prev != nullptr)
    c->all_prev->all_next = c->all_next;
  else
    all_head_ = c->all_next;
  if (c->all_next != nullptr) c->all_next->all_prev = c->all_prev;
  if (draining_ && !forced_ &&
      (aborted || c->session.close_cause() == core::CloseCause::kPeerClosed))
    ++report_.closed_by_peer;
  // Count the connection out before the peer can see the close (a client that reconnects
  // at once must not be refused by --max-conns).
  shared_->open.fetch_sub(1, std::memory_order_relaxed);
  counters_->conns_closed.add();
  if (!aborted && c->session.reset_on_close()) {
    sys::close_with_reset(c->fd);
  } else {
    ::close(c->fd);  // also removes it from the epoll set
  }
  --conns_;
  delete c;
}

void EpollLoop::accept_burst(Nanos now) {
  for (int i = 0; i < kAcceptBurst; ++i) {
    const int fd = sys::accept_conn(listen_fd_, /*nonblocking=*/true);
    if (fd < 0) {
      const int err = -fd;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == ECONNABORTED || err == EPROTO || err == EPERM) continue;
      counters_->accept_errors[static_cast<size_t>(accept_error_kind(err))].add();
      if (is_resource_error(err)) {
        // Never spin on EMFILE: the pending connection stays in the backlog and the
        // listener stays readable, so stop polling it for a while.
        shared_->accept_log.record(err, now);
        remove_listener();
        listener_resume_at_ = now + AcceptErrorLog::kBackoff;
        return;
      }
      if (err != EINVAL) log_warn("accept: {}", std::strerror(err));  // EINVAL: draining
      return;
    }
    counters_->accept_total.add();
    sys::SocketOptions so;
    so.nodelay = config_.nodelay;
    so.rcvbuf = config_.rcvbuf;
    so.sndbuf = config_.sndbuf;
    so.zerocopy = config_.fetch_send == core::FetchSend::kZerocopy;
    sys::apply_socket_options(fd, so);
    const uint64_t before = shared_->open.fetch_add(1, std::memory_order_relaxed);
    if (config_.max_conns != 0 && before >= config_.max_conns) {
      shared_->open.fetch_sub(1, std::memory_order_relaxed);
      refuse(fd, now);
      continue;
    }
    auto* c = new EpollConn(env_, now, fd);
    c->events = EPOLLIN;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      log_warn("epoll_ctl(add): {}", std::strerror(errno));
      shared_->open.fetch_sub(1, std::memory_order_relaxed);
      ::close(fd);
      delete c;
      continue;
    }
    c->all_next = all_head_;
    if (all_head_ != nullptr) all_head_->all_prev = c;
    all_head_ = c;
    ++conns_;
    counters_->conns_opened.add();
    wheel_.schedule(c, c->session.next_deadline());
  }
}

void EpollLoop::refuse(int fd, Nanos now) {
  // Over --max-conns: ERROR OVERLOADED right after accept, then close. A fresh socket's
  // send buffer is empty, so one write takes the whole small frame.
  core::Session s(env_, now);
  s.refuse_overloaded(now);
  iovec iov[4];
  const int cnt = s.gather(iov, 4);
  if (cnt > 0) {
    const ssize_t n = sys::writev_some(fd, iov, cnt);
    if (n > 0) {
      s.on_sent(static_cast<size_t>(n), now);
    }
  }
  ::close(fd);
}

void EpollLoop::start_drain(Nanos now) {
  draining_ = true;
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, shared_->drain_fd, nullptr);
  remove_listener();
  listener_resume_at_ = kNever;
  // Stop listening: new and backlogged connects are refused. Idempotent, and safe while
  // other loops still hold the shared fd (the engine closes it after run()).
  sys::shutdown_both(listen_fd_);
  Nanos start = shared_->drain_at.load(std::memory_order_relaxed);
  if (start == kNever || start > now) start = now;
  if (config_.drain_timeout > 0) drain_deadline_ = start + config_.drain_timeout;
  report_.open_at_start = conns_;
  for (EpollConn* c = all_head_; c != nullptr;) {
    EpollConn* next = c->all_next;
    c->session.begin_drain(now);
    if (c->session.has_output() && !flush(c, now)) {
      close_conn(c, true);
    } else {
      settle(c, now);
    }
    c = next;
  }
}

void EpollLoop::force_all(Nanos now) {
  forced_ = true;
  hard_deadline_ = now + config_.limits.write_timeout + kForceGrace;
  for (EpollConn* c = all_head_; c != nullptr;) {
    EpollConn* next = c->all_next;
    ++report_.force_closed;
    if (c->session.request_in_flight()) ++report_.in_flight;
    c->session.force_close(now);
    if (c->session.has_output() && !flush(c, now)) {
      close_conn(c, true);
    } else {
      settle(c, now);
    }
    c = next;
  }
}

void EpollLoop::abort_all() {
  while (all_head_ != nullptr) {
    EpollConn* c = all_head_;
    shared_->open.fetch_sub(1, std::memory_order_relaxed);
    counters_->conns_closed.add();
    sys::close_with_reset(c->fd);
    c->fd = -1;
    wheel_.cancel(c);
    all_head_ = c->all_next;
    if (all_head_ != nullptr) all_head_->all_prev = nullptr;
    --conns_;
    delete c;
  }
}

}  // namespace c10m::engine
