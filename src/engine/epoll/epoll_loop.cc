#include "engine/epoll/epoll_loop.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "base/log.h"
#include "base/memory_release.h"
#include "sys/socket.h"

namespace c10m::engine {
namespace {

// epoll_event.data.ptr tags for the two non-connection fds (connections use their
// EpollConn*).
char kListenTag;
char kDrainTag;
char kKickTag;

}  // namespace

EpollLoop::EpollLoop(EpollShared* shared, int listen_fd, bool exclusive_listener,
                     metrics::ThreadCounters* counters)
    : shared_(shared),
      config_(*shared->config),
      listen_fd_(listen_fd),
      exclusive_listener_(exclusive_listener),
      counters_(counters),
      pool_(core::kSessionBlockSize, shared->config->pool, kPoolCache),
      small_pool_(core::kSessionSmallBlockSize, shared->config->pool, kSmallPoolCache),
      scratch_(new uint8_t[shared->config->readbuf]),
      account_(shared->budget, core::BudgetAccount::kLoopChunk, counters),
      wheel_(mono_now()),
      pacer_(shared->accept_rate_per_loop, mono_now()) {
  env_.limits = config_.limits;
  env_.content = shared->content;
  env_.pool = &pool_;
  env_.small_pool = &small_pool_;
  env_.counters = counters_;
  env_.read_chunk = config_.readbuf;
  env_.account = &account_;
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
  free_closed();
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
  if (shared_->worker.kick_fd >= 0) {
    // Edge-triggered and never read: every write by any worker wakes every loop once.
    ev.events = EPOLLIN | EPOLLET;
    ev.data.ptr = &kKickTag;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, shared_->worker.kick_fd, &ev) != 0)
      return std::string("epoll_ctl(kick): ") + std::strerror(errno);
  }
  if (shared_->worker.paused.load(std::memory_order_relaxed)) return "";
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

void EpollLoop::sync_listener(bool rearm) {
  const bool want = !draining_ && !shared_->worker.paused.load(std::memory_order_relaxed) &&
                    listener_resume_at_ == kNever;
  if (want && listener_registered_ && rearm) remove_listener();
  if (want && !listener_registered_) {
    add_listener();
  } else if (!want && listener_registered_) {
    remove_listener();
  }
}

void EpollLoop::kick() {
  const uint64_t one = 1;
  ssize_t rc = ::write(shared_->worker.kick_fd, &one, sizeof one);
  (void)rc;
}

void EpollLoop::set_paused(bool paused) {
  // Transitions are rare (a worker reaching or leaving its capacity); the lock keeps the
  // gate's view in the order of the flag's changes when two loops race.
  WorkerShare& worker = shared_->worker;
  std::lock_guard lock(worker.pause_mu);
  if (worker.paused.load(std::memory_order_relaxed) == paused) return;
  worker.paused.store(paused, std::memory_order_relaxed);
  if (worker.gate != nullptr) worker.gate->set_accepting(!paused);
  // Every loop of every worker wakes: this process's loops follow the flag, the siblings
  // re-arm (and take what this one left in the backlog), the supervisor re-reads the board.
  kick();
}

int EpollLoop::epoll_timeout_ms(Nanos now) const {
  Nanos next = wheel_.next_advance();
  if (listener_resume_at_ < next) next = listener_resume_at_;
  if (config_.memory_release > 0 && next_maintenance_ < next) next = next_maintenance_;
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
  next_maintenance_ = mono_now() + config_.memory_release;
  for (;;) {
    if (draining_ && conns_ == 0) break;
    const int n = ::epoll_wait(epfd_, events, kMaxEvents, epoll_timeout_ms(mono_now()));
    if (n < 0 && errno != EINTR) {
      log_warn("epoll_wait: {}", std::strerror(errno));
      break;
    }
    const Nanos now = mono_now();
    account_.refresh();
    bool accept_ready = false;
    bool drain_ready = false;
    bool kicked = false;
    // Phase 1: connections with input (requests are answered this turn); listener, drain.
    int outputs = 0;
    for (int i = 0; i < n; ++i) {
      void* p = events[i].data.ptr;
      if (p == &kListenTag) {
        accept_ready = true;
      } else if (p == &kDrainTag) {
        drain_ready = true;
      } else if (p == &kKickTag) {
        kicked = true;
      } else if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        auto* c = static_cast<EpollConn*>(p);
        // With MSG_ZEROCOPY, EPOLLERR also means "completions wait on the error queue".
        if ((events[i].events & EPOLLERR) && !c->closed &&
            config_.fetch_send == core::FetchSend::kZerocopy && reap_zerocopy(c)) {
          events[i].events &= ~EPOLLERR;
          if (!(events[i].events & (EPOLLIN | EPOLLHUP))) {
            ++outputs;
            continue;
          }
        }
        if (!c->closed) on_input_event(c, events[i].events, now);
        events[i].data.ptr = nullptr;  // served
      } else {
        ++outputs;
      }
    }
    // Phase 2: output only, kTurnWriteBudget shared round-robin.
    if (outputs > 0) {
      size_t budget = kTurnWriteBudget;
      int left = outputs;
      const int start = static_cast<int>(rr_ % static_cast<size_t>(n));
      for (int k = 0; k < n && left > 0; ++k) {
        const int i = (start + k) % n;
        void* p = events[i].data.ptr;
        if (p == nullptr || p == &kListenTag || p == &kDrainTag || p == &kKickTag) continue;
        auto* c = static_cast<EpollConn*>(p);
        --left;
        if (c->closed) continue;
        if (budget == 0) break;
        const size_t quota = std::max(kMinWriteQuota, budget / static_cast<size_t>(left + 1));
        const uint64_t before = counters_->bytes_out.load();
        on_output_event(c, quota, now);
        const uint64_t wrote = counters_->bytes_out.load() - before;
        budget -= std::min<uint64_t>(budget, wrote);
        ++rr_;
      }
    }
    // Connection events first: drain and accept create connections, and the batch's
    // closed connections are freed only now.
    free_closed();
    if (drain_ready && !draining_) start_drain(now);
    if (accept_ready && !draining_ && listener_registered_) accept_burst(now);
    if (kicked && !draining_) sync_listener(/*rearm=*/true);
    wheel_.advance(now,
                   [this, now](TimerNode* node) { on_timer(static_cast<EpollConn*>(node), now); });
    free_closed();
    // The memory budget stops accepting at Pressure::kStopAccept (rechecked every
    // kBudgetRecheck); the listener comes back once it falls below.
    const bool budget_full = account_.pressure() >= core::Pressure::kStopAccept;
    if (!draining_ && !listener_registered_ && now >= listener_resume_at_ &&
        !shared_->worker.paused.load(std::memory_order_relaxed)) {
      if (budget_full) {
        listener_resume_at_ = now + kBudgetRecheck;
      } else {
        add_listener();
      }
    }
    if (!draining_ && listener_registered_ && budget_full) {
      remove_listener();
      listener_resume_at_ = now + kBudgetRecheck;
      counters_->overload_actions[static_cast<size_t>(metrics::OverloadAction::kStopAccept)].add();
    }
    if (config_.memory_release > 0 && now >= next_maintenance_) maintain(now);
    if (draining_ && !forced_ && now >= drain_deadline_) force_all(now);
    if (draining_ && now >= hard_deadline_) abort_all();
    free_closed();
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

void EpollLoop::on_input_event(EpollConn* c, uint32_t ev, Nanos now) {
  bool alive = true;
  if (!c->peer_eof && c->session.wants_read()) {
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
  check_budget(now);
}

void EpollLoop::on_output_event(EpollConn* c, size_t quota, Nanos now) {
  if (c->session.has_output() && !flush(c, now, quota)) {
    close_conn(c, true);
    return;
  }
  settle(c, now);
  check_budget(now);
}

void EpollLoop::on_timer(EpollConn* c, Nanos now) {
  core::Session& s = c->session;
  // Read what is already waiting before timing the peer out: the delay may be ours (a busy
  // turn, or small reads). Bounded: a peer that keeps sending is not timed out anyway.
  for (int i = 0; i < 16 && !c->peer_eof && s.wants_read() && s.input_timeout_due(now); ++i) {
    const uint64_t before = counters_->bytes_in.load();
    if (!read_burst(c, now)) {
      close_conn(c, true);
      return;
    }
    if (counters_->bytes_in.load() == before) break;  // nothing was waiting
  }
  s.on_tick(now);
  if (s.has_output() && !flush(c, now)) {
    close_conn(c, true);
    return;
  }
  settle(c, now);
  check_budget(now);
}

bool EpollLoop::read_burst(EpollConn* c, Nanos now) {
  core::Session& s = c->session;
  size_t bytes = 0;
  for (int reads = 0; reads < kMaxReadsPerEvent && bytes < kReadBudget; ++reads) {
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
    const ssize_t n = sys::read_nocancel(c->fd, scratch_.get(), want);
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

bool EpollLoop::flush(EpollConn* c, Nanos now, size_t quota) {
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
      // One contiguous run (the usual reply batch): send() of it, like the peers' write(),
      // not sendmsg(), which copies a msghdr and imports an iovec array per call.
      n = v.iovcnt == 1 && flags == 0 ? sys::write_nocancel(c->fd, iov[0].iov_base, iov[0].iov_len)
                                      : sys::sendmsg_some(c->fd, iov, v.iovcnt, flags);
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
      if (static_cast<size_t>(n) < want) break;  // kernel buffer full: EPOLLOUT
      if (written >= quota) break;               // fairness: EPOLLOUT brings us back
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
  if (!c->peer_eof && s.wants_read()) {
    want |= EPOLLIN;
    // A partial frame: no wakeup until what it misses (up to --rcvlowat) has arrived.
    const uint32_t mark = lowat_mark(s, config_.rcvlowat);
    if (mark != c->rcvlowat && sys::set_rcvlowat(c->fd, static_cast<int>(mark)) == 0)
      c->rcvlowat = mark;
  }
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
  const uint64_t open_now = shared_->open.fetch_sub(1, std::memory_order_relaxed) - 1;
  counters_->conns_closed.add();
  if (shared_->worker.pause_at != 0 && !draining_ && open_now < shared_->worker.resume_below &&
      shared_->worker.paused.load(std::memory_order_relaxed))
    set_paused(false);  // this loop re-registers on the kick, like the others
  if (!aborted && c->session.reset_on_close()) {
    sys::close_with_reset(c->fd);
  } else {
    ::close(c->fd);  // also removes it from the epoll set
  }
  --conns_;
  c->closed = true;
  c->fd = -1;
  c->all_prev = nullptr;
  c->all_next = closed_head_;
  closed_head_ = c;
}

void EpollLoop::free_closed() {
  while (closed_head_ != nullptr) {
    EpollConn* c = closed_head_;
    closed_head_ = c->all_next;
    delete c;  // its Session returns its blocks (credited to the budget) here
  }
}

void EpollLoop::check_budget(Nanos now) {
  if (account_.pressure() == core::Pressure::kShed) shed(now);
}

void EpollLoop::shed(Nanos now) {
  core::MemoryBudget* budget = shared_->budget;
  if (budget == nullptr) return;
  // This loop's connections holding memory, largest first (Session::shed_rank; a scan, on
  // this rare path only: the budget is past its limit).
  std::vector<std::pair<std::pair<size_t, size_t>, EpollConn*>> held;
  for (EpollConn* c = all_head_; c != nullptr; c = c->all_next) {
    const auto rank = c->session.shed_rank();
    if (rank.first != 0) held.emplace_back(rank, c);
  }
  std::sort(held.begin(), held.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (auto& [rank, c] : held) {
    if (budget->used() <= budget->shed_resume()) break;
    c->session.shed(now);
    // A shed session has already given its blocks back (but the ERROR frame's).
    if (c->session.has_output() && !flush(c, now)) {
      close_conn(c, true);
    } else {
      settle(c, now);
    }
  }
  account_.refresh();
}

void EpollLoop::maintain(Nanos now) {
  next_maintenance_ = now + config_.memory_release;
  // Keep a small cache when the loop is quiet; give the rest back.
  pool_.trim(pool_.outstanding() == 0 ? 0 : kPoolCache / 4);
  small_pool_.trim(small_pool_.outstanding() == 0 ? 0 : kSmallPoolCache / 4);
  const size_t freed = pool_.take_freed() + small_pool_.take_freed();
  if (freed == 0) return;
  // One loop at a time returns the process's free memory to the OS.
  Nanos last = shared_->last_release.load(std::memory_order_relaxed);
  if (now - last < config_.memory_release) return;
  if (!shared_->last_release.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
  release_free_memory();
}

void EpollLoop::accept_burst(Nanos now) {
  for (int i = 0; i < kAcceptBurst; ++i) {
    if (shared_->worker.pause_at != 0 &&
        shared_->open.load(std::memory_order_relaxed) >= shared_->worker.pause_at) {
      // Worker at capacity: leave the rest of the backlog to the siblings (the kick
      // re-arms their registrations so they wake for it) or to the supervisor.
      set_paused(true);
      remove_listener();
      return;
    }
    if (!pacer_.take(now)) {
      remove_listener();
      listener_resume_at_ = pacer_.ready_at();
      counters_->overload_actions[static_cast<size_t>(metrics::OverloadAction::kAcceptRate)].add();
      return;
    }
    const int fd = sys::accept_conn(listen_fd_, /*nonblocking=*/true);
    if (fd < 0) {
      const int err = -fd;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        pacer_.give_back();
        return;
      }
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
      if (err == EINVAL) {
        // The listener was shut down: this loop's drain, or the supervisor's (worker
        // mode; SIGTERM follows). Stop polling it rather than spin on its readiness.
        remove_listener();
        return;
      }
      log_warn("accept: {}", std::strerror(err));
      return;
    }
    counters_->accept_total.add();
    sys::SocketOptions so = socket_options(config_);
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
  if (shared_->worker.kick_fd >= 0)
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, shared_->worker.kick_fd, nullptr);
  remove_listener();
  listener_resume_at_ = kNever;
  // Stop listening: new and backlogged connects are refused. Idempotent, and safe while
  // other loops still hold the shared fd (the engine closes it after run()). A listener
  // inherited from the supervisor is the supervisor's to shut down (it does, first).
  if (!shared_->worker.shared_listener) sys::shutdown_both(listen_fd_);
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
