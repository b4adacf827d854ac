// The load client end to end, against echo_peer (bench/peers) and c10m-server:
// coordinated omission avoided (a 200 ms server stall shows in p99), closed-loop runs are
// labelled, corrupted echoes are counted as mismatches, every op validates against the
// server, GOAWAY is honoured, and ~40,000 connections open through --procs and --srcips
// to two servers of two worker processes each, every one answered, with per-process and
// merged counts in the JSON. Write coalescing: the requests of one loop turn leave in one
// write per connection (closed loop, and an open-model catch-up), partial writes to a slow
// reader keep frame boundaries, and a client starved of CPU by the scheduler says so, as
// does a --procs worker that starts after the run's window.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "loadclient/direct_ring.h"
#include "loadclient/io_batch.h"
#include "loadclient/load_stats.h"
#include "sys/socket.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

std::string echo_peer_bin() {
  return (fs::path(C10M_LOADCLIENT_BIN).parent_path().parent_path() / "bench" / "peers" /
          "echo_peer")
      .string();
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("c10m_lc_" + std::to_string(getpid()) + "_" + name))
      .string();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `nofile` > 0: the child's RLIMIT_NOFILE (soft and hard) before it starts.
pid_t spawn(const std::vector<std::string>& args, const std::string& out_path,
            const std::string& err_path, rlim_t nofile = 0) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (nofile > 0) {
      const rlimit lim{nofile, nofile};
      if (setrlimit(RLIMIT_NOFILE, &lim) != 0) _exit(126);
    }
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits for `pid` at most `limit`; kills it past that. Returns the exit status or -1.
int wait_bounded(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(10ms);
  }
}

// A server process (c10m-server or echo_peer) on 127.0.0.1 port 0.
struct Server {
  pid_t pid = -1;
  int port = 0;
  std::string err_path;
  std::string addr() const { return "127.0.0.1:" + std::to_string(port); }
  ~Server() {
    stop();
    fs::remove(err_path);
  }
  void stop() {
    if (pid <= 0) return;
    kill(pid, SIGCONT);
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
};

std::unique_ptr<Server> start_server(std::vector<std::string> args, const std::string& name) {
  auto s = std::make_unique<Server>();
  static int serial = 0;
  s->err_path = temp_path(name + std::to_string(++serial) + ".err");
  fs::remove(s->err_path);  // never read a previous server's port
  args.insert(args.end(), {"--addr", "127.0.0.1:0"});
  s->pid = spawn(args, "/dev/null", s->err_path);
  const std::regex re("listening on 127\\.0\\.0\\.1:([0-9]+)");
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    const std::string err = read_file(s->err_path);
    if (std::regex_search(err, m, re)) {
      s->port = std::stoi(m[1]);
      return s;
    }
    int status;
    if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
      s->pid = -1;
      return nullptr;
    }
    std::this_thread::sleep_for(10ms);
  }
  return nullptr;
}

std::unique_ptr<Server> start_echo_peer(std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {echo_peer_bin()};
  args.insert(args.end(), extra.begin(), extra.end());
  return start_server(args, "echo_peer");
}

std::unique_ptr<Server> start_c10m_server(const std::string& name = "server") {
  if (!fs::exists(C10M_SERVER_BIN)) return nullptr;
  return start_server({C10M_SERVER_BIN, "--engine", "epoll"}, name);
}

// c10m-server when it starts and answers, else nullptr (tests then use echo_peer or skip).
bool server_works() {
  static const bool works = [] {
    auto s = start_c10m_server("probe");
    return s != nullptr;
  }();
  return works;
}

struct ClientRun {
  int status = -1;
  std::string out, err;
  json result;
};

ClientRun run_client(std::vector<std::string> args, const std::string& name,
                     std::chrono::seconds limit = 30s,
                     const std::function<void(pid_t)>& during = nullptr, rlim_t nofile = 0) {
  ClientRun r;
  const std::string json_path = temp_path(name + ".json");
  const std::string out_path = temp_path(name + ".out"), err_path = temp_path(name + ".stderr");
  fs::remove(json_path);
  args.insert(args.begin(), C10M_LOADCLIENT_BIN);
  args.insert(args.end(), {"--json", json_path});
  const pid_t pid = spawn(args, out_path, err_path, nofile);
  if (during) during(pid);
  r.status = wait_bounded(pid, limit);
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  const std::string text = read_file(json_path);
  r.result = json::parse(text, nullptr, false);
  for (auto& p : {json_path, out_path, err_path}) fs::remove(p);
  return r;
}

// The tests that depend on how the client moves bytes run once per --io mode; run_io adds
// the mode to the arguments and to the temp files' names.
class LoadClientIo : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (std::string(GetParam()) == "uring" && !c10m::loadclient::IoBatch::unavailable().empty())
      GTEST_SKIP() << c10m::loadclient::IoBatch::unavailable();
    if (std::string(GetParam()) == "direct" &&
        !c10m::loadclient::DirectRing::unavailable().empty())
      GTEST_SKIP() << c10m::loadclient::DirectRing::unavailable();
  }
  ClientRun run_io(std::vector<std::string> args, const std::string& name,
                   std::chrono::seconds limit = 30s,
                   const std::function<void(pid_t)>& during = nullptr) const {
    args.insert(args.end(), {"--io", GetParam()});
    return run_client(std::move(args), name + "_" + GetParam(), limit, during);
  }
};
INSTANTIATE_TEST_SUITE_P(Io, LoadClientIo, ::testing::Values("epoll", "uring", "direct"),
                         [](const auto& info) { return std::string(info.param); });

TEST_P(LoadClientIo, CleanEchoMixHasNoMismatchOrError) {
  auto peer = start_echo_peer();
  ASSERT_TRUE(peer);
  auto r = run_io({"--addr", peer->addr(), "--conns", "8", "--rate", "100", "--duration", "1s",
                   "--op", "echo", "--payload", "0:0.1,64:0.6,4096:0.2,65535:0.1", "--seed", "9"},
                  "clean");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.out << r.err;
  const json& s = r.result["summary"];
  EXPECT_EQ(s["mismatches"], 0);
  EXPECT_EQ(s["errors"], 0);
  EXPECT_EQ(s["conns"]["open"], 8);
  EXPECT_EQ(r.result["totals"]["sent_measured"], r.result["totals"]["done_measured"]);
  EXPECT_GT(r.result["totals"]["done_measured"].get<int>(), 0);
  EXPECT_EQ(r.result["mode"], "open");
  // Operator experience: the live line, the table, and the stamps in the JSON.
  EXPECT_NE(r.err.find("conns 8/8"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("p99.9"), std::string::npos) << r.out;
  EXPECT_TRUE(r.result["host"].contains("git_commit"));
  EXPECT_TRUE(r.result["host"].contains("kernel"));
  EXPECT_FALSE(r.result["series"].empty());
  EXPECT_EQ(r.result["processes"].size(), 1u);
  EXPECT_EQ(r.result["config"]["io"], GetParam());
}

TEST(LoadClientRun, CorruptedEchoIsCountedAsMismatch) {
  auto peer = start_echo_peer({"--flip-every", "1000"});
  ASSERT_TRUE(peer);
  auto r = run_client({"--addr", peer->addr(), "--conns", "4", "--rate", "100", "--duration", "1s",
                       "--op", "echo", "--payload", "200", "--quiet"},
                      "flip");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  EXPECT_GT(r.result["summary"]["mismatches"].get<int>(), 0) << r.result["totals"].dump();
  EXPECT_NE(r.out.find("mismatches"), std::string::npos);
}

// Coordinated omission: a server stopped for 200 ms in the middle of a fixed-rate run must
// show in the tail (latency from the intended send time), and the same run in closed-loop
// mode must say it is closed-loop.
TEST_P(LoadClientIo, ServerStallShowsInP99AndClosedLoopIsLabelled) {
  std::unique_ptr<Server> server = server_works() ? start_c10m_server() : start_echo_peer();
  ASSERT_TRUE(server);
  const pid_t target = server->pid;
  auto stall = [target](pid_t) {
    std::this_thread::sleep_for(1000ms);
    kill(target, SIGSTOP);
    std::this_thread::sleep_for(200ms);
    kill(target, SIGCONT);
  };
  auto open = run_io({"--addr", server->addr(), "--conns", "20", "--rate", "200", "--duration",
                      "2s", "--op", "echo", "--quiet"},
                     "stall_open", 30s, stall);
  ASSERT_EQ(open.status, 0) << open.err;
  ASSERT_FALSE(open.result.is_discarded()) << open.err;
  EXPECT_EQ(open.result["mode"], "open");
  EXPECT_FALSE(open.result["closed_loop"].get<bool>());
  EXPECT_GE(open.result["summary"]["latency_us"]["p99"].get<double>(), 100'000.0) << open.out;
  EXPECT_EQ(open.result["summary"]["mismatches"], 0);

  auto closed = run_io({"--addr", server->addr(), "--conns", "20", "--inflight", "1", "--duration",
                        "2s", "--op", "echo", "--quiet"},
                       "stall_closed", 30s, stall);
  ASSERT_EQ(closed.status, 0) << closed.err;
  ASSERT_FALSE(closed.result.is_discarded()) << closed.err;
  EXPECT_EQ(closed.result["mode"], "closed-loop");
  EXPECT_TRUE(closed.result["closed_loop"].get<bool>());
  EXPECT_NE(closed.result["label"].get<std::string>().find("CLOSED-LOOP"), std::string::npos);
  EXPECT_NE(closed.out.find("CLOSED-LOOP (latency excludes queueing; not for SLO claims)"),
            std::string::npos)
      << closed.out;
  EXPECT_EQ(closed.result["summary"]["mismatches"], 0);
}

TEST_P(LoadClientIo, EveryOpValidatesAgainstTheServer) {
  if (!server_works()) GTEST_SKIP() << "c10m-server not available";
  auto server = start_c10m_server();
  ASSERT_TRUE(server);
  for (const char* op : {"ping", "echo", "sink", "stream", "fetch"}) {
    std::vector<std::string> args = {"--addr",  server->addr(), "--conns", "4",    "--rate",
                                     "50",      "--duration",   "1s",      "--op", op,
                                     "--quiet", "--chunk",      "1000"};
    if (std::string(op) != "ping")
      args.insert(args.end(), {"--payload", "0:0.1,100:0.5,2500:0.3,65535:0.1"});
    auto r = run_io(args, std::string("op_") + op);
    ASSERT_EQ(r.status, 0) << op << r.err;
    ASSERT_FALSE(r.result.is_discarded()) << op << r.err;
    EXPECT_EQ(r.result["summary"]["mismatches"], 0) << op;
    EXPECT_EQ(r.result["summary"]["errors"], 0) << op << r.result["totals"].dump();
    EXPECT_EQ(r.result["totals"]["sent_measured"], r.result["totals"]["done_measured"]) << op;
    EXPECT_GT(r.result["totals"]["done_measured"].get<int>(), 0) << op;
  }
}

TEST_P(LoadClientIo, GoawayStopsSendingAndClosesCleanly) {
  if (!server_works()) GTEST_SKIP() << "c10m-server not available";
  auto server = start_c10m_server();
  ASSERT_TRUE(server);
  const pid_t target = server->pid;
  auto r = run_io(
      {"--addr", server->addr(), "--conns", "10", "--rate", "100", "--duration", "2s", "--quiet"},
      "goaway", 30s, [target](pid_t) {
        std::this_thread::sleep_for(800ms);
        kill(target, SIGTERM);
      });
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  const json& t = r.result["totals"];
  EXPECT_EQ(t["goaways"], 10) << t.dump();
  EXPECT_EQ(t["unanswered"], 0) << t.dump();
  EXPECT_EQ(t["unexpected_closes"], 0) << t.dump();
  EXPECT_EQ(r.result["summary"]["mismatches"], 0);
  EXPECT_EQ(t["conns_open"], 0) << "every connection closed after its GOAWAY";
  EXPECT_EQ(wait_bounded(server->pid, 10s), 0) << read_file(server->err_path);
  server->pid = -1;
}

// Two servers of two worker processes each (--workers 2), four client processes, eight
// source IPs: 40,000 established TCP connections, more than one process may hold (20,000
// fds each). Every connection sends PINGs (the schedule gives each at least one within the
// run) and every one is answered: no connection waits in a full process's backlog, since
// a worker at its fd capacity stops accepting and its sibling takes the connection.
TEST(LoadClientRun, FortyThousandConnectionsThroughProcsAndSrcips) {
  if (!server_works()) GTEST_SKIP() << "c10m-server not available";
  if (!fs::exists(C10M_SERVER_BIN)) GTEST_SKIP();
  auto a = start_server(
      {C10M_SERVER_BIN, "--engine", "epoll", "--workers", "2", "--metrics-addr", "off"},
      "server_a");
  auto b = start_server(
      {C10M_SERVER_BIN, "--engine", "epoll", "--workers", "2", "--metrics-addr", "off"},
      "server_b");
  ASSERT_TRUE(a && b);
  constexpr int kConns = 40000;
  auto r = run_client(
      {"--addr", a->addr() + "," + b->addr(), "--procs", "4", "--conns", std::to_string(kConns),
       "--active-frac", "1", "--rate", "0.2", "--op", "ping", "--srcips", "127.0.0.2-127.0.0.9",
       "--duration", "12s", "--grace", "10s", "--quiet"},
      "forty_k", 60s);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  const json& conns = r.result["summary"]["conns"];
  const json& t = r.result["totals"];
  EXPECT_EQ(conns["target"], kConns);
  EXPECT_EQ(conns["open"], kConns) << t.dump();
  EXPECT_EQ(conns["connect_failures"], 0);
  EXPECT_EQ(r.result["summary"]["errors"], 0) << t.dump();
  EXPECT_EQ(r.result["summary"]["mismatches"], 0) << t.dump();
  EXPECT_EQ(t["unanswered"], 0) << t.dump();
  EXPECT_EQ(t["sent_measured"], t["done_measured"]) << t.dump();
  EXPECT_GE(t["done_measured"].get<int64_t>(), kConns) << "every connection got its PING answered";
  ASSERT_EQ(r.result["processes"].size(), 4u);
  int sum = 0;
  std::set<int> pids;
  for (const json& p : r.result["processes"]) {
    EXPECT_EQ(p["conns_target"], kConns / 4);
    EXPECT_EQ(p["conns_open"], kConns / 4) << p["connect_errors"];
    sum += p["conns_open"].get<int>();
    pids.insert(p["pid"].get<int>());
  }
  EXPECT_EQ(sum, kConns);
  EXPECT_EQ(pids.size(), 4u) << "four distinct worker processes";
  EXPECT_EQ(t["conns_open"], kConns);
}

// --pack-active: the active connections fill the first process; the second holds only
// idle ones. Every process still holds its share of connections (its fd load). The window
// is timed from before the fork: 3 s leaves room for a worker that starts late on a busy box
// (seen under TSan at ctest -j2: a 1 s window was over before either worker connected).
TEST(LoadClientRun, PackActivePutsEverySenderInTheFirstProcess) {
  std::unique_ptr<Server> server = server_works() ? start_c10m_server() : start_echo_peer();
  ASSERT_TRUE(server);
  auto r = run_client(
      {"--addr", server->addr(), "--procs", "2", "--conns", "40", "--active-frac", "0.25", "--rate",
       "50", "--pack-active", "--duration", "3s", "--op", "echo", "--quiet"},
      "pack_active", 30s);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  ASSERT_EQ(r.result["processes"].size(), 2u);
  for (const json& p : r.result["processes"]) {
    EXPECT_EQ(p["conns_target"], 20);
    EXPECT_EQ(p["conns_open"], 20);
    EXPECT_EQ(p["active_target"], p["index"] == 0 ? 10 : 0) << p.dump();
    if (p["index"] == 1) {
      EXPECT_EQ(p["ops_completed"], 0);
    }
  }
  EXPECT_GT(r.result["totals"]["done_measured"].get<int64_t>(), 0);
  EXPECT_EQ(r.result["summary"]["errors"], 0);
  EXPECT_EQ(r.result["summary"]["mismatches"], 0);
}

// A --procs worker that starts after the run's window has ended (a box too busy to start
// them all in time) sends nothing; it says so instead of reporting an empty run silently.
TEST(LoadClientRun, WorkerStartedAfterTheWindowSaysSo) {
  std::unique_ptr<Server> server = start_echo_peer();
  ASSERT_TRUE(server);
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const int64_t t0 = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec - 60000000000;
  auto r = run_client(
      {"--addr", server->addr(), "--conns", "2", "--rate", "10", "--duration", "1s", "--quiet",
       "--worker-index", "1", "--worker-count", "2", "--worker-t0", std::to_string(t0)},
      "late_worker", 30s);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("worker 1: started "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("after the run's window ended"), std::string::npos) << r.err;
}

// Closed loop: the replacements for the replies of one read leave together, so with 8 in
// flight a connection writes up to 8 frames per syscall (never more: that would mean more
// than 8 in flight), and every reply still matches its request in order.
TEST_P(LoadClientIo, ClosedLoopWritesEachTurnsRequestsInOneSyscall) {
  std::unique_ptr<Server> server = server_works() ? start_c10m_server() : start_echo_peer();
  ASSERT_TRUE(server);
  auto r = run_io({"--addr", server->addr(), "--conns", "20", "--inflight", "8", "--duration", "1s",
                   "--op", "echo", "--payload", "0:0.2,64:0.6,3000:0.2", "--quiet"},
                  "coalesce_closed");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  const json& sys = r.result["summary"]["syscalls"];
  EXPECT_GT(sys["frames_per_write"].get<double>(), 1.0) << sys.dump();
  EXPECT_LE(sys["frames_per_write"].get<double>(), 8.0) << sys.dump();
  EXPECT_GT(sys["frames_per_read"].get<double>(), 1.0) << sys.dump();
  EXPECT_EQ(sys["frames_out"], r.result["totals"]["ops_sent"]);
  EXPECT_EQ(r.result["summary"]["mismatches"], 0);
  EXPECT_EQ(r.result["summary"]["errors"], 0) << r.result["totals"].dump();
  EXPECT_EQ(r.result["totals"]["sent_measured"], r.result["totals"]["done_measured"]);
  EXPECT_NE(r.out.find("frames per write"), std::string::npos) << r.out;
}

// --io uring: the reads of one epoll batch and the writes of one turn share an
// io_uring_enter, so with many busy connections an enter carries several operations and the
// loop makes fewer kernel entries than reads and writes. --io epoll uses no ring.
TEST_P(LoadClientIo, ReadsAndWritesOfManyConnectionsShareAnEnter) {
  std::unique_ptr<Server> server = server_works() ? start_c10m_server() : start_echo_peer();
  ASSERT_TRUE(server);
  auto r = run_io({"--addr", server->addr(), "--conns", "64", "--inflight", "4", "--duration", "1s",
                   "--op", "echo", "--quiet"},
                  "batch");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  EXPECT_EQ(r.result["summary"]["errors"], 0) << r.result["totals"].dump();
  EXPECT_EQ(r.result["summary"]["mismatches"], 0);
  const json& sys = r.result["summary"]["syscalls"];
  const auto enters = sys["enter_calls"].get<int64_t>();
  const auto batched = sys["batched_ops"].get<int64_t>();
  const auto reads_writes = sys["read_calls"].get<int64_t>() + sys["write_calls"].get<int64_t>();
  if (std::string(GetParam()) == "epoll") {
    EXPECT_EQ(enters, 0) << sys.dump();
    EXPECT_EQ(batched, 0) << sys.dump();
  } else {
    EXPECT_GT(enters, 0) << sys.dump();
    EXPECT_GT(batched, enters) << sys.dump();
    EXPECT_LE(batched, reads_writes) << sys.dump();
  }
  EXPECT_NE(r.out.find("syscalls per frame (--io " + std::string(GetParam())), std::string::npos)
      << r.out;
}

// Open model: a client stopped for 300 ms owes ~300 sends per connection when it resumes;
// they leave in one write per connection (timers of four connections interleave in that
// turn), are timed from when they were due (the stall shows in p99), and are counted late.
TEST_P(LoadClientIo, OpenModelCatchUpLeavesInOneWritePerConnection) {
  std::unique_ptr<Server> server = server_works() ? start_c10m_server() : start_echo_peer();
  ASSERT_TRUE(server);
  auto stall_client = [](pid_t client) {
    std::this_thread::sleep_for(1000ms);
    kill(client, SIGSTOP);
    std::this_thread::sleep_for(300ms);
    kill(client, SIGCONT);
  };
  auto r = run_io({"--addr", server->addr(), "--conns", "4", "--rate", "1000", "--duration", "2s",
                   "--op", "echo", "--quiet"},
                  "coalesce_open", 30s, stall_client);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  const json& sys = r.result["summary"]["syscalls"];
  const auto frames = sys["frames_out"].get<int64_t>();
  const auto writes = sys["write_calls"].get<int64_t>();
  // At least ~200 of the ~300 owed sends per connection shared a write with others.
  EXPECT_GE(frames - writes, 4 * 200) << sys.dump();
  EXPECT_GT(r.result["summary"]["late_sends"].get<int>(), 4 * 200);
  EXPECT_TRUE(r.result["summary"]["client_behind"].get<bool>());
  EXPECT_FALSE(r.result["summary"]["behind_cause"].is_null());
  EXPECT_GE(r.result["summary"]["latency_us"]["p99"].get<double>(), 100'000.0) << r.out;
  EXPECT_EQ(r.result["summary"]["mismatches"], 0);
  EXPECT_EQ(r.result["summary"]["errors"], 0) << r.result["totals"].dump();
}

// An echo peer that reads slowly, 4 KiB at a time with pauses, and writes
// everything back (blocking sockets, one thread per connection).
class SlowEchoPeer {
 public:
  SlowEchoPeer() {
    sockaddr_in any = *c10m::sys::parse_ipv4_endpoint("127.0.0.1:0");
    c10m::sys::ListenOptions opts;
    opts.nonblocking = false;
    lfd_ = c10m::sys::listen_tcp(any, opts);
    if (lfd_ < 0) return;
    port_ = ntohs(c10m::sys::local_endpoint(lfd_)->sin_port);
    acceptor_ = std::thread([this] {
      for (;;) {
        const int fd = c10m::sys::accept_conn(lfd_, /*nonblocking=*/false);
        if (fd < 0) return;  // shut down
        echoers_.emplace_back([fd] {
          char buf[4096];
          for (;;) {
            const ssize_t n = c10m::sys::read_some(fd, buf, sizeof buf);
            if (n <= 0) break;
            for (ssize_t off = 0; off < n;) {
              const ssize_t w = c10m::sys::write_some(fd, buf + off, static_cast<size_t>(n - off));
              if (w <= 0) break;
              off += w;
            }
            std::this_thread::sleep_for(100us);
          }
          ::close(fd);
        });
      }
    });
  }
  ~SlowEchoPeer() {
    if (lfd_ < 0) return;
    c10m::sys::shutdown_both(lfd_);
    acceptor_.join();
    for (auto& t : echoers_) t.join();
    ::close(lfd_);
  }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  bool ok() const { return lfd_ >= 0; }

 private:
  int lfd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> echoers_;
};

// Partial writes: with a small SO_SNDBUF and a peer that reads slowly, the kernel takes
// only part of a write; the rest waits in the connection's queue whole and in order, so
// every large ECHO still comes back byte-identical.
TEST_P(LoadClientIo, PartialWritesKeepFrameBoundaries) {
  SlowEchoPeer peer;
  ASSERT_TRUE(peer.ok());
  auto r = run_io(
      {"--addr", peer.addr(), "--conns", "3", "--inflight", "4", "--duration", "1s", "--op", "echo",
       "--payload", "20000:0.5,65535:0.3,100:0.2", "--sndbuf", "4096", "--grace", "10s", "--quiet"},
      "partial", 60s);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  const json& sys = r.result["summary"]["syscalls"];
  EXPECT_GT(sys["partial_writes"].get<int>(), 0) << sys.dump();
  EXPECT_EQ(r.result["summary"]["mismatches"], 0);
  EXPECT_EQ(r.result["summary"]["errors"], 0) << r.result["totals"].dump();
  EXPECT_GT(r.result["totals"]["done_measured"].get<int>(), 0);
  EXPECT_EQ(r.result["totals"]["sent_measured"], r.result["totals"]["done_measured"]);
}

// TCP sockets of process `pid` in state ESTABLISHED (its fds' inodes in /proc/net/tcp).
int established_sockets(pid_t pid) {
  std::set<std::string> inodes;
  std::error_code ec;
  for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    const std::string target = fs::read_symlink(fd.path(), ec).string();
    if (target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
  }
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // header
  int n = 0;
  while (std::getline(tcp, line)) {
    std::istringstream in(line);
    std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
    in >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
    if (state == "01" && inodes.count(inode)) ++n;
  }
  return n;
}

// A client that wants little CPU but cannot get it: once it has connected, its threads are
// pinned to one CPU with nice 19, next to a busy loop at nice 0 on that CPU. It falls
// behind, and says it was starved by the scheduler (run-queue wait from schedstat), not
// busy.
TEST(LoadClientRun, ClientStarvedByTheSchedulerIsReported) {
  if (!fs::exists("/proc/thread-self/schedstat")) GTEST_SKIP() << "kernel has no schedstat";
  std::unique_ptr<Server> server = server_works() ? start_c10m_server() : start_echo_peer();
  ASSERT_TRUE(server);
  cpu_set_t cpu0;
  CPU_ZERO(&cpu0);
  CPU_SET(0, &cpu0);
  pid_t hog = -1;
  auto starve = [&](pid_t client) {
    // Starve it only once its 10 connections are established (a slow start-up under a
    // sanitizer must not leave it connecting at nice 19).
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (established_sockets(client) < 10 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(20ms);
    hog = fork();
    if (hog == 0) {
      sched_setaffinity(0, sizeof cpu0, &cpu0);
      std::atomic<uint64_t> spins{0};
      for (;;) spins.fetch_add(1, std::memory_order_relaxed);
    }
    // Affinity and nice are per thread: set them on every thread of the client.
    for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(client) + "/task")) {
      const pid_t tid = std::stoi(task.path().filename().string());
      sched_setaffinity(tid, sizeof cpu0, &cpu0);
      setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 19);
    }
  };
  auto r = run_client({"--addr", server->addr(), "--conns", "10", "--rate", "500", "--warmup", "1s",
                       "--duration", "3s", "--op", "echo", "--quiet"},
                      "starved", 60s, starve);
  ASSERT_EQ(r.result["summary"]["conns"]["opened"], 10) << r.result["summary"].dump();
  ASSERT_GT(hog, 0);
  kill(hog, SIGKILL);
  waitpid(hog, nullptr, 0);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  const json& s = r.result["summary"];
  ASSERT_FALSE(s["client_loops"]["run_queue_wait_share"].is_null());
  EXPECT_GT(s["client_loops"]["run_queue_wait_share"].get<double>(), 0.10) << s.dump();
  EXPECT_GT(s["starved_loop_seconds"].get<int>(), 0) << s.dump();
  EXPECT_TRUE(s["client_behind"].get<bool>()) << s.dump();
  EXPECT_NE(s["behind_cause"].get<std::string>().find("starved by the scheduler"),
            std::string::npos)
      << s.dump();
  EXPECT_NE(r.out.find("starved"), std::string::npos) << r.out;
  EXPECT_EQ(s["mismatches"], 0);
}

// A run with no active connection has no schedule to fall behind: starving it is not
// reported as "fell behind" (seen on a 1,000,000-connection idle run).
TEST(LoadClientRun, IdleRunHasNoScheduleToFallBehind) {
  std::unique_ptr<Server> server = server_works() ? start_c10m_server() : start_echo_peer();
  ASSERT_TRUE(server);
  auto r = run_client({"--addr", server->addr(), "--conns", "10", "--active-frac", "0",
                       "--duration", "1s", "--quiet"},
                      "idle_only", 30s);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  EXPECT_EQ(r.result["summary"]["conns"]["open"], 10);
  EXPECT_FALSE(r.result["summary"]["client_behind"].get<bool>());
  EXPECT_EQ(r.out.find("FELL BEHIND"), std::string::npos) << r.out;
}

// --sends-from holds every schedule until that time after the start: over a 2 s run with
// sends from 1 s, 4 connections at 50/s send about 200 requests, not 400.
TEST(LoadClientRun, SendsFromHoldsTheScheduleUntilThen) {
  std::unique_ptr<Server> server = server_works() ? start_c10m_server() : start_echo_peer();
  ASSERT_TRUE(server);
  auto r =
      run_client({"--addr", server->addr(), "--conns", "4", "--rate", "50", "--schedule", "fixed",
                  "--sends-from", "1s", "--duration", "2s", "--op", "echo", "--quiet"},
                 "sends_from", 30s);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  const json& s = r.result["summary"];
  EXPECT_EQ(r.result["config"]["sends_from_s"], 1.0);
  const uint64_t out = s["syscalls"]["frames_out"].get<uint64_t>();
  EXPECT_GE(out, 120u) << s.dump();
  EXPECT_LE(out, 280u) << s.dump();
  EXPECT_EQ(s["mismatches"], 0);
  EXPECT_EQ(s["errors"], 0);
}

// ---- connect failures, in every I/O mode -----------------------------------------------

// The JSON a connect failure leaves, which must not depend on the I/O mode: the count of
// each kind, the first error's text per kind, and the warning with its fix.
void expect_connect_failures(const ClientRun& r, const std::string& kind, int64_t count,
                             const std::string& first_error, const std::string& hint) {
  const json& cf = r.result["totals"]["connect_failures"];
  for (const char* k : {"emfile", "eaddrnotavail", "econnrefused", "timeout", "other"})
    EXPECT_EQ(cf[k].get<int64_t>(), k == kind ? count : 0) << k << " " << cf.dump();
  EXPECT_EQ(r.result["summary"]["conns"]["connect_failures"].get<int64_t>(), count);
  EXPECT_EQ(r.result["processes"][0]["connect_errors"], kind + ": " + first_error);
  bool warned = false;
  for (const json& w : r.result["warnings"])
    warned = warned || w.get<std::string>() == std::to_string(count) + " connects failed (" +
                                                   kind + "): " + hint;
  EXPECT_TRUE(warned) << r.result["warnings"].dump();
}

// Refused (a port bound but not listening answers with RST) and timed out (a listener with
// a backlog of one that never accepts: the first connection waits in its backlog, the
// other SYNs are dropped): every I/O mode counts them in the same fields, with the same
// first-error texts and hints. --io direct connects by a ring operation on a direct
// descriptor; the kernel's answer is the same.
TEST_P(LoadClientIo, ConnectFailuresAreCountedAndNamed) {
  c10m::sys::Fd closed(c10m::sys::tcp_socket());
  ASSERT_TRUE(closed.valid());
  sockaddr_in any = *c10m::sys::parse_ipv4_endpoint("127.0.0.1:0");
  ASSERT_EQ(::bind(closed.get(), reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
  const int closed_port = ntohs(c10m::sys::local_endpoint(closed.get())->sin_port);
  auto refused = run_io({"--addr", "127.0.0.1:" + std::to_string(closed_port), "--conns", "5",
                         "--rate", "1", "--duration", "1s", "--quiet"},
                        "refused");
  ASSERT_EQ(refused.status, 0) << refused.err;
  ASSERT_FALSE(refused.result.is_discarded()) << refused.err;
  EXPECT_EQ(refused.result["summary"]["conns"]["open"], 0);
  EXPECT_EQ(refused.result["summary"]["errors"], 5);
  expect_connect_failures(refused, "econnrefused", 5, "Connection refused",
                          c10m::loadclient::connect_fail_hint(
                              c10m::loadclient::ConnectFail::kRefused));

  c10m::sys::ListenOptions lo;
  lo.backlog = 0;  // one connection completes into the backlog; it is never accepted
  c10m::sys::Fd full(c10m::sys::listen_tcp(any, lo));
  ASSERT_TRUE(full.valid());
  const int full_port = ntohs(c10m::sys::local_endpoint(full.get())->sin_port);
  auto timed_out =
      run_io({"--addr", "127.0.0.1:" + std::to_string(full_port), "--conns", "4", "--rate", "1",
              "--connect-timeout", "500ms", "--duration", "1s", "--quiet"},
             "timed_out");
  ASSERT_EQ(timed_out.status, 0) << timed_out.err;
  ASSERT_FALSE(timed_out.result.is_discarded()) << timed_out.err;
  const auto open = timed_out.result["summary"]["conns"]["open"].get<int64_t>();
  EXPECT_LE(open, 2) << "the backlog holds one (two if a SYN slipped in)";
  expect_connect_failures(timed_out, "timeout", 4 - open, "Connection timed out",
                          c10m::loadclient::connect_fail_hint(
                              c10m::loadclient::ConnectFail::kTimeout));
}

// This thread (and the processes it starts) in a network namespace of its own, with its
// loopback up, until destroyed. ok() is false (with why()) where namespaces are not allowed.
class PrivateNetns {
 public:
  PrivateNetns() : home_(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) {
    if (home_ < 0 || ::unshare(CLONE_NEWNET) != 0) {
      why_ = std::string("no network namespace: ") + std::strerror(errno);
      return;
    }
    entered_ = true;
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &ifr) != 0 ||
        (ifr.ifr_flags |= IFF_UP, ::ioctl(s, SIOCSIFFLAGS, &ifr) != 0))
      why_ = std::string("cannot bring lo up: ") + std::strerror(errno);
    if (s >= 0) ::close(s);
  }
  ~PrivateNetns() {
    if (entered_) ::setns(home_, CLONE_NEWNET);
    if (home_ >= 0) ::close(home_);
  }
  bool ok() const { return why_.empty(); }
  const std::string& why() const { return why_; }
  /// net.ipv4.ip_local_port_range of this namespace only.
  bool set_port_range(int lo, int hi) {
    std::ofstream out("/proc/sys/net/ipv4/ip_local_port_range");
    out << lo << " " << hi << "\n";
    out.flush();
    return static_cast<bool>(out);
  }

 private:
  int home_;
  bool entered_ = false;
  std::string why_;
};

// Source ports exhausted: one source IP and 10 ephemeral ports (in a namespace of the
// test's own) reach one server address 10 times; the other 15 connects fail with
// EADDRNOTAVAIL, counted and named alike in every I/O mode (--io direct binds with
// IP_BIND_ADDRESS_NO_PORT through the ring and the port is picked at the ring's connect).
TEST_P(LoadClientIo, SourcePortsExhaustedAreCountedAndNamed) {
  if (!server_works()) GTEST_SKIP() << "c10m-server not available";
  PrivateNetns ns;
  if (!ns.ok()) GTEST_SKIP() << ns.why();
  auto server = start_c10m_server();
  ASSERT_TRUE(server);
  const int first = server->port >= 40000 && server->port < 40010 ? 50000 : 40000;
  if (!ns.set_port_range(first, first + 9)) GTEST_SKIP() << "cannot set ip_local_port_range";
  auto r = run_io({"--addr", server->addr(), "--conns", "25", "--srcips", "127.0.0.2", "--rate",
                   "1", "--duration", "1s", "--quiet"},
                  "ports");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  EXPECT_EQ(r.result["summary"]["conns"]["open"], 10) << r.result["totals"].dump();
  expect_connect_failures(r, "eaddrnotavail", 15, "Cannot assign requested address",
                          c10m::loadclient::connect_fail_hint(
                              c10m::loadclient::ConnectFail::kPortsExhausted));
}

// ---- more connections than the fd limit -------------------------------------------------

// One client process whose fd limit is 1,024 holds 3,000 connections to one c10m-server
// process (fd limit as the box gives it): --io auto picks direct descriptors (the
// connections never enter the fd table), each of the 2 loops drives 2 rings (a ring's
// table is capped by the fd limit), and every connection's requests are answered and
// validated.
TEST(LoadClientRun, DirectHoldsMoreConnectionsThanTheFdLimit) {
  if (!c10m::loadclient::DirectRing::unavailable().empty())
    GTEST_SKIP() << c10m::loadclient::DirectRing::unavailable();
  if (!server_works()) GTEST_SKIP() << "c10m-server not available";
  auto server = start_c10m_server();
  ASSERT_TRUE(server);
  constexpr int kConns = 3000;
  auto r = run_client({"--addr", server->addr(), "--conns", std::to_string(kConns), "--threads",
                       "2", "--rate", "1", "--sends-from", "2s", "--duration", "4s", "--grace",
                       "10s", "--io", "auto", "--quiet"},
                      "beyond_fd_limit", 60s, nullptr, /*nofile=*/1024);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  const json& s = r.result["summary"];
  const json& t = r.result["totals"];
  EXPECT_EQ(r.result["config"]["io"], "direct");
  EXPECT_EQ(s["conns"]["open"], kConns) << t.dump();
  EXPECT_EQ(s["conns"]["connect_failures"], 0) << t.dump();
  EXPECT_EQ(s["errors"], 0) << t.dump();
  EXPECT_EQ(s["mismatches"], 0) << t.dump();
  EXPECT_EQ(t["sent_measured"], t["done_measured"]) << t.dump();
  EXPECT_GE(t["done_measured"].get<int64_t>(), kConns) << t.dump();
  EXPECT_EQ(s["client_loops"]["rings"], 4) << "2 loops x ceil(1,500 / 1,024) rings";
}

}  // namespace
