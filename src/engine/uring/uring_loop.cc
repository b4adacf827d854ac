#include "engine/uring/uring_loop.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "base/log.h"
#include "sys/socket.h"

namespace c10m::engine {

UringLoop::UringLoop(UringShared* shared, UringIo* io, UringBufferRing* buffers, int listen_fd,
                     uint32_t fixed_files, uint32_t accept_headroom, size_t zerocopy_min,
                     metrics::ThreadCounters* counters)
    : shared_(shared),
      config_(*shared->config),
      io_(io),
      bufs_(buffers),
      listen_fd_(listen_fd),
      counters_(counters),
      pool_(core::kSessionBlockSize, shared->config->pool),
      small_pool_(core::kSessionSmallBlockSize, shared->config->pool),
      account_(shared->budget, core::BudgetAccount::kLoopChunk, counters),
      wheel_(mono_now()),
      fixed_files_(fixed_files),
      free_slots_(fixed_files),
      accept_headroom_(accept_headroom),
      zerocopy_min_(zerocopy_min),
      pacer_(shared->accept_rate_per_loop, mono_now()) {
  env_.limits = config_.limits;
  env_.content = shared->content;
  env_.pool = &pool_;
  env_.small_pool = &small_pool_;
  env_.counters = counters_;
  env_.read_chunk = buffers->size();
  env_.account = &account_;
  // FETCH bodies by reference (writev) or copied; sendfile, MSG_ZEROCOPY and --ingest trunc
  // are epoll/thread options (the flag parser rejects them with uring; SEND_ZC is
  // --zerocopy-min).
  env_.fetch_body = config_.fetch_send == core::FetchSend::kCopy ? core::FetchBody::kCopy
                                                                 : core::FetchBody::kReference;
  env_.ref_min_chunk = config_.fetch_ref_min;
}

UringLoop::~UringLoop() {
  // Whatever is still live (the loop did not finish its drain): the ring, destroyed after
  // this, cancels the requests and closes the direct descriptors; here only the memory.
  while (all_head_ != nullptr) {
    UringConn* c = all_head_;
    all_head_ = c->all_next;
    if (!c->closing && !c->refused) {
      shared_->open.fetch_sub(1, std::memory_order_relaxed);
      counters_->conns_closed.add();
    }
    wheel_.cancel(c);
    delete c;
  }
}

// ---------------------------------------------------------------------------------------
// the turn

DrainReport UringLoop::run() {
  start();
  UringCqe cqes[kReapBatch];
  for (;;) {
    Nanos now = mono_now();
    turn_begin(now);
    if (done()) break;
    const int rc = io_->submit_and_wait(wait_timeout(now));
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
      log_warn("io_uring_enter: {}", std::strerror(-rc));
      break;
    }
    now = mono_now();
    for (;;) {
      const int n = io_->reap(cqes, kReapBatch);
      for (int i = 0; i < n; ++i) handle(cqes[i], now);
      bufs_->publish();
      if (n < kReapBatch) break;
    }
    turn_end(now);
  }
  return report_;
}

void UringLoop::start() { io_->poll_in(shared_->drain_fd, kUdDrain); }

Nanos UringLoop::wait_timeout(Nanos now) const {
  Nanos next = wheel_.next_advance();
  if (!accept_stopped_ && accept_resume_at_ > now && accept_resume_at_ < next)
    next = accept_resume_at_;
  if (budget_full_ && budget_recheck_at_ < next) next = budget_recheck_at_;
  if (draining_) {
    if (!forced_ && drain_deadline_ < next) next = drain_deadline_;
    if (hard_deadline_ < next) next = hard_deadline_;
  }
  if (pending_head_ != nullptr) return 0;  // settled work is waiting: do not sleep
  if (next == kNever) return kNever;
  return next <= now ? 0 : next - now;
}

void UringLoop::turn_begin(Nanos now) {
  account_.refresh();
  if (account_.pressure() == core::Pressure::kShed) shed(now);
  while (pending_head_ != nullptr) {
    UringConn* c = pending_head_;
    pending_head_ = c->pending_next;
    c->pending_next = nullptr;
    c->queued = false;
    settle(c, now);
  }
  if (shared_->worker.kick_fd >= 0 && !kick_armed_ && !kick_failed_ && !draining_) {
    io_->poll_in_multishot(shared_->worker.kick_fd, kUdKick);
    kick_armed_ = true;
  }
  arm_accept(now);
}

void UringLoop::turn_end(Nanos now) {
  due_.clear();
  wheel_.advance(now, [this, now](TimerNode* node) {
    auto* c = static_cast<UringConn*>(node);
    if (c->recv == UringConn::Recv::kArmed && c->session.input_timeout_due(now)) {
      due_.push_back(c);  // ticked below, after taking what the kernel already holds
      return;
    }
    c->session.on_tick(now);
    mark(c);
  });
  if (!due_.empty()) {
    // Never blame the peer for our own delay: receives the kernel completed while this
    // loop was busy (or descheduled) are handled before an input timeout fires. One
    // non-blocking enter (it runs the deferred task work), bounded. Bytes held below a
    // receive low-water mark are waiting too: the mark goes back to 1 first, which wakes
    // the receive in that same enter.
    for (UringConn* c : due_) {
      if (c->rcvlowat == 1) continue;
      c->rcvlowat = 1;
      io_->set_rcvlowat(c->slot, &c->rcvlowat, ud(c, kOpLowat));
      ++c->ops;
    }
    UringCqe cqes[kReapBatch];
    io_->submit_and_wait(0);
    for (int round = 0; round < 16; ++round) {
      const int n = io_->reap(cqes, kReapBatch);
      for (int i = 0; i < n; ++i) handle(cqes[i], now);
      bufs_->publish();
      if (n < kReapBatch) break;
    }
    // Conns are freed only in settle(): every pointer in due_ is still valid.
    for (UringConn* c : due_) {
      c->session.on_tick(now);
      mark(c);
    }
  }
  if (draining_ && !forced_ && now >= drain_deadline_) force_all(now);
  if (draining_ && now >= hard_deadline_) abort_all();
}

void UringLoop::handle(const UringCqe& e, Nanos now) {
  ++stats_.cqes;
  const uint64_t op = e.user_data & 7;
  if (op == kOpLoop) {
    switch (e.user_data) {
      case kUdAcceptMulti:
        on_accept(e, true, now);
        break;
      case kUdAcceptOne:
        on_accept(e, false, now);
        break;
      case kUdDrain:
        if (!draining_) start_drain(now);
        break;
      case kUdKick:
        if (!(e.flags & kCqeMore)) kick_armed_ = false;  // re-armed next turn
        if (e.res > 0) {
          kicked_ = true;
        } else if (e.res < 0 && e.res != -ECANCELED) {
          kick_failed_ = true;
          log_warn("poll on the worker kick eventfd: {}", std::strerror(-e.res));
        }
        break;
      default:  // kUdIgnore: the completion of a cancel nobody waits for
        break;
    }
    return;
  }
  auto* c = reinterpret_cast<UringConn*>(e.user_data & ~uint64_t{7});
  switch (op) {
    case kOpRecv:
      on_recv(c, e, now);
      break;
    case kOpSend:
      on_send(c, e, now);
      break;
    case kOpClose:
      if (e.res >= 0) {
        ++free_slots_;
      } else {
        log_warn("closing direct descriptor {}: {}", c->slot, std::strerror(-e.res));
      }
      op_done(c);
      break;
    default:  // kOpRecvCancel, kOpCloseCancel, kOpLinger, kOpLowat: nothing to do but count
      op_done(c);
      break;
  }
}

void UringLoop::op_done(UringConn* c) {
  --c->ops;
  if (c->closing && c->ops == 0) mark(c);  // settle() frees it
}

void UringLoop::mark(UringConn* c) {
  if (c->queued) return;
  c->queued = true;
  c->pending_next = pending_head_;
  pending_head_ = c;
}

// ---------------------------------------------------------------------------------------
// completions

void UringLoop::on_recv(UringConn* c, const UringCqe& e, Nanos now) {
  const bool more = (e.flags & kCqeMore) != 0;
  if (!more) {
    c->recv = UringConn::Recv::kIdle;
    op_done(c);
  }
  std::span<const uint8_t> data;
  int bid = -1;
  if (e.flags & kCqeBuffer) {
    bid = static_cast<int>(e.flags >> kCqeBufferShift);
    data = bufs_->take(static_cast<uint16_t>(bid), e.res > 0 ? static_cast<uint32_t>(e.res) : 0);
  }
  const bool kernel_keeps = (e.flags & kCqeBufMore) != 0;
  if (c->closing) {
    if (bid >= 0) bufs_->release(static_cast<uint16_t>(bid), kernel_keeps);
    return;
  }
  bool dead = false;
  if (e.res > 0) {
    if (data.size() == static_cast<size_t>(e.res)) {
      // The session copies what it keeps: the buffer can go back right after.
      c->session.on_bytes(data, now);
    } else {
      log_warn("receive completion without a usable buffer (res {}, flags {:#x})", e.res, e.flags);
      dead = true;
    }
  } else if (e.res == 0) {
    if (!more) {
      c->peer_eof = true;
      c->session.on_peer_eof(now);
    }
  } else if (e.res == -ENOBUFS) {
    ++stats_.enobufs;  // the buffer ring ran dry in the kernel: settle() re-arms
  } else if (e.res != -ECANCELED) {
    dead = true;  // ECONNRESET and friends
  }
  if (bid >= 0) bufs_->release(static_cast<uint16_t>(bid), kernel_keeps);
  if (dead) {
    close_conn(c, true, false);
    return;
  }
  if (!more && !c->peer_eof && e.res != -ECANCELED) ++stats_.recv_rearms;
  mark(c);
}

void UringLoop::on_send(UringConn* c, const UringCqe& e, Nanos now) {
  if (e.flags & kCqeNotif) {
    // Zero-copy: the kernel no longer reads the bytes; only now may the session reuse them.
    c->sending = false;
    op_done(c);
    if (c->closing) return;
    if (c->zc_result < 0) {
      close_conn(c, true, false);
      return;
    }
    c->session.on_sent(static_cast<size_t>(c->zc_result), now);
    mark(c);
    return;
  }
  if (e.flags & kCqeMore) {  // zero-copy result; its notification follows
    c->zc_result = e.res;
    return;
  }
  c->sending = false;
  op_done(c);
  if (c->closing) return;
  if (e.res < 0) {
    if (e.res != -ECANCELED) close_conn(c, true, false);
    return;
  }
  // `now` was read right after the io_uring_enter that completed the send: the
  // frame_service_seconds of these replies end when the kernel took them.
  const size_t n = static_cast<size_t>(e.res);
  if (n < c->offered) ++stats_.short_sends;
  c->session.on_sent(n, now);
  mark(c);
}

void UringLoop::on_accept(const UringCqe& e, bool multishot, Nanos now) {
  if (multishot) {
    if (!(e.flags & kCqeMore)) accept_multi_ = Accept::kOff;
  } else {
    --accept_single_;
    single_cancels_ = std::min(single_cancels_, accept_single_);
  }
  if (e.res >= 0) {
    --free_slots_;
    new_conn(static_cast<uint32_t>(e.res), now);
    return;
  }
  const int err = -e.res;
  if (!multishot) pacer_.give_back();  // its token bought no connection
  switch (err) {
    case ECANCELED:  // we switched to single-shot accepts
    case EAGAIN:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
    case EINTR:
      return;  // arm_accept() re-arms next turn
    case EINVAL:
    case EBADF:
      accept_stopped_ = true;  // the listener was shut down (drain)
      return;
    default:
      break;
  }
  counters_->accept_errors[static_cast<size_t>(accept_error_kind(err))].add();
  if (err == ENFILE && free_slots_ == 0) {
    // Not expected (multishot accept stops well before the table fills), but the kernel
    // accepted a connection it could not place, and closed it.
    ++stats_.accept_dropped;
    log_table_full(now);
    return;
  }
  if (is_resource_error(err)) {
    shared_->accept_log.record(err, now);
  } else {
    log_warn("accept: {}", std::strerror(err));
  }
  accept_resume_at_ = now + AcceptErrorLog::kBackoff;
}

void UringLoop::new_conn(uint32_t slot, Nanos now) {
  counters_->accept_total.add();
  auto* c = new UringConn(env_, now, slot);
  ++live_;
  c->all_next = all_head_;
  if (all_head_ != nullptr) all_head_->all_prev = c;
  all_head_ = c;
  const uint64_t before = shared_->open.fetch_add(1, std::memory_order_relaxed);
  if (config_.max_conns != 0 && before >= config_.max_conns) {
    shared_->open.fetch_sub(1, std::memory_order_relaxed);
    c->refused = true;
    c->session.refuse_overloaded(now);
  } else {
    ++conns_;
    counters_->conns_opened.add();
    if (draining_) c->session.begin_drain(now);  // accepted just before the listener closed
    if (shared_->worker.pause_at != 0 && before + 1 >= shared_->worker.pause_at) update_pause();
  }
  mark(c);
}

// ---------------------------------------------------------------------------------------
// settling a connection: what to submit for it now

void UringLoop::settle(UringConn* c, Nanos now) {
  if (c->closing) {
    if (c->ops == 0) destroy(c);
    return;
  }
  core::Session& s = c->session;
  if (s.finished()) {
    close_conn(c, false, s.reset_on_close());
    return;
  }
  if (s.has_output() && !c->sending) start_send(c);
  const bool want = !c->peer_eof && !c->refused && s.wants_read();
  if (want) {
    // A partial frame: no receive completes until what it misses (up to --rcvlowat) has
    // arrived.
    if (const int mark = static_cast<int>(lowat_mark(s, config_.rcvlowat)); mark != c->rcvlowat) {
      c->rcvlowat = mark;
      io_->set_rcvlowat(c->slot, &c->rcvlowat, ud(c, kOpLowat));
      ++c->ops;
    }
  }
  if (want && c->recv == UringConn::Recv::kIdle) {
    arm_recv(c);
  } else if (!want && c->recv == UringConn::Recv::kArmed) {
    // Backpressure (or a FETCH in progress): stop taking bytes off the socket so that TCP
    // flow control pushes back on the peer. Bytes already received still reach the session,
    // which holds them.
    io_->cancel(ud(c, kOpRecv), ud(c, kOpRecvCancel));
    ++c->ops;
    c->recv = UringConn::Recv::kCancelling;
    ++stats_.recv_cancels;
  }
  (void)now;
  wheel_.schedule(c, s.next_deadline());
}

void UringLoop::start_send(UringConn* c) {
  iovec iov[kUringMaxSendIov];
  int cnt = c->session.gather(iov, kUringMaxSendIov);
  if (cnt <= 0) return;
  // Zero-copy for a large first block (sent alone: SEND_ZC takes one buffer).
  const bool zc = zerocopy_min_ != 0 && iov[0].iov_len >= zerocopy_min_;
  if (zc) cnt = 1;
  if (zc) ++stats_.zc_sends;
  size_t len = 0;
  for (int i = 0; i < cnt; ++i) len += iov[i].iov_len;
  c->offered = static_cast<uint32_t>(len);
  io_->send(c->slot, iov, cnt, zc, ud(c, kOpSend));
  ++c->ops;
  c->sending = true;
  c->zc_result = 0;
}

void UringLoop::arm_recv(UringConn* c) {
  io_->recv_multishot(c->slot, 0, ud(c, kOpRecv));
  ++c->ops;
  c->recv = UringConn::Recv::kArmed;
  ++stats_.recv_arms;
}

void UringLoop::close_conn(UringConn* c, bool aborted, bool reset) {
  wheel_.cancel(c);
  if (!c->refused) {
    if (draining_ && !forced_ &&
        (aborted || c->session.close_cause() == core::CloseCause::kPeerClosed))
      ++report_.closed_by_peer;
    // Count the connection out before the peer can see the close (a client that
    // reconnects at once must not be refused by --max-conns).
    const uint64_t open_now = shared_->open.fetch_sub(1, std::memory_order_relaxed) - 1;
    counters_->conns_closed.add();
    --conns_;
    if (shared_->worker.pause_at != 0 && !draining_ && open_now < shared_->worker.resume_below &&
        shared_->worker.paused.load(std::memory_order_relaxed))
      update_pause();  // every loop re-arms on the kick
  }
  c->closing = true;
  // In submission order: RST instead of FIN if asked, cancel what is in flight, close.
  if (reset) {
    io_->linger_reset(c->slot, ud(c, kOpLinger));
    ++c->ops;
  }
  if (c->recv != UringConn::Recv::kIdle || c->sending) {
    io_->cancel_slot(c->slot, ud(c, kOpCloseCancel));
    ++c->ops;
  }
  io_->close_slot(c->slot, ud(c, kOpClose));
  ++c->ops;
}

void UringLoop::destroy(UringConn* c) {
  if (c->all_prev != nullptr)
    c->all_prev->all_next = c->all_next;
  else
    all_head_ = c->all_next;
  if (c->all_next != nullptr) c->all_next->all_prev = c->all_prev;
  --live_;
  delete c;
}

// ---------------------------------------------------------------------------------------
// accepting

void UringLoop::arm_accept(Nanos now) {
  if (draining_ || accept_stopped_) return;
  if (kicked_) {
    // A worker paused or resumed: connections may wait in the backlog with no accept of
    // this loop woken for them (see the header comment). Issue the accepts anew.
    kicked_ = false;
    cancel_accepts();
  }
  if (shared_->worker.paused.load(std::memory_order_relaxed)) {
    cancel_accepts();  // the process is at capacity: the backlog is the siblings'
    return;
  }
  if (now < accept_resume_at_) return;
  if (budget_stops_accept(now)) return;
  // Re-armed once the cancelled accepts have completed (their completions wake the loop).
  if (accept_multi_ == Accept::kCancelling || single_cancels_ != 0) return;
  // Room: free direct descriptors, and (worker) connections left before the pause.
  const uint64_t room = std::min<uint64_t>(free_slots_, process_room());
  if (pacer_.limited()) {
    // --accept-rate: single-shot accepts only, each holding one token; out of tokens, the
    // loop wakes for the next (accept_resume_at_) and the backlog waits.
    while (accept_single_ < kMaxSingleAccepts && accept_single_ < room) {
      if (!pacer_.take(now)) {
        accept_resume_at_ = pacer_.ready_at();
        counters_->overload_actions[static_cast<size_t>(metrics::OverloadAction::kAcceptRate)]
            .add();
        break;
      }
      io_->accept(listen_fd_, false, kUdAcceptOne);
      ++accept_single_;
      ++stats_.accept_single_arms;
    }
    return;
  }
  if (room >= accept_headroom_) {
    table_full_ = false;
    if (accept_multi_ == Accept::kOff && accept_single_ == 0) {
      io_->accept(listen_fd_, true, kUdAcceptMulti);
      accept_multi_ = Accept::kArmed;
      ++stats_.accept_multishot_arms;
    }
    return;
  }
  // Nearly full: a multishot accept could take a whole backlog into the table at once, and
  // the kernel drops a connection it cannot place (or: the worker would overshoot its
  // capacity by a backlog). One slot per accept in flight instead.
  if (accept_multi_ == Accept::kArmed) {
    io_->cancel(kUdAcceptMulti, kUdIgnore);
    accept_multi_ = Accept::kCancelling;
    return;
  }
  while (accept_single_ < kMaxSingleAccepts && accept_single_ < room) {
    io_->accept(listen_fd_, false, kUdAcceptOne);
    ++accept_single_;
    ++stats_.accept_single_arms;
  }
  if (free_slots_ == 0 && !table_full_) {
    table_full_ = true;
    ++stats_.accept_pauses;
    log_table_full(now);
  } else if (free_slots_ != 0) {
    table_full_ = false;
  }
}

bool UringLoop::budget_stops_accept(Nanos now) {
  if (account_.pressure() < core::Pressure::kStopAccept) {
    budget_full_ = false;
    budget_recheck_at_ = kNever;
    return false;
  }
  if (!budget_full_) {
    budget_full_ = true;
    counters_->overload_actions[static_cast<size_t>(metrics::OverloadAction::kStopAccept)].add();
  }
  budget_recheck_at_ = now + kBudgetRecheck;
  cancel_accepts();
  return true;
}

void UringLoop::cancel_accepts() {
  if (accept_multi_ == Accept::kArmed) {
    io_->cancel(kUdAcceptMulti, kUdIgnore);
    accept_multi_ = Accept::kCancelling;
  }
  // Each cancel ends one single-shot accept (the first the kernel finds), or finds none
  // when they all completed already.
  while (single_cancels_ < accept_single_) {
    io_->cancel(kUdAcceptOne, kUdIgnore);
    ++single_cancels_;
  }
}

uint64_t UringLoop::process_room() const {
  if (shared_->worker.pause_at == 0) return UINT64_MAX;
  const uint64_t open = shared_->open.load(std::memory_order_relaxed);
  return open < shared_->worker.pause_at ? shared_->worker.pause_at - open : 0;
}

void UringLoop::update_pause() {
  // Transitions are rare (the process reaching or leaving its capacity).
  WorkerShare& worker = shared_->worker;
  std::lock_guard lock(worker.pause_mu);
  const uint64_t open = shared_->open.load(std::memory_order_relaxed);
  const bool was = worker.paused.load(std::memory_order_relaxed);
  const bool now_paused = was ? open >= worker.resume_below : open >= worker.pause_at;
  if (now_paused == was) return;
  worker.paused.store(now_paused, std::memory_order_relaxed);
  if (worker.gate != nullptr) worker.gate->set_accepting(!now_paused);
  // Every loop of every worker wakes: this process's loops follow the flag (cancel or
  // re-arm their accepts), the siblings issue their accepts anew (and take what this one
  // left in the backlog), the supervisor re-reads the board.
  if (worker.kick_fd >= 0) {
    const uint64_t one = 1;
    ssize_t rc = ::write(worker.kick_fd, &one, sizeof one);
    (void)rc;
  }
}

void UringLoop::shed(Nanos now) {
  core::MemoryBudget* budget = shared_->budget;
  if (budget == nullptr) return;
  // This loop's connections holding memory, largest first (Session::shed_rank; a scan, on
  // this rare path only: the budget is past its limit). Their blocks come back when their
  // requests complete. Connections already finished (shed in an earlier turn) count as
  // freeing.
  std::vector<std::pair<std::pair<size_t, size_t>, UringConn*>> held;
  size_t freeing = 0;
  for (UringConn* c = all_head_; c != nullptr; c = c->all_next) {
    const auto rank = c->session.shed_rank();
    if (c->closing || c->session.finished()) {
      freeing += rank.first;
    } else if (rank.first != 0) {
      held.emplace_back(rank, c);
    }
  }
  std::sort(held.begin(), held.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (auto& [rank, c] : held) {
    if (budget->used() <= budget->shed_resume() + freeing) break;
    c->session.shed(now);
    freeing += rank.first;
    mark(c);
  }
}

void UringLoop::log_table_full(Nanos now) {
  Nanos last = shared_->table_full_logged.load(std::memory_order_relaxed);
  if (now - last < AcceptErrorLog::kInterval) return;
  if (!shared_->table_full_logged.compare_exchange_strong(last, now, std::memory_order_relaxed))
    return;
  log_warn(
      "accept: the direct-descriptor table of a loop is full ({} connections, sized by the fd "
      "limit): accepting pauses until a connection closes; the rest wait in the listen "
      "backlog ({} accepted into a full table and dropped by the kernel so far)",
      fixed_files_, stats_.accept_dropped);
}

// ---------------------------------------------------------------------------------------
// drain

void UringLoop::start_drain(Nanos now) {
  draining_ = true;
  // Stop listening: new and backlogged connects are refused, and the pending accept
  // completes with -EINVAL. Idempotent, and safe while other loops still hold the shared
  // fd (the engine closes it after run()). A worker's inherited listener is the
  // supervisor's to shut down (it does, before it signals the drain).
  if (!shared_->worker.shared_listener) sys::shutdown_both(listen_fd_);
  cancel_accepts();
  if (kick_armed_) io_->cancel(kUdKick, kUdIgnore);
  Nanos start = shared_->drain_at.load(std::memory_order_relaxed);
  if (start == kNever || start > now) start = now;
  if (config_.drain_timeout > 0) drain_deadline_ = start + config_.drain_timeout;
  report_.open_at_start = conns_;
  for (UringConn* c = all_head_; c != nullptr; c = c->all_next) {
    if (c->closing || c->refused) continue;
    c->session.begin_drain(now);
    mark(c);
  }
}

void UringLoop::force_all(Nanos now) {
  forced_ = true;
  hard_deadline_ = now + config_.limits.write_timeout + kForceGrace;
  for (UringConn* c = all_head_; c != nullptr; c = c->all_next) {
    if (c->closing || c->refused) continue;
    ++report_.force_closed;
    if (c->session.request_in_flight()) ++report_.in_flight;
    c->session.force_close(now);
    mark(c);
  }
}

void UringLoop::abort_all() {
  hard_deadline_ = kNever;
  for (UringConn* c = all_head_; c != nullptr; c = c->all_next) {
    if (c->closing) continue;
    close_conn(c, true, true);
    mark(c);
  }
}

}  // namespace c10m::engine
