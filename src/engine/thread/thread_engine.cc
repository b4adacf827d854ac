#include "engine/thread/thread_engine.h"

#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "base/buffer_pool.h"
#include "base/log.h"
#include "core/session.h"

namespace c10m::engine {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr size_t kStackFactor = 8;  // sanitizers need much bigger frames
#else
constexpr size_t kStackFactor = 1;
#endif

int poll_timeout_ms(Nanos deadline, Nanos now) {
  if (deadline == kNever) return -1;
  if (deadline <= now) return 0;
  const Nanos ms = (deadline - now + kMillisecond - 1) / kMillisecond;
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

}  // namespace

struct ThreadEngine::Conn {
  ThreadEngine* engine = nullptr;
  int fd = -1;
  Conn* prev = nullptr;
  Conn* next = nullptr;
  metrics::ThreadCounters counters;  // private: this thread is its only writer
};

ThreadEngine::ThreadEngine(const core::ServerConfig& config, CounterSlots* counters)
    : config_(config), content_(make_content(config)) {
  if (counters == nullptr || counters->capacity() < kCounterSlots) {
    own_counters_ = std::make_unique<PrivateCounterSlots>(kCounterSlots);
    counters = own_counters_.get();
  }
  shared_counters_ = counters->slot(0);
  budget_ = std::make_unique<core::MemoryBudget>(config.memory_limit, config.overload_levels);
  shared_counters_->memory_budget_limit.set(config.memory_limit);
  stack_size_ = std::max<size_t>(config.thread_stack, PTHREAD_STACK_MIN) * kStackFactor;
}

// drain_ (the last member) waits for a request_drain() still in progress.
ThreadEngine::~ThreadEngine() = default;

std::string ThreadEngine::adopt_worker_listener(const WorkerListener& listener) {
  worker_ = listener;
  if (listener.listen_fd >= 0) {
    listen_fd_ = listener.listen_fd;
    if (auto local = sys::local_endpoint(listen_fd_)) port_ = ntohs(local->sin_port);
  } else if (listener.capacity != 0) {
    // Own SO_REUSEPORT listener: refuse beyond capacity (see engine.h).
    if (config_.max_conns == 0 || config_.max_conns > listener.capacity)
      config_.max_conns = listener.capacity;
    worker_.capacity = 0;
  }
  return "";
}

std::string ThreadEngine::bind() {
  if (listen_fd_ >= 0) return "";
  std::vector<sys::Fd> fds;
  std::string err = bind_listeners(config_, 1, /*nonblocking=*/true, &fds, &port_);
  if (err.empty()) {
    listener_ = std::move(fds[0]);
    listen_fd_ = listener_.get();
  }
  return err;
}

void ThreadEngine::kick() {
  if (worker_.kick_fd < 0) return;
  const uint64_t one = 1;
  ssize_t rc = ::write(worker_.kick_fd, &one, sizeof one);
  (void)rc;
}

bool ThreadEngine::wait_for_room() {
  if (worker_.gate != nullptr) worker_.gate->set_accepting(false);
  kick();
  {
    std::unique_lock lock(mu_);
    // finish() notifies cv_ as each connection thread ends; the timeout notices the drain.
    while (open_.load(std::memory_order_relaxed) >= worker_.resume_below && !drain_.requested())
      cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
  if (drain_.requested()) return false;
  if (worker_.gate != nullptr) worker_.gate->set_accepting(true);
  kick();
  return true;
}

void ThreadEngine::request_drain() {
  drain_.request(&drain_at_);  // async-signal-safe
}

DrainReport ThreadEngine::run() {
  if (listen_fd_ < 0) {
    if (std::string err = bind(); !err.empty()) {
      log_warn("{}", err);
      return {};
    }
  }
  std::thread acceptor([this] { acceptor_main(); });
  // Wait for the drain request (the eventfd stays readable: it is never read).
  for (;;) {
    pollfd p{drain_.fd(), POLLIN, 0};
    if (::poll(&p, 1, -1) > 0) break;
  }
  const Nanos now = mono_now();
  Nanos start = drain_at_.load(std::memory_order_relaxed);
  if (start == kNever || start > now) start = now;
  // Stop listening (new connects are refused) unless the listener is the supervisor's;
  // the drain eventfd wakes the acceptor either way.
  if (listener_.valid()) sys::shutdown_both(listener_.get());
  acceptor.join();
  listener_.reset();

  DrainReport report;
  // Each connection thread forces itself at the drain deadline and then has at most the
  // write timeout to flush; past that (plus slack) run() shuts down the stragglers' sockets.
  const Nanos hard = config_.drain_timeout > 0 ? start + config_.drain_timeout +
                                                     config_.limits.write_timeout + 2 * kForceGrace
                                               : kNever;
  std::unique_lock lock(mu_);
  while (threads_alive_ > 0) {
    const Nanos t = mono_now();
    if (t >= hard) {
      for (Conn* c = conns_head_; c != nullptr; c = c->next) sys::shutdown_both(c->fd);
      cv_.wait(lock, [this] { return threads_alive_ == 0; });
      break;
    }
    const Nanos wait = hard == kNever ? kSecond : std::min(hard - t, kSecond);
    cv_.wait_for(lock, std::chrono::nanoseconds(wait));
  }
  lock.unlock();
  // Counted by the connections themselves when they see the drain: a snapshot taken here
  // would miss those that closed while this thread was still stopping the acceptor.
  report.open_at_start = open_at_drain_.load();
  report.closed_by_peer = closed_by_peer_.load();
  report.force_closed = force_closed_.load();
  report.in_flight = in_flight_.load();
  return report;
}

void ThreadEngine::acceptor_main() {
  // The acceptor's own counters and pool (for refusals), merged like a connection's.
  auto counters = std::make_unique<metrics::ThreadCounters>();
  BufferPool pool(core::kSessionBlockSize, config_.pool, 1);
  core::SessionEnv env;
  env.limits = config_.limits;
  env.content = content_.get();
  env.pool = &pool;
  env.counters = counters.get();
  env.read_chunk = config_.readbuf;
  bool budget_stopped = false;
  AcceptPacer pacer(config_.accept_rate, mono_now());
  for (;;) {
    if (budget_->pressure() >= core::Pressure::kStopAccept && !drain_.requested()) {
      // The memory budget is nearly full: leave new connections in the backlog.
      if (!budget_stopped) {
        budget_stopped = true;
        counters->overload_actions[static_cast<size_t>(metrics::OverloadAction::kStopAccept)].add();
        merge_counters(counters.get(), shared_counters_);
      }
      pollfd p{drain_.fd(), POLLIN, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    budget_stopped = false;
    if (worker_.capacity != 0 && open_.load(std::memory_order_relaxed) >= worker_.capacity &&
        !wait_for_room())
      break;
    if (!pacer.take(mono_now())) {
      // --accept-rate: leave new connections in the backlog until the next token.
      counters->overload_actions[static_cast<size_t>(metrics::OverloadAction::kAcceptRate)].add();
      merge_counters(counters.get(), shared_counters_);
      const Nanos wait = pacer.ready_at() - mono_now();
      pollfd p{drain_.fd(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::max<Nanos>(1, (wait + kMillisecond - 1) / kMillisecond)));
      continue;
    }
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {drain_.fd(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) {
      log_warn("poll(listener): {}", std::strerror(errno));
      break;
    }
    if (drain_.requested()) break;
    if ((p[0].revents & (POLLIN | POLLERR | POLLHUP)) == 0) continue;
    // The accepted socket is blocking whatever the listener is (accept4 flags).
    const int fd = sys::accept_conn(listen_fd_, /*nonblocking=*/false);
    const Nanos now = mono_now();
    if (drain_.requested()) {
      if (fd >= 0) ::close(fd);
      break;
    }
    if (fd < 0) {
      const int err = -fd;
      // EAGAIN: a sibling worker took it first.
      if (err == ECONNABORTED || err == EPROTO || err == EPERM || err == EAGAIN ||
          err == EWOULDBLOCK) {
        pacer.give_back();
        continue;
      }
      if (err == EINVAL) break;  // listener shut down
      counters->accept_errors[static_cast<size_t>(accept_error_kind(err))].add();
      merge_counters(counters.get(), shared_counters_);
      if (is_resource_error(err)) {
        accept_log_.record(err, now);
      } else {
        log_warn("accept: {}", std::strerror(err));
      }
      // Back off (never spin); the drain eventfd cuts the pause short.
      pollfd p{drain_.fd(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(AcceptErrorLog::kBackoff / kMillisecond));
      continue;
    }
    counters->accept_total.add();
    sys::apply_socket_options(fd, socket_options(config_));
    const uint64_t before = open_.fetch_add(1, std::memory_order_relaxed);
    if (config_.max_conns != 0 && before >= config_.max_conns) {
      open_.fetch_sub(1, std::memory_order_relaxed);
      core::Session s(env, now);
      s.refuse_overloaded(now);
      iovec iov[4];
      const int cnt = s.gather(iov, 4);
      sys::set_io_timeouts(fd, 0, kWriteSlice);
      if (cnt > 0) {
        const ssize_t n = sys::writev_some(fd, iov, cnt);
        if (n > 0) {
          s.on_sent(static_cast<size_t>(n), now);
        }
      }
      ::close(fd);
      merge_counters(counters.get(), shared_counters_);
      continue;
    }
    auto* c = new Conn;
    c->engine = this;
    c->fd = fd;
    if (!start_thread(c)) {
      open_.fetch_sub(1, std::memory_order_relaxed);
      ::close(fd);
      delete c;
      counters->accept_errors[static_cast<size_t>(metrics::AcceptError::kNomem)].add();
      accept_log_.record(ENOMEM, now);
      pollfd p{drain_.fd(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(AcceptErrorLog::kBackoff / kMillisecond));
    } else {
      counters->conns_opened.add();
    }
    merge_counters(counters.get(), shared_counters_);
  }
  merge_counters(counters.get(), shared_counters_);
}

bool ThreadEngine::start_thread(Conn* c) {
  {
    std::lock_guard lock(mu_);
    c->next = conns_head_;
    if (conns_head_ != nullptr) conns_head_->prev = c;
    conns_head_ = c;
    ++threads_alive_;
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_size_);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t tid;
  const int rc = pthread_create(&tid, &attr, &ThreadEngine::conn_main, c);
  pthread_attr_destroy(&attr);
  if (rc == 0) return true;
  std::lock_guard lock(mu_);
  unlink_locked(c);
  --threads_alive_;
  return false;
}

void ThreadEngine::unlink_locked(Conn* c) {
  if (c->prev != nullptr)
    c->prev->next = c->next;
  else
    conns_head_ = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
}

void* ThreadEngine::conn_main(void* arg) {
  auto* c = static_cast<Conn*>(arg);
  const bool reset = c->engine->serve(c);
  c->engine->finish(c, reset);
  return nullptr;
}

void ThreadEngine::finish(Conn* c, bool reset) {
  merge_counters(&c->counters, shared_counters_);
  {
    // Unlink before close: once unlinked, run() no longer shuts this fd down, so it cannot
    // hit a reused fd number.
    std::lock_guard lock(mu_);
    unlink_locked(c);
  }
  // Count it out before the peer can see the close (--max-conns and a quick reconnect).
  open_.fetch_sub(1, std::memory_order_relaxed);
  if (reset) {
    sys::close_with_reset(c->fd);
  } else {
    ::close(c->fd);
  }
  delete c;
  std::lock_guard lock(mu_);
  --threads_alive_;
  // Notify under the lock; run() may destroy the engine as soon as it sees zero, and this
  // thread touches nothing of it after the unlock.
  cv_.notify_all();
}

bool ThreadEngine::serve(Conn* c) {
  const int fd = c->fd;
  metrics::ThreadCounters* counters = &c->counters;
  const Nanos write_slice = config_.limits.write_timeout > 0
                                ? std::min(kWriteSlice, config_.limits.write_timeout)
                                : kWriteSlice;
  sys::set_io_timeouts(fd, 0, write_slice);
  BufferPool pool(core::kSessionBlockSize, config_.pool, kPoolCache);
  BufferPool small_pool(core::kSessionSmallBlockSize, config_.pool, kPoolCache);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[config_.readbuf]);  // off the small stack
  core::BudgetAccount account(budget_.get(), 0, counters);
  core::SessionEnv env;
  env.limits = config_.limits;
  env.content = content_.get();
  env.pool = &pool;
  env.small_pool = &small_pool;
  env.counters = counters;
  env.read_chunk = config_.readbuf;
  env.account = &account;
  // No MSG_ZEROCOPY here (its completions arrive as POLLERR): zerocopy sends by writev.
  env.fetch_body = config_.fetch_send == core::FetchSend::kCopy       ? core::FetchBody::kCopy
                   : config_.fetch_send == core::FetchSend::kSendfile ? core::FetchBody::kFile
                                                                      : core::FetchBody::kReference;
  env.ingest_trunc = config_.ingest_trunc;
  env.ref_min_chunk = config_.fetch_ref_min;
  const bool files = config_.fetch_send == core::FetchSend::kSendfile;

  Nanos now = mono_now();
  core::Session s(env, now);
  bool peer_eof = false;
  uint32_t rcvlowat = 1;  // SO_RCVLOWAT now set (1: the kernel's default)
  bool drain_seen = false;
  bool forced = false;
  bool aborted = false;
  Nanos drain_deadline = kNever;
  Nanos hard_deadline = kNever;

  auto check_time = [&](Nanos t, bool stalled) {
    if (!drain_seen && drain_.requested()) {
      drain_seen = true;
      open_at_drain_.fetch_add(1, std::memory_order_relaxed);
      s.begin_drain(t);
      if (config_.drain_timeout > 0) {
        Nanos start = drain_at_.load(std::memory_order_relaxed);
        if (start == kNever || start > t) start = t;
        drain_deadline = start + config_.drain_timeout;
      }
    }
    if (drain_seen && !forced && t >= drain_deadline) {
      forced = true;
      force_closed_.fetch_add(1, std::memory_order_relaxed);
      if (s.request_in_flight()) in_flight_.fetch_add(1, std::memory_order_relaxed);
      s.force_close(t);
      hard_deadline = t + config_.limits.write_timeout + kForceGrace;
    }
    account.refresh();
    s.note_pressure();
    // Past the limit a connection sheds itself if it is a holder the budget must reclaim:
    // its output has not moved for a whole write slice (`stalled`), or it holds input with
    // nothing to write (partial or held frames). A connection that is merely answering
    // (its reply queued a moment ago) is not one.
    if (account.pressure() == core::Pressure::kShed && s.memory_held() != 0 &&
        (stalled || !s.has_output()) && budget_->used() > budget_->shed_resume())
      s.shed(t);
    if (t >= s.next_deadline()) {
      // Read what is already waiting before timing the peer out: the delay may be ours
      // (this thread was not scheduled, or read in small pieces).
      while (!peer_eof && s.wants_read() && s.input_timeout_due(t)) {
        const ssize_t n = sys::read_nowait(fd, buf.get(), config_.readbuf);
        if (n > 0) {
          s.on_bytes({buf.get(), static_cast<size_t>(n)}, t);
          continue;
        }
        if (n == 0) {
          peer_eof = true;
          s.on_peer_eof(t);
        } else if (n != -EAGAIN && n != -EWOULDBLOCK) {
          aborted = true;
        }
        break;
      }
      if (!aborted) s.on_tick(t);
    }
    if (t >= hard_deadline) aborted = true;
  };

  check_time(now, false);
  for (;;) {
    // Write everything owed, blocking in slices.
    while (!aborted && s.has_output() && !s.finished()) {
      iovec iov[64];
      const core::Session::OutputView v = s.gather_output(iov, 64, files);
      ssize_t n;
      if (v.iovcnt > 0) {
        // MSG_MORE: headers now, their body by sendfile next, in one segment.
        n = sys::sendmsg_some(fd, iov, v.iovcnt, v.file_fd >= 0 ? MSG_MORE : 0);
      } else if (v.file_fd >= 0) {
        n = sys::sendfile_some(fd, v.file_fd, v.file_offset, v.file_length);
        if (n > 0) counters->sendfile_bytes.add(static_cast<uint64_t>(n));
      } else {
        break;
      }
      now = mono_now();
      if (n > 0) {
        s.on_sent(static_cast<size_t>(n), now);
        continue;
      }
      if (n == -EAGAIN || n == -EWOULDBLOCK) {  // a slice passed with the peer not reading
        check_time(now, /*stalled=*/true);
        merge_counters(counters, shared_counters_);  // after: overload actions show at once
        continue;
      }
      aborted = true;
    }
    merge_counters(counters, shared_counters_);
    if (aborted || s.finished()) break;

    const bool want_read = !peer_eof && s.wants_read();
    if (want_read) {
      // A partial frame: poll() waits for what it misses (up to --rcvlowat), and the
      // read below does not block even when woken with less (memory pressure).
      const uint32_t mark = lowat_mark(s, config_.rcvlowat);
      if (mark != rcvlowat && sys::set_rcvlowat(fd, static_cast<int>(mark)) == 0) rcvlowat = mark;
    }
    pollfd fds[2];
    fds[0] = {fd, static_cast<short>(want_read ? POLLIN : 0), 0};
    fds[1] = {drain_.fd(), POLLIN, 0};
    Nanos deadline = s.next_deadline();
    if (drain_seen && !forced) deadline = std::min(deadline, drain_deadline);
    deadline = std::min(deadline, hard_deadline);
    // Blocks cached beyond one are given back once the connection has had nothing to do
    // for kPoolTrimAfter (a connection that never needed them never wakes for this).
    const bool trim_due = pool.cached() > 1 || small_pool.cached() > 1;
    const Nanos before_poll = mono_now();
    if (trim_due) deadline = std::min(deadline, before_poll + kPoolTrimAfter);
    const int rc = ::poll(fds, drain_seen ? 1 : 2, poll_timeout_ms(deadline, before_poll));
    now = mono_now();
    if (rc == 0 && trim_due && now - before_poll >= kPoolTrimAfter && !s.has_output()) {
      pool.trim(1);
      small_pool.trim(1);
    }
    if (rc > 0) {
      const short re = fds[0].revents;
      if (re & (POLLERR | POLLNVAL)) {
        aborted = true;
      } else if (want_read && (re & (POLLIN | POLLHUP))) {
        // --ingest trunc: a large SINK/CHUNK payload is dropped in the kernel; before it,
        // only its header is read (Session engine contract 2b).
        const size_t discard = config_.ingest_trunc ? s.discard_pending() : 0;
        const size_t hint = s.read_hint();
        ssize_t n;
        if (discard != 0) {
          n = sys::discard_some(fd, discard);
        } else {
          n = sys::read_nowait(fd, buf.get(),
                               hint != 0 && hint < config_.readbuf ? hint : config_.readbuf);
        }
        now = mono_now();
        if (n > 0 && discard != 0) {
          counters->discarded_bytes.add(static_cast<uint64_t>(n));
          s.on_discarded(static_cast<size_t>(n), now);
        } else if (n > 0) {
          s.on_bytes({buf.get(), static_cast<size_t>(n)}, now);
        } else if (n == 0) {
          peer_eof = true;
          s.on_peer_eof(now);
        } else if (n != -EAGAIN && n != -EWOULDBLOCK) {
          aborted = true;
        }
      } else if (re & POLLHUP) {
        aborted = true;
      }
    }
    if (!aborted) check_time(now, false);
    if (aborted) break;
  }

  if (drain_seen && !forced && (aborted || s.close_cause() == core::CloseCause::kPeerClosed))
    closed_by_peer_.fetch_add(1, std::memory_order_relaxed);
  counters->conns_closed.add();
  // RST for the write-timeout drop, and for a forced connection that could not flush.
  return (!aborted && s.reset_on_close()) || (aborted && forced);
}

}  // namespace c10m::engine
