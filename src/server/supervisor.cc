#include "server/supervisor.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "admin/admin_server.h"
#include "base/log.h"
#include "engine/engine_support.h"
#include "metrics/shm_counter_region.h"
#include "server/overload_refuser.h"
#include "server/worker_board.h"
#include "server/worker_process.h"
#include "sys/socket.h"

namespace c10m::server {
namespace {

char kSignalTag;
char kKickTag;
char kListenTag;

// What /metrics reads under a supervisor: the region's sums, with worker N (the
// supervisor's own refusals) left out of the per-worker series and the process count.
class SupervisorCounterSource final : public metrics::CounterSource {
 public:
  SupervisorCounterSource(const metrics::ShmCounterRegion* region, size_t workers)
      : region_(region), workers_(workers) {}
  void collect(metrics::CounterTotals* out) const override { region_->collect(out); }
  std::vector<pid_t> processes() const override { return region_->processes(); }
  size_t worker_processes() const override {
    size_t n = 0;
    for (size_t w = 0; w < workers_; ++w) n += metrics::process_alive(region_->worker_pid(w));
    return n;
  }
  std::vector<WorkerSample> per_worker() const override {
    std::vector<WorkerSample> v;
    for (size_t w = 0; w < workers_; ++w) v.push_back(region_->worker_sample(w));
    return v;
  }
  uint64_t worker_restarts() const override { return restarts_.load(); }
  std::vector<LoopAccepts> per_loop_accepts() const override {
    return region_->loop_accepts(workers_);
  }
  void add_restart() { restarts_.fetch_add(1); }

 private:
  const metrics::ShmCounterRegion* region_;
  size_t workers_;
  std::atomic<uint64_t> restarts_{0};
};

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return "stopped";
}

class Supervisor {
 public:
  explicit Supervisor(const ServerOptions& o) : o_(o) {}
  int run();

 private:
  struct Worker {
    pid_t pid = 0;
    bool alive = false;
    bool reported = false;
  };

  std::string setup();
  bool spawn(size_t i);
  void reap();
  void on_exit(size_t i, int status);
  bool all_ready() const;
  void update_overflow();
  void refuse_backlog();
  void begin_drain(int sig);
  void kill_all(int sig);
  void log_capacity();
  size_t alive_count() const;

  ServerOptions o_;
  core::ServerConfig cfg_;  // a worker's config (threads resolved), for counter slots
  size_t n_ = 0;
  std::unique_ptr<WorkerBoard> board_;
  std::unique_ptr<metrics::ShmCounterRegion> region_;
  std::unique_ptr<SupervisorCounterSource> source_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::unique_ptr<OverloadRefuser> refuser_;
  sys::Fd listener_;  // the shared listener, or (--reuseport) the socket holding the port
  bool shared_ = true;
  uint16_t port_ = 0;
  std::string where_;
  sys::Fd kick_;
  sys::Fd sigfd_;
  sys::Fd epfd_;
  bool listener_registered_ = false;
  std::vector<Worker> workers_;
  std::deque<Nanos> deaths_;
  bool started_ = false;
  bool draining_ = false;
  int signals_ = 0;
  int exit_code_ = 0;
};

std::string Supervisor::setup() {
  cfg_ = worker_config(o_.config, 0, static_cast<int>(n_));
  const auto addr = sys::parse_ipv4_endpoint(o_.config.addr);
  if (!addr) return "--addr " + o_.config.addr + ": expected host:port with an IPv4 host";
  shared_ = !o_.config.reuseport;
  if (shared_) {
    std::vector<sys::Fd> fds;
    core::ServerConfig c = o_.config;
    c.reuseport = false;
    if (std::string err = engine::bind_listeners(c, 1, /*nonblocking=*/true, &fds, &port_);
        !err.empty())
      return err;
    listener_ = std::move(fds[0]);
  } else {
    const int fd = sys::reserve_reuseport(*addr);
    if (fd < 0) {
      if (fd == -EADDRINUSE)
        return "address " + o_.config.addr +
               " is in use (another server running? pick another --addr)";
      return "cannot bind " + o_.config.addr + ": " + std::strerror(-fd);
    }
    listener_.reset(fd);
    const auto local = sys::local_endpoint(fd);
    if (!local) return "getsockname failed on " + o_.config.addr;
    port_ = ntohs(local->sin_port);
  }
  where_ = o_.config.addr.substr(0, o_.config.addr.rfind(':'));
  if (where_.empty() || where_ == "localhost") where_ = "127.0.0.1";
  where_ += ":" + std::to_string(port_);

  kick_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!kick_.valid()) return std::string("eventfd: ") + std::strerror(errno);
  std::string error;
  board_ = WorkerBoard::create(n_, &error);
  if (!board_) return error;
  // Workers 0..N-1, and N: the supervisor's own refusals.
  region_ = metrics::ShmCounterRegion::create_anonymous(
      "c10m-counters", n_ + 1, engine::counter_slots_needed(o_.kind, cfg_), &error);
  if (!region_) return error;
  refuser_ = std::make_unique<OverloadRefuser>(o_.config, region_->attach_worker(n_)->slot(0));
  source_ = std::make_unique<SupervisorCounterSource>(region_.get(), n_);

  if (o_.metrics_addr != "off" && !o_.metrics_addr.empty()) {
    admin::AdminConfig ac{o_.metrics_addr};
    ac.workers = static_cast<int>(n_);
    const WorkerBoard* board = board_.get();
    ac.worker_port = [board](int w) {
      return static_cast<uint16_t>(board->slot(static_cast<size_t>(w)).admin_port.load());
    };
    admin_ = std::make_unique<admin::AdminServer>(std::move(ac), source_.get());
    if (std::string err = admin_->start(); !err.empty()) {
      if (o_.metrics_addr_given) return err;
      log_warn("{}; serving without metrics (pass --metrics-addr to insist)", err);
      admin_.reset();
    } else {
      std::string host = o_.metrics_addr.substr(0, o_.metrics_addr.rfind(':'));
      if (host == "localhost") host = "127.0.0.1";
      fmt::print(stderr, "metrics on {}:{}\n", host, admin_->port());
    }
  }

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGCHLD);
  sigfd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd_.valid()) return std::string("signalfd: ") + std::strerror(errno);
  epfd_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epfd_.valid()) return std::string("epoll_create1: ") + std::strerror(errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &kSignalTag;
  ::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, sigfd_.get(), &ev);
  ev.events = EPOLLIN | EPOLLET;  // never read: every worker's write wakes us once
  ev.data.ptr = &kKickTag;
  ::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, kick_.get(), &ev);
  workers_.resize(n_);
  return "";
}

bool Supervisor::spawn(size_t i) {
  board_->slot(i).reset();
  WorkerHandoff h;
  h.index = static_cast<int>(i);
  h.count = static_cast<int>(n_);
  h.listen_fd = shared_ ? listener_.get() : -1;
  h.kick_fd = kick_.get();
  h.board_fd = board_->fd();
  h.region_fd = region_->fd();
  h.port = port_;
  // Everything the child needs is prepared before fork: after it, only async-signal-safe
  // calls (the admin server's threads may hold locks).
  std::vector<std::string> args = o_.argv;
  args.emplace_back("--worker");
  args.push_back(h.format());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int keep[] = {h.listen_fd, h.kick_fd, h.board_fd, h.region_fd};
  sigset_t child_mask;  // as main() sets it: INT, TERM, PIPE blocked (SIGCHLD not)
  sigemptyset(&child_mask);
  sigaddset(&child_mask, SIGINT);
  sigaddset(&child_mask, SIGTERM);
  sigaddset(&child_mask, SIGPIPE);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    log_warn("fork: {}", std::strerror(errno));
    return false;
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(1);  // the supervisor died before prctl
    for (int fd : keep)
      if (fd >= 0) ::fcntl(fd, F_SETFD, 0);
    ::sigprocmask(SIG_SETMASK, &child_mask, nullptr);
    ::execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  workers_[i].pid = pid;
  workers_[i].alive = true;
  workers_[i].reported = false;
  return true;
}

size_t Supervisor::alive_count() const {
  size_t n = 0;
  for (const Worker& w : workers_) n += w.alive;
  return n;
}

bool Supervisor::all_ready() const {
  for (size_t i = 0; i < n_; ++i) {
    if (board_->slot(i).state.load() != static_cast<uint32_t>(WorkerState::kReady)) return false;
  }
  return true;
}

void Supervisor::kill_all(int sig) {
  for (const Worker& w : workers_)
    if (w.alive) ::kill(w.pid, sig);
}

void Supervisor::reap() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (size_t i = 0; i < n_; ++i) {
      if (workers_[i].alive && workers_[i].pid == pid) {
        on_exit(i, status);
        break;
      }
    }
  }
}

void Supervisor::on_exit(size_t i, int status) {
  Worker& w = workers_[i];
  w.alive = false;
  BoardSlot& slot = board_->slot(i);
  if (draining_) {
    w.reported = slot.state.load() == static_cast<uint32_t>(WorkerState::kDrained);
    if (!w.reported)
      log_warn("worker {} (pid {}) {} during the drain, without a drain report", i, w.pid,
               describe_status(status));
    return;
  }
  if (!started_) {
    fmt::print(stderr, "c10m-server: worker {} (pid {}) {} during start-up\n", i, w.pid,
               describe_status(status));
    exit_code_ = 1;
    return;
  }
  slot.accepting.store(0);
  const Nanos now = mono_now();
  deaths_.push_back(now);
  while (!deaths_.empty() && now - deaths_.front() > kDeathWindow) deaths_.pop_front();
  if (deaths_.size() > static_cast<size_t>(kMaxDeaths)) {
    fmt::print(stderr,
               "c10m-server: workers keep dying ({} deaths within {} s; last: worker {} (pid {}) "
               "{}): giving up\n",
               deaths_.size(), kDeathWindow / kSecond, i, w.pid, describe_status(status));
    exit_code_ = 1;
    return;
  }
  const pid_t old = w.pid;
  source_->add_restart();
  if (!spawn(i)) {
    exit_code_ = 1;
    return;
  }
  log_warn("worker {} (pid {}) {}; restarted it (pid {})", i, old, describe_status(status), w.pid);
  update_overflow();
}

void Supervisor::update_overflow() {
  // Register the listener while no worker takes connections (all at capacity or dead),
  // so that none waits in the backlog unanswered.
  if (!shared_ || draining_) return;
  bool someone = false;
  for (size_t i = 0; i < n_ && !someone; ++i) {
    if (!workers_[i].alive) continue;
    const BoardSlot& s = board_->slot(i);
    const auto st = static_cast<WorkerState>(s.state.load());
    someone = st == WorkerState::kStarting || (st == WorkerState::kReady && s.accepting.load());
  }
  if (!someone && !listener_registered_) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.ptr = &kListenTag;
    // Adding checks readiness at once: a backlog already waiting wakes us.
    listener_registered_ = ::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, listener_.get(), &ev) == 0;
  } else if (someone && listener_registered_) {
    ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, listener_.get(), nullptr);
    listener_registered_ = false;
  }
}

void Supervisor::refuse_backlog() {
  for (int i = 0; i < 256; ++i) {
    const int fd = sys::accept_conn(listener_.get(), /*nonblocking=*/true);
    if (fd < 0) return;  // EAGAIN (a worker took it, or none left), or a resource error
    refuser_->refuse(fd);
  }
}

void Supervisor::begin_drain(int sig) {
  draining_ = true;
  log_info("{}: draining {} worker(s) (a second signal exits at once)", strsignal(sig),
           alive_count());
  if (admin_) admin_->set_draining();
  if (listener_registered_) {
    ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, listener_.get(), nullptr);
    listener_registered_ = false;
  }
  // Step 1 of the drain for every worker at once: pending and new connects are refused.
  if (shared_) sys::shutdown_both(listener_.get());
  kill_all(SIGTERM);
}

void Supervisor::log_capacity() {
  uint64_t total = 0, lo = UINT64_MAX, hi = 0, fd_limit = 0;
  for (size_t i = 0; i < n_; ++i) {
    const uint64_t c = board_->slot(i).capacity.load();
    total += c;
    lo = std::min(lo, c);
    hi = std::max(hi, c);
    fd_limit = board_->slot(i).fd_limit.load();
  }
  const int loops = engine::resolved_threads(cfg_);
  std::string engine_line;
  switch (o_.kind) {
    case engine::EngineKind::kEpoll:
      engine_line = fmt::format("{} event loop(s)", loops);
      break;
    case engine::EngineKind::kUring:
      engine_line = fmt::format("{} io_uring loop(s), connections as direct descriptors", loops);
      break;
    case engine::EngineKind::kThread:
      engine_line =
          fmt::format("one thread per connection ({} KiB stack)", cfg_.thread_stack >> 10);
      break;
  }
  const std::string per =
      lo == hi
          ? fmt::format("{} workers x ~{} = ~{} connections", n_, thousands(lo), thousands(total))
          : fmt::format("{} workers, ~{} to ~{} each = ~{} connections", n_, thousands(lo),
                        thousands(hi), thousands(total));
  log_info("engine {}{}, address {}, {} per worker, {}, fd limit {} per worker: {}",
           engine::engine_kind_name(o_.kind),
           o_.engine_why.empty() ? "" : " (" + o_.engine_why + ")", where_, engine_line,
           shared_ ? "one shared listener" : "SO_REUSEPORT listener per worker", fd_limit, per);
  if (o_.config.max_conns != 0 && total < o_.config.max_conns)
    log_warn("--max-conns {} is more than the workers can hold (~{}): add --workers",
             o_.config.max_conns, thousands(total));
  std::string pids;
  for (size_t i = 0; i < n_; ++i) pids += fmt::format("{}{}", i == 0 ? "" : ",", workers_[i].pid);
  log_info("workers started, pids {}", pids);
}

int Supervisor::run() {
  // SIGCHLD is read from a signalfd: block it before any thread (the admin server's) or
  // child exists, so it is never delivered elsewhere. INT and TERM are blocked by main().
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &chld, nullptr);
  n_ = static_cast<size_t>(o_.workers == 0 ? resolved_workers(o_) : o_.workers);
  if (std::string err = setup(); !err.empty()) {
    fmt::print(stderr, "c10m-server: {}\n", err);
    return 1;
  }
  for (size_t i = 0; i < n_; ++i) {
    if (!spawn(i)) {
      kill_all(SIGKILL);
      return 1;
    }
  }
  const Nanos start_deadline = mono_now() + kStartTimeout;
  epoll_event events[8];
  for (;;) {
    if (exit_code_ != 0) {
      kill_all(SIGKILL);
      return exit_code_;
    }
    if (!started_ && all_ready()) {
      started_ = true;
      log_capacity();
      fmt::print(stderr, "listening on {}\n", where_);
      std::fflush(stderr);
      update_overflow();
    }
    if (!started_ && !draining_ && mono_now() > start_deadline) {
      fmt::print(stderr, "c10m-server: the workers did not start within {} s\n",
                 kStartTimeout / kSecond);
      kill_all(SIGKILL);
      return 1;
    }
    if (draining_ && alive_count() == 0) break;
    const int n = ::epoll_wait(epfd_.get(), events, 8, started_ ? 1000 : 20);
    if (n < 0 && errno != EINTR) {
      log_warn("epoll_wait: {}", std::strerror(errno));
      kill_all(SIGKILL);
      return 1;
    }
    bool kicked = false, listen_ready = false;
    for (int i = 0; i < n; ++i) {
      void* p = events[i].data.ptr;
      if (p == &kSignalTag) {
        signalfd_siginfo si;
        while (::read(sigfd_.get(), &si, sizeof si) == sizeof si) {
          const int sig = static_cast<int>(si.ssi_signo);
          if (sig == SIGCHLD) continue;  // reaped below
          if (++signals_ == 1) {
            begin_drain(sig);
          } else {
            static const char kMsg[] = "c10m: second signal: exiting now\n";
            ssize_t rc = ::write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
            (void)rc;
            kill_all(SIGKILL);
            _exit(1);
          }
        }
      } else if (p == &kKickTag) {
        kicked = true;
      } else if (p == &kListenTag) {
        listen_ready = true;
      }
    }
    reap();  // also a safety net for a SIGCHLD merged with another
    if (listen_ready && listener_registered_) refuse_backlog();
    if (started_ && (kicked || n == 0)) update_overflow();
  }

  engine::DrainReport total;
  bool complete = true;
  for (size_t i = 0; i < n_; ++i) {
    if (!workers_[i].reported) {
      complete = false;
      continue;
    }
    const engine::DrainReport r = board_->slot(i).load_drain();
    total.open_at_start += r.open_at_start;
    total.closed_by_peer += r.closed_by_peer;
    total.force_closed += r.force_closed;
    total.in_flight += r.in_flight;
  }
  fmt::print(stderr, "drain: open={} closed_by_peer={} force_closed={} in_flight={}\n",
             total.open_at_start, total.closed_by_peer, total.force_closed, total.in_flight);
  std::fflush(stderr);
  if (admin_) admin_->stop();
  return complete ? 0 : 1;
}

}  // namespace

int resolved_workers(const ServerOptions& o) {
  const uint64_t fd_limit = sys::raise_fd_limit();
  // A worker's own fds at start are a dozen or so; the reserve covers the rest.
  uint64_t per = fd_limit > kWorkerFdReserve + 16 ? fd_limit - kWorkerFdReserve - 16 : 1;
  // uring workers hold direct descriptors, --threads x the fd limit each (worker_process.cc).
  if (o.kind == engine::EngineKind::kUring)
    per = engine::connection_capacity(o.kind, worker_config(o.config, 0, 1), fd_limit, 0);
  uint64_t n = 0;
  if (o.config.max_conns != 0) {
    n = (o.config.max_conns + per - 1) / per;
  } else {
    const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
    n = cores > 0 ? static_cast<uint64_t>(cores) : 1;
  }
  return static_cast<int>(std::clamp<uint64_t>(n, 2, 4096));
}

int run_supervisor(const ServerOptions& options) {
  Supervisor s(options);
  return s.run();
}

std::string WorkerHandoff::format() const {
  return fmt::format("{},{},{},{},{},{},{}", index, count, listen_fd, kick_fd, board_fd, region_fd,
                     port);
}

std::optional<WorkerHandoff> WorkerHandoff::parse(const std::string& text) {
  WorkerHandoff h;
  int port = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%d,%d,%d,%d,%d,%d,%d%c", &h.index, &h.count, &h.listen_fd,
                  &h.kick_fd, &h.board_fd, &h.region_fd, &port, &tail) != 7)
    return std::nullopt;
  if (h.index < 0 || h.count <= 0 || h.index >= h.count || h.kick_fd < 0 || h.board_fd < 0 ||
      h.region_fd < 0 || port < 0 || port > 65535)
    return std::nullopt;
  h.port = static_cast<uint16_t>(port);
  return h;
}

}  // namespace c10m::server
