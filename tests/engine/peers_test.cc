// Every peer of bench/peers (echo_peer, Asio, libuv, Go, Tokio) answers PING and a 64 KiB
// ECHO correctly under the load client: it starts the peer binary with --threads 2 on a
// free loopback port, runs c10m-loadclient against it in closed loop with --json, and
// requires no error, no mismatch and every request answered. A peer whose toolchain is not
// installed (so CMake did not build it) is skipped with the reason CMake gave.
// C10M_PEERS comes from bench/peers/CMakeLists.txt: "name|binary|reason,name|binary|...".
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

struct PeerInfo {
  std::string name;
  std::string binary;       // empty when not built
  std::string skip_reason;  // why it was not built
};

// gtest names a failing parameter by this instead of dumping its bytes.
void PrintTo(const PeerInfo& p, std::ostream* os) { *os << p.name; }

std::vector<PeerInfo> all_peers() {
  std::vector<PeerInfo> out;
  std::stringstream list(C10M_PEERS);
  std::string entry;
  while (std::getline(list, entry, ',')) {
    std::stringstream fields(entry);
    PeerInfo p;
    std::getline(fields, p.name, '|');
    std::getline(fields, p.binary, '|');
    std::getline(fields, p.skip_reason);
    if (!p.name.empty()) out.push_back(p);
  }
  return out;
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("c10m_peers_" + std::to_string(getpid()) + "_" + name))
      .string();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pid_t spawn(const std::vector<std::string>& args, const std::string& out_path,
            const std::string& err_path) {
  const pid_t pid = fork();
  if (pid == 0) {
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

// A running peer on 127.0.0.1; killed and reaped on destruction.
class PeerProcess {
 public:
  PeerProcess(const std::string& binary, const std::string& name) {
    err_path_ = temp_path(name + ".err");
    fs::remove(err_path_);
    pid_ = spawn({binary, "--addr", "127.0.0.1:0", "--threads", "2"}, "/dev/null", err_path_);
    const std::regex re("listening on 127\\.0\\.0\\.1:([0-9]+)");
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      const std::string err = read_file(err_path_);
      if (std::regex_search(err, m, re)) {
        port_ = std::stoi(m[1]);
        return;
      }
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
  }
  ~PeerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    fs::remove(err_path_);
  }
  bool running() const { return pid_ > 0 && port_ > 0; }
  bool alive() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string stderr_text() const { return read_file(err_path_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string err_path_;
};

struct ClientRun {
  int status = -1;
  std::string err;
  json result;
};

ClientRun run_client(std::vector<std::string> args, const std::string& name) {
  ClientRun r;
  const std::string json_path = temp_path(name + ".json");
  const std::string out_path = temp_path(name + ".out"), err_path = temp_path(name + ".stderr");
  fs::remove(json_path);
  args.insert(args.begin(), C10M_LOADCLIENT_BIN);
  args.insert(args.end(), {"--json", json_path, "--quiet"});
  r.status = wait_bounded(spawn(args, out_path, err_path), 60s);
  r.err = read_file(err_path);
  r.result = json::parse(read_file(json_path), nullptr, false);
  for (auto& p : {json_path, out_path, err_path}) fs::remove(p);
  return r;
}

// Requires a clean closed-loop run: every connection open, requests completed, none lost,
// none wrong.
void expect_all_answered(const ClientRun& r, int conns) {
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_FALSE(r.result.is_discarded()) << r.err;
  const json& s = r.result["summary"];
  const json& t = r.result["totals"];
  EXPECT_EQ(s["errors"], 0) << t.dump();
  EXPECT_EQ(s["mismatches"], 0) << t.dump();
  EXPECT_EQ(s["conns"]["open"], conns) << t.dump();
  EXPECT_EQ(t["unanswered"], 0) << t.dump();
  EXPECT_EQ(t["incomplete_at_end"], 0) << t.dump();
  EXPECT_EQ(t["unexpected_closes"], 0) << t.dump();
  EXPECT_EQ(t["ops_sent"], t["ops_done"]) << t.dump();
  EXPECT_EQ(t["sent_measured"], t["done_measured"]) << t.dump();
  EXPECT_GT(t["done_measured"].get<long>(), 0) << t.dump();
}

class PeerTest : public testing::TestWithParam<PeerInfo> {};

TEST_P(PeerTest, AnswersPingAnd64KiBEchoUnderTheLoadClient) {
  const PeerInfo& p = GetParam();
  if (p.binary.empty()) GTEST_SKIP() << p.name << " not built: " << p.skip_reason;
  ASSERT_TRUE(fs::exists(p.binary)) << p.binary << " missing although its toolchain is installed";
  PeerProcess peer(p.binary, p.name);
  ASSERT_TRUE(peer.running()) << p.name << " did not start: " << peer.stderr_text();

  // Many small frames pipelined on every connection: replies must stay in order.
  const ClientRun ping = run_client({"--addr", peer.addr(), "--conns", "8", "--inflight", "8",
                                     "--op", "ping", "--duration", "1s", "--grace", "5s"},
                                    p.name + "_ping");
  expect_all_answered(ping, 8);
  // The largest frame the protocol allows (65,535 B payload): every read and write splits.
  const ClientRun echo =
      run_client({"--addr", peer.addr(), "--conns", "4", "--inflight", "2", "--op", "echo",
                  "--payload", "65535", "--duration", "1s", "--grace", "5s"},
                 p.name + "_echo");
  expect_all_answered(echo, 4);
  EXPECT_TRUE(peer.alive()) << peer.stderr_text();
}

INSTANTIATE_TEST_SUITE_P(Peers, PeerTest, testing::ValuesIn(all_peers()),
                         [](const testing::TestParamInfo<PeerInfo>& info) {
                           return info.param.name;
                         });

}  // namespace
