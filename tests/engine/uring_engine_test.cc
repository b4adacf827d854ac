// The io_uring engine's own paths, in process (UringEngine with shrunken rings so that the
// rare paths are taken on purpose) and through the server binary: buffer-ring exhaustion
// (-ENOBUFS) and the re-arm of a multishot receive that ended, a full completion queue,
// short sends, backpressure (receive cancelled, -ECANCELED, re-armed), a peer reset while
// sending, a full direct-descriptor table, zero-copy sends, more connections than the fd
// limit, a worker's pause at capacity on an inherited listener (and the kernel behaviour
// that makes it re-issue its accepts on each kick), and a clear refusal where io_uring is
// forbidden. Every test checks the bytes that
// come back, and that the path under test was taken (UringStats). Skipped with the reason
// where io_uring is unavailable.
#include "engine/uring/uring_engine.h"

#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_client.h"
#include "test_util.h"

namespace c10m::test {
namespace {

using engine::UringEngine;
using engine::UringOptions;
using engine::UringStats;

void print_stats(const UringStats& s) {
  std::printf(
      "  stats: enters %lu early %lu cqes %lu sqes %lu recv_arms %lu rearms %lu enobufs %lu "
      "cancels %lu short %lu zc %lu overflow %lu dropped %lu accept multi %lu single %lu "
      "pauses %lu\n",
      s.enters, s.early_submits, s.cqes, s.sqes, s.recv_arms, s.recv_rearms, s.enobufs,
      s.recv_cancels, s.short_sends, s.zc_sends, s.cq_overflows, s.cq_dropped,
      s.accept_multishot_arms, s.accept_single_arms, s.accept_pauses);
}

/// A UringEngine serving on a thread of this process; drained and joined on destruction.
class InProcessServer {
 public:
  InProcessServer(core::ServerConfig config, const UringOptions& options) {
    config.addr = "127.0.0.1:0";
    if (config.threads == 0) config.threads = 1;
    config.drain_timeout = 2 * kSecond;  // a test that forgets a client still ends quickly
    engine_ = std::make_unique<UringEngine>(config, nullptr, options);
    error_ = engine_->bind();
    if (error_.empty()) thread_ = std::thread([this] { report_ = engine_->run(); });
  }
  ~InProcessServer() { stop(); }
  const std::string& error() const { return error_; }
  uint16_t port() const { return engine_->port(); }
  UringEngine& engine() { return *engine_; }
  /// Drains and joins; the stats are final afterwards.
  const UringStats& stop() {
    if (thread_.joinable()) {
      engine_->request_drain();
      thread_.join();
      print_stats(engine_->stats());
    }
    return engine_->stats();
  }
  /// Waits (bounded) until the engine holds `n` open connections.
  bool wait_open(uint64_t n, milliseconds timeout = milliseconds(10000)) {
    const auto end = Clock::now() + timeout;
    while (engine_->open_connections() != n) {
      if (Clock::now() > end) return false;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return true;
  }

 private:
  std::unique_ptr<UringEngine> engine_;
  std::string error_;
  std::thread thread_;
  engine::DrainReport report_;
};

class UringEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = engine_skip_reason("uring"); !why.empty()) GTEST_SKIP() << why;
  }
};

/// `count` ECHO frames with payloads of 0..max_len bytes (deterministic), concatenated.
Bytes echo_burst(int count, size_t max_len, uint32_t seed) {
  Bytes out;
  uint32_t x = seed * 2654435761u + 1;
  for (int i = 0; i < count; ++i) {
    x = x * 1103515245u + 12345u;
    const size_t n = (x >> 8) % (max_len + 1);
    Bytes payload(n);
    for (size_t k = 0; k < n; ++k) payload[k] = static_cast<uint8_t>(x + k);
    const Bytes f = frame(0x02, payload);
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

/// Holds a loop in user space before its next wait (UringOptions::before_wait) until
/// released; every wait is bounded, so a test that fails never hangs the loop.
class LoopGate {
 public:
  std::function<void()> hook() {
    return [this] {
      if (!hold_.load()) return;
      held_ = true;
      const auto end = Clock::now() + milliseconds(10000);
      while (hold_.load() && Clock::now() < end) std::this_thread::sleep_for(milliseconds(1));
      held_ = false;
    };
  }
  /// True once the loop is held. `wake` must give the loop a completion (it may be waiting
  /// with no timeout); the hook runs before its next wait.
  bool hold(const std::function<void()>& wake) {
    hold_ = true;
    wake();
    const auto end = Clock::now() + milliseconds(10000);
    while (!held_.load()) {
      if (Clock::now() > end) return false;
      std::this_thread::sleep_for(milliseconds(1));
    }
    return true;
  }
  void release() { hold_ = false; }

 private:
  std::atomic<bool> hold_{false};
  std::atomic<bool> held_{false};
};

/// Each client writes its burst from its own thread while this thread reads every client's
/// echo back; true when every client got exactly its bytes. With a `gate`, every client
/// first makes one round trip (accepted, receiving), then the loop is held (woken by one
/// more frame from the first client) while each client writes the first 2 KiB of its
/// burst, so that the loop's next wait finds all of them at once.
bool echo_all(uint16_t port, int clients, int frames, size_t max_len, LoopGate* gate = nullptr) {
  std::vector<TestClient> cs(static_cast<size_t>(clients));
  std::vector<Bytes> bursts;
  for (int i = 0; i < clients; ++i) {
    if (cs[static_cast<size_t>(i)].connect(port) != 0) return false;
    bursts.push_back(echo_burst(frames, max_len, static_cast<uint32_t>(i)));
  }
  std::vector<size_t> sent(static_cast<size_t>(clients), 0);
  if (gate != nullptr) {
    const Bytes hello = frame(0x02, Bytes{1, 2, 3});
    for (auto& c : cs) {
      if (!c.write_all(hello) || c.read_bytes(hello.size(), milliseconds(20000)) != hello) {
        ADD_FAILURE() << "a client's first round trip failed";
        return false;
      }
    }
    if (!gate->hold([&] { cs[0].write_all(hello); })) {
      ADD_FAILURE() << "the loop was not held within 10 s";
      return false;
    }
    for (int i = 0; i < clients; ++i) {
      const Bytes& b = bursts[static_cast<size_t>(i)];
      const size_t n = std::min<size_t>(2048, b.size());
      if (!cs[static_cast<size_t>(i)].write_all(Bytes(b.begin(), b.begin() + n))) {
        gate->release();
        return false;
      }
      sent[static_cast<size_t>(i)] = n;
    }
    gate->release();
    if (cs[0].read_bytes(hello.size(), milliseconds(20000)) != hello) {
      ADD_FAILURE() << "the frame that woke the loop was not echoed";
      return false;
    }
  }
  std::atomic<bool> wrote{true};
  std::vector<std::thread> writers;
  for (int i = 0; i < clients; ++i)
    writers.emplace_back([&, i] {
      const Bytes& b = bursts[static_cast<size_t>(i)];
      const Bytes rest(b.begin() + static_cast<ptrdiff_t>(sent[static_cast<size_t>(i)]), b.end());
      if (!cs[static_cast<size_t>(i)].write_all(rest)) wrote = false;
    });
  bool ok = true;
  for (int i = 0; i < clients; ++i) {
    const Bytes& want = bursts[static_cast<size_t>(i)];
    const Bytes got = cs[static_cast<size_t>(i)].read_bytes(want.size(), milliseconds(20000));
    if (got != want) {
      ADD_FAILURE() << "client " << i << ": got " << got.size() << " of " << want.size() << " bytes"
                    << (got.size() == want.size() ? " (different)" : "");
      ok = false;
    }
  }
  for (auto& t : writers) t.join();
  return ok && wrote.load();
}

TEST_F(UringEngineTest, ExhaustedBufferRingEndsReceivesThatAreRearmedWithNothingLost) {
  // Two 64-byte buffers, one buffer per receive: 16 pipelining clients run the ring dry
  // (-ENOBUFS ends their multishot receives) many times over.
  UringOptions o;
  o.buffers = 2;
  o.buffer_size = 64;
  o.incremental = false;
  InProcessServer server({}, o);
  ASSERT_EQ(server.error(), "");
  EXPECT_TRUE(echo_all(server.port(), 16, 2000, 150));
  const UringStats& s = server.stop();
  EXPECT_GT(s.enobufs, 0u);
  EXPECT_GT(s.recv_rearms, 0u);
}

TEST_F(UringEngineTest, IncrementalBuffersShareOneBufferAcrossReceives) {
  if (!engine::uring_support().incremental) GTEST_SKIP() << "no IOU_PBUF_RING_INC (Linux < 6.12)";
  UringOptions o;
  o.buffers = 2;
  o.buffer_size = 512;
  o.incremental = true;
  InProcessServer server({}, o);
  ASSERT_EQ(server.error(), "");
  EXPECT_TRUE(echo_all(server.port(), 16, 2000, 150));
  const UringStats& s = server.stop();
  EXPECT_GT(s.enobufs, 0u);
}

TEST_F(UringEngineTest, FullCompletionQueueLosesNothing) {
  // An 8-entry CQ and a 4-entry SQ against 32 pipelining clients: completions overflow
  // into the kernel's list, multishot receives end and are re-armed, the SQ fills mid-turn.
  // The loop is held while all 32 clients write, so its next wait completes 32 receives at
  // once (more than the CQ holds) and that turn has more than 4 requests to submit, on any
  // build's timing.
  LoopGate gate;
  UringOptions o;
  o.sq_entries = 4;
  o.cq_entries = 8;
  o.before_wait = gate.hook();
  InProcessServer server({}, o);
  ASSERT_EQ(server.error(), "");
  EXPECT_TRUE(echo_all(server.port(), 32, 1000, 100, &gate));
  const UringStats& s = server.stop();
  EXPECT_GT(s.cq_overflows + s.recv_rearms, 0u);
  EXPECT_GT(s.early_submits, 0u);
  EXPECT_EQ(s.cq_dropped, 0u);
}

TEST_F(UringEngineTest, ShortSendsResumeWhereTheKernelStopped) {
  core::ServerConfig cfg;
  cfg.sndbuf = 4096;  // inherited by accepted sockets from the listener
  InProcessServer server(cfg, {});
  ASSERT_EQ(server.error(), "");
  TestClient c;
  ASSERT_EQ(c.connect(server.port()), 0);
  const uint64_t total = 4 << 20;
  ASSERT_TRUE(c.write_all(fetch(total, 65535)));
  std::this_thread::sleep_for(milliseconds(100));  // let the socket buffers fill
  uint64_t got = 0;
  for (;;) {
    auto f = c.read_frame(milliseconds(10000));
    ASSERT_TRUE(f.has_value()) << "after " << got << " bytes";
    ASSERT_EQ(f->type, 0x06);
    if (f->payload.empty()) break;
    for (size_t i = 0; i < f->payload.size(); ++i)
      ASSERT_EQ(f->payload[i], (got + i) % 251) << "byte " << got + i;
    got += f->payload.size();
  }
  EXPECT_EQ(got, total);
  c.close();
  EXPECT_GT(server.stop().short_sends, 0u);
}

TEST_F(UringEngineTest, BackpressureCancelsTheReceiveAndRearmsIt) {
  // A 1 KiB write queue: the session stops wanting input after a few replies, the loop
  // cancels the multishot receive (-ECANCELED) and re-arms it once the client reads.
  core::ServerConfig cfg;
  cfg.limits.write_queue = 1024;
  InProcessServer server(cfg, {});
  ASSERT_EQ(server.error(), "");
  EXPECT_TRUE(echo_all(server.port(), 4, 5000, 300));
  EXPECT_GT(server.stop().recv_cancels, 0u);
}

TEST_F(UringEngineTest, PeerResetWhileSendingFreesTheConnection) {
  InProcessServer server({}, {});
  ASSERT_EQ(server.error(), "");
  {
    TestClient c;
    ASSERT_EQ(c.connect(server.port()), 0);
    ASSERT_TRUE(c.write_all(fetch(uint64_t{1} << 30, 65535)));  // a send is always in flight
    ASSERT_TRUE(c.read_frame().has_value());
    ASSERT_TRUE(server.wait_open(1));
    linger l{1, 0};
    ::setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    c.close();  // RST
  }
  EXPECT_TRUE(server.wait_open(0)) << "the reset connection was not closed";
  TestClient d;
  ASSERT_EQ(d.connect(server.port()), 0);
  ASSERT_TRUE(d.write_all(ping()));
  auto f = d.read_frame();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->type, 0x01);
}

TEST_F(UringEngineTest, FullDescriptorTablePausesAcceptWithoutDroppingConnections) {
  // Four direct descriptors: the fifth and later connections wait in the listen backlog
  // (single-shot accepts near the limit, none at it) and are served as others close.
  UringOptions o;
  o.fixed_files = 4;
  InProcessServer server({}, o);
  ASSERT_EQ(server.error(), "");
  std::vector<TestClient> cs(10);
  for (auto& c : cs) {
    ASSERT_EQ(c.connect(server.port()), 0);
    ASSERT_TRUE(c.write_all(ping()));
  }
  ASSERT_TRUE(server.wait_open(4));
  int served = 0;
  std::vector<bool> done(cs.size(), false);
  auto collect = [&](milliseconds wait) {
    for (size_t i = 0; i < cs.size(); ++i) {
      if (!done[i] && cs[i].read_frame(wait).has_value()) {
        done[i] = true;
        ++served;
      }
    }
  };
  collect(milliseconds(50));
  EXPECT_EQ(served, 4);
  // Close the served ones: the waiting connections get the slots, none was dropped.
  const auto end = Clock::now() + milliseconds(10000);
  while (served < 10 && Clock::now() < end) {
    for (size_t i = 0; i < cs.size(); ++i)
      if (done[i]) cs[i].close();
    collect(milliseconds(10));
  }
  EXPECT_EQ(served, 10);
  cs.clear();
  const UringStats& s = server.stop();
  EXPECT_GT(s.accept_pauses, 0u);
  EXPECT_GT(s.accept_single_arms, 0u);
}

TEST_F(UringEngineTest, ZeroCopySendsDeliverTheSameBytes) {
  if (!engine::uring_support().send_zc) GTEST_SKIP() << "no IORING_OP_SEND_ZC";
  UringOptions o;
  o.zerocopy_min = 1024;
  // SEND_ZC takes the first queued block alone: copied FETCH bodies make it a large one
  // (by reference, the first iovec is a 5-byte header).
  core::ServerConfig cfg;
  cfg.fetch_send = core::FetchSend::kCopy;
  InProcessServer server(cfg, o);
  ASSERT_EQ(server.error(), "");
  TestClient c;
  ASSERT_EQ(c.connect(server.port()), 0);
  const uint64_t total = 3 << 20;
  ASSERT_TRUE(c.write_all(cat({fetch(total, 60000), echo(std::string(5000, 'z')), ping()})));
  uint64_t got = 0;
  for (;;) {
    auto f = c.read_frame(milliseconds(10000));
    ASSERT_TRUE(f.has_value());
    ASSERT_EQ(f->type, 0x06);
    if (f->payload.empty()) break;
    for (size_t i = 0; i < f->payload.size(); ++i)
      ASSERT_EQ(f->payload[i], (got + i) % 251) << "byte " << got + i;
    got += f->payload.size();
  }
  EXPECT_EQ(got, total);
  auto e = c.read_frame();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->payload, Bytes(5000, 'z'));
  auto p = c.read_frame();
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->type, 0x01);
  c.close();
  EXPECT_GT(server.stop().zc_sends, 0u);
}

TEST_F(UringEngineTest, OneProcessHoldsMoreConnectionsThanItsFdLimit) {
  // RLIMIT_NOFILE 64, two loops: each loop's direct-descriptor table holds up to 64
  // connections and none of them is a process fd.
  ServerProcess server;
  ASSERT_TRUE(server.start({"--engine", "uring", "--threads", "2", "--metrics-addr", "off"}, 64))
      << server.stderr_text();
  EXPECT_TRUE(server.wait_stderr("at most ~128 connections")) << server.stderr_text();
  std::vector<TestClient> cs(120);
  for (auto& c : cs) {
    ASSERT_EQ(c.connect(server.port()), 0);
    ASSERT_TRUE(c.write_all(ping()));
  }
  int served = 0;
  for (auto& c : cs) {
    auto f = c.read_frame(milliseconds(5000));
    if (f.has_value() && f->type == 0x01) ++served;
  }
  EXPECT_EQ(served, 120);
  cs.clear();
  expect_clean_exit(server);
}

/// Completions of `ud` that accepted a connection on `ring`, reaped until `want` of them
/// came or `wait` passed.
int accepted_by(engine::UringRing& ring, uint64_t ud, int want, milliseconds wait) {
  int n = 0;
  const auto end = Clock::now() + wait;
  engine::UringCqe cqes[16];
  while (n < want && Clock::now() < end) {
    ring.submit_and_wait(10 * kMillisecond);
    const int got = ring.reap(cqes, 16);
    for (int i = 0; i < got; ++i)
      if (cqes[i].user_data == ud && cqes[i].res >= 0) ++n;
  }
  return n;
}

// Why a uring worker re-issues its accepts on each kick (uring_loop.h): an io_uring accept
// waits on the listener exclusively (one waiter woken per connection) and an armed
// multishot accept keeps its place at the head of the wait queue. Ring A's accept, armed
// first, gets the wake-ups of three connections; A cancels it before its deferred task work
// ran (a worker pausing at capacity); the connections stay in the backlog and ring B's
// armed accept sleeps through them. An accept B issues anew takes them at once.
TEST_F(UringEngineTest, ArmedAcceptSleepsThroughABacklogASiblingLeft) {
  const auto ep = sys::parse_ipv4_endpoint("127.0.0.1:0");
  ASSERT_TRUE(ep.has_value());
  sys::Fd listener(sys::listen_tcp(*ep, sys::ListenOptions{}));
  ASSERT_TRUE(listener.valid());
  const uint16_t port = ntohs(sys::local_endpoint(listener.get())->sin_port);
  UringOptions o;
  o.sq_entries = 16;
  o.cq_entries = 64;
  engine::UringBufferRing bufs_a(8, 64, false), bufs_b(8, 64, false);
  engine::UringRing a, b;
  ASSERT_EQ(a.init(o, 16, &bufs_a), "");
  ASSERT_EQ(b.init(o, 16, &bufs_b), "");
  ASSERT_EQ(a.enable(), "");
  ASSERT_EQ(b.enable(), "");
  constexpr uint64_t kAccept = 8, kCancel = 16, kAgain = 24;
  a.accept(listener.get(), true, kAccept);
  a.submit_and_wait(0);
  b.accept(listener.get(), true, kAccept);
  b.submit_and_wait(0);
  constexpr int kConns = 3;
  std::vector<TestClient> cs(kConns);
  for (auto& c : cs) ASSERT_EQ(c.connect(port), 0);
  a.cancel(kAccept, kCancel);  // submitted before A's task work runs: -ECANCELED
  const int by_a = accepted_by(a, kAccept, kConns, milliseconds(100));
  const int by_b_armed = accepted_by(b, kAccept, kConns - by_a, milliseconds(300));
  b.cancel(kAccept, kCancel);
  b.accept(listener.get(), true, kAgain);
  const int by_b_anew = accepted_by(b, kAgain, kConns - by_a - by_b_armed, milliseconds(5000));
  std::printf("  accepted: by A %d, by B's armed accept %d, by B's accept issued anew %d\n", by_a,
              by_b_armed, by_b_anew);
  EXPECT_EQ(by_a + by_b_armed + by_b_anew, kConns) << "a connection was lost";
  EXPECT_EQ(by_a, 0) << "A's task work ran before its cancel";
  EXPECT_EQ(by_b_armed, 0) << "B's armed accept was woken: the kick re-arm is not needed";
  b.disable();
  a.disable();
}

/// The worker board's view of a UringEngine in worker mode.
class RecordingGate final : public engine::AcceptGate {
 public:
  void set_accepting(bool accepting) override {
    accepting_.store(accepting);
    changes_.fetch_add(1);
  }
  std::atomic<bool> accepting_{true};
  std::atomic<int> changes_{0};
};

// A worker's engine on an inherited listener with capacity 3 (resume below 3): the fourth
// and fifth connections wait in the backlog while the gate says "not accepting" and the
// kick eventfd was written; each close lets one more in. The engine neither shuts down
// nor closes the inherited listener.
TEST_F(UringEngineTest, WorkerPausesAtCapacityAndResumesBelowIt) {
  const auto ep = sys::parse_ipv4_endpoint("127.0.0.1:0");
  ASSERT_TRUE(ep.has_value());
  sys::Fd listener(sys::listen_tcp(*ep, sys::ListenOptions{}));
  ASSERT_TRUE(listener.valid());
  sys::Fd kick(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(kick.valid());
  RecordingGate gate;
  core::ServerConfig cfg;
  cfg.threads = 1;
  cfg.drain_timeout = 2 * kSecond;
  UringEngine eng(cfg, nullptr, {});
  engine::WorkerListener wl;
  wl.listen_fd = listener.get();
  wl.kick_fd = kick.get();
  wl.capacity = 3;
  wl.resume_below = 3;
  wl.gate = &gate;
  ASSERT_EQ(eng.adopt_worker_listener(wl), "");
  ASSERT_EQ(eng.bind(), "");
  const uint16_t port = ntohs(sys::local_endpoint(listener.get())->sin_port);
  EXPECT_EQ(eng.port(), port);
  std::thread run([&] { eng.run(); });

  std::vector<TestClient> cs(5);
  for (auto& c : cs) {
    ASSERT_EQ(c.connect(port), 0);
    ASSERT_TRUE(c.write_all(ping()));
  }
  std::vector<bool> served(cs.size(), false);
  // Answers read, up to `want`, each client waited for up to `wait` (the backlog is FIFO:
  // the ones served first are the earliest).
  auto collect = [&](int want, milliseconds wait) {
    int n = 0;
    for (size_t i = 0; i < cs.size() && n < want; ++i) {
      if (!served[i] && cs[i].fd() >= 0 && cs[i].read_frame(wait).has_value()) {
        served[i] = true;
        ++n;
      }
    }
    return n;
  };
  auto close_one_served = [&] {
    for (size_t i = 0; i < cs.size(); ++i) {
      if (served[i] && cs[i].fd() >= 0) {
        cs[i].close();
        return;
      }
    }
  };
  EXPECT_EQ(collect(3, milliseconds(5000)), 3);
  EXPECT_EQ(eng.open_connections(), 3u);
  EXPECT_FALSE(gate.accepting_.load());
  uint64_t kicks = 0;
  EXPECT_EQ(::read(kick.get(), &kicks, sizeof kicks), static_cast<ssize_t>(sizeof kicks));
  EXPECT_GT(kicks, 0u);
  EXPECT_EQ(collect(2, milliseconds(200)), 0) << "accepted past its capacity";
  // Below the capacity again: one more from the backlog, then paused again.
  close_one_served();
  EXPECT_EQ(collect(1, milliseconds(5000)), 1);
  EXPECT_EQ(collect(1, milliseconds(200)), 0) << "accepted past its capacity";
  close_one_served();
  EXPECT_EQ(collect(1, milliseconds(5000)), 1);
  EXPECT_GE(gate.changes_.load(), 5);  // off, on, off, on, off
  cs.clear();
  eng.request_drain();
  run.join();
  print_stats(eng.stats());
  // The kick eventfd is never read by the engine (always readable): its multishot poll
  // completes once per write, it does not spin the loop.
  EXPECT_LT(eng.stats().enters, 10000u);
  // The listener is still the supervisor's: open and listening.
  TestClient late;
  EXPECT_EQ(late.connect(port), 0);
}

/// Runs the server binary with io_uring_setup forbidden by a seccomp filter (as a container
/// runtime or kernel.io_uring_disabled would); returns its exit code and stderr.
int run_without_io_uring(std::string* err) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], STDERR_FILENO);
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(std::size(filter)), filter};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
      _exit(126);
    const char* argv[] = {C10M_SERVER_BIN, "--engine",       "uring", "--addr",
                          "127.0.0.1:0",   "--metrics-addr", "off",   nullptr};
    ::execv(argv[0], const_cast<char* const*>(argv));
    _exit(127);
  }
  ::close(pipefd[1]);
  char b[4096];
  ssize_t n;
  err->clear();
  while ((n = ::read(pipefd[0], b, sizeof b)) > 0) err->append(b, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(UringEngineUnavailable, ForbiddenIoUringIsAClearErrorNotAFallback) {
  std::string err;
  EXPECT_EQ(run_without_io_uring(&err), 1) << err;
  EXPECT_NE(err.find("io_uring is disabled"), std::string::npos) << err;
  EXPECT_NE(err.find("--engine epoll"), std::string::npos) << err;
  EXPECT_EQ(err.find("listening on"), std::string::npos) << err;
}

}  // namespace
}  // namespace c10m::test
