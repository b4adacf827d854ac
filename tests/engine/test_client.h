#pragma once
// Blocking helpers for the engine integration tests: a frame builder, a small TCP test
// client with timeouts, and a server subprocess (C10M_SERVER_BIN) whose stderr is
// captured. Every wait is bounded; failures come back as values (std::nullopt / false)
// so tests fail instead of hanging.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "proto/frame.h"

namespace c10m::test {

using Bytes = std::vector<uint8_t>;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------- frames
inline Bytes frame(uint8_t type, const Bytes& payload = {}) {
  uint8_t h[3];
  proto::write_header(h, type, static_cast<uint16_t>(payload.size()));
  Bytes out(h, h + 3);
  for (uint8_t b : payload) out.push_back(b);
  return out;
}
inline Bytes ping() { return frame(0x01); }
inline Bytes echo(const std::string& s) { return frame(0x02, Bytes(s.begin(), s.end())); }
inline Bytes sink(size_t n) { return frame(0x03, Bytes(n, 0x5a)); }
inline Bytes spec(uint8_t type, uint64_t total, uint32_t chunk) {
  Bytes p(12);
  proto::write_stream_spec(p.data(), {total, chunk});
  return frame(type, p);
}
inline Bytes stream(uint64_t total, uint32_t chunk) { return spec(0x04, total, chunk); }
inline Bytes fetch(uint64_t total, uint32_t chunk) { return spec(0x06, total, chunk); }
inline Bytes chunk(size_t n) { return frame(0x05, Bytes(n, 0x33)); }
inline Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct Frame {
  uint8_t type = 0;
  Bytes payload;
  Bytes wire() const { return frame(type, payload); }
  uint8_t error_code() const { return payload.empty() ? 0 : payload[0]; }
};

// ---------------------------------------------------------------- client
class TestClient {
 public:
  TestClient() = default;
  TestClient(TestClient&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)) { o.fd_ = -1; }
  TestClient& operator=(TestClient&& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(buf_, o.buf_);
    return *this;
  }
  ~TestClient() { close(); }

  /// Connects to 127.0.0.1:port. Returns -errno on failure (ECONNREFUSED after a drain).
  int connect(uint16_t port, bool nodelay = true) {
    close();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return -errno;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      const int err = errno;
      close();
      return -err;
    }
    int one = nodelay ? 1 : 0;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
  }
  int fd() const { return fd_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  void set_rcvbuf(int n) { ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &n, sizeof n); }

  bool write_all(const Bytes& b) { return write_all(b.data(), b.size()); }
  bool write_all(const uint8_t* p, size_t n) {
    while (n > 0) {
      const ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return false;
      p += k;
      n -= static_cast<size_t>(k);
    }
    return true;
  }
  /// One send() per byte (with TCP_NODELAY each is its own segment).
  bool write_bytewise(const Bytes& b) {
    for (uint8_t c : b) {
      if (!write_all(&c, 1)) return false;
    }
    return true;
  }

  /// Reads exactly n bytes (or fewer on EOF/error/timeout).
  Bytes read_bytes(size_t n, milliseconds timeout = milliseconds(5000)) {
    const auto end = Clock::now() + timeout;
    while (buf_.size() < n && fill(end) > 0) {
    }
    const size_t k = std::min(n, buf_.size());
    Bytes out(buf_.begin(), buf_.begin() + static_cast<long>(k));
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<long>(k));
    return out;
  }

  /// The next whole frame, or nullopt on EOF, error or timeout.
  std::optional<Frame> read_frame(milliseconds timeout = milliseconds(5000)) {
    const auto end = Clock::now() + timeout;
    while (buf_.size() < 3) {
      if (fill(end) <= 0) return std::nullopt;
    }
    const auto h = proto::parse_header(buf_.data());
    while (buf_.size() < 3u + h.length) {
      if (fill(end) <= 0) return std::nullopt;
    }
    Frame f{h.type, Bytes(buf_.begin() + 3, buf_.begin() + 3 + h.length)};
    buf_.erase(buf_.begin(), buf_.begin() + 3 + h.length);
    return f;
  }

  /// True when the peer closed (EOF or reset) within `timeout`, discarding any bytes that
  /// arrive first (at most `max_bytes`). `*discarded` (optional) gets their count.
  bool wait_closed(milliseconds timeout = milliseconds(5000), uint64_t* discarded = nullptr,
                   uint64_t max_bytes = UINT64_MAX) {
    const auto end = Clock::now() + timeout;
    uint64_t total = buf_.size();
    buf_.clear();
    for (;;) {
      const int r = fill(end);
      total += buf_.size();
      buf_.clear();
      if (discarded != nullptr) *discarded = total;
      if (r == 0 || r == -1) return true;  // EOF / reset
      if (r == -2) return false;           // timeout
      if (total > max_bytes) return false;
    }
  }
  /// Bytes already received but not consumed.
  size_t buffered() const { return buf_.size(); }

 private:
  // >0 bytes appended; 0 EOF; -1 error (reset); -2 timeout.
  int fill(Clock::time_point end) {
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(end - Clock::now()).count();
      if (left <= 0) return -2;
      pollfd p{fd_, POLLIN, 0};
      const int rc = ::poll(&p, 1, static_cast<int>(left));
      if (rc == 0) return -2;
      if (rc < 0) {
        if (errno == EINTR) continue;
        return -1;
      }
      uint8_t tmp[65536];
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return -1;
      }
      if (n == 0) return 0;
      buf_.insert(buf_.end(), tmp, tmp + n);
      return static_cast<int>(n);
    }
  }

  int fd_ = -1;
  Bytes buf_;
};

// ---------------------------------------------------------------- server process
class ServerProcess {
 public:
  /// Runs in the forked child just before exec (e.g. to install a seccomp filter); must be
  /// async-signal-safe and exit the child (_exit) if it fails.
  void set_child_setup(void (*fn)()) { child_setup_ = fn; }

  /// Starts C10M_SERVER_BIN with `args` (and --addr 127.0.0.1:0 unless given); waits for "listening
  /// on". `nofile` > 0: RLIMIT_NOFILE (soft and hard) in the child before exec.
  bool start(const std::vector<std::string>& args, uint64_t nofile = 0) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) return false;
    std::vector<std::string> argv_s = {C10M_SERVER_BIN};
    if (std::find(args.begin(), args.end(), "--addr") == args.end())
      argv_s.insert(argv_s.end(), {"--addr", "127.0.0.1:0"});
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(pipefd[1], STDERR_FILENO);
      if (nofile > 0) {
        rlimit rl{nofile, nofile};
        ::setrlimit(RLIMIT_NOFILE, &rl);
      }
      if (child_setup_ != nullptr) child_setup_();
      ::execv(argv[0], argv.data());
      _exit(127);
    }
    ::close(pipefd[1]);
    err_fd_ = pipefd[0];
    reader_ = std::thread([this] {
      char b[4096];
      for (;;) {
        const ssize_t n = ::read(err_fd_, b, sizeof b);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        std::lock_guard lock(mu_);
        err_.append(b, static_cast<size_t>(n));
      }
    });
    // Generous: a sanitized supervisor starting several workers on a loaded 2-core box took
    // up to 34 s (only a failure waits this long).
    const auto end = Clock::now() + milliseconds(60000);
    while (Clock::now() < end) {
      {
        std::lock_guard lock(mu_);
        const auto at = err_.find("listening on 127.0.0.1:");
        if (at != std::string::npos && err_.find('\n', at) != std::string::npos) {
          port_ = static_cast<uint16_t>(std::stoi(err_.substr(at + 23)));
          return true;
        }
      }
      if (exited(nullptr)) return false;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return false;
  }
  ~ServerProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (reader_.joinable()) reader_.join();
    if (err_fd_ >= 0) ::close(err_fd_);
  }

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool running() { return pid_ > 0 && !exited(nullptr); }
  void signal(int sig) { ::kill(pid_, sig); }

  /// Waits for the exit; returns the exit code (128+sig when killed), or -1 on timeout.
  int wait_exit(milliseconds timeout = milliseconds(10000)) {
    const auto end = Clock::now() + timeout;
    int status = 0;
    while (Clock::now() < end) {
      if (exited(&status)) {
        if (reader_.joinable()) reader_.join();
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    return -1;
  }

  std::string stderr_text() {
    std::lock_guard lock(mu_);
    return err_;
  }
  /// Waits until stderr contains `needle`.
  bool wait_stderr(const std::string& needle, milliseconds timeout = milliseconds(5000)) {
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      if (stderr_text().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }

  /// VmRSS in KiB (0 if unknown).
  uint64_t rss_kib() const {
    std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
    }
    return 0;
  }
  /// utime + stime in seconds.
  double cpu_seconds() const {
    std::ifstream f("/proc/" + std::to_string(pid_) + "/stat");
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto rp = all.rfind(')');
    if (rp == std::string::npos) return -1;
    std::istringstream in(all.substr(rp + 2));
    std::string field;
    std::vector<std::string> fields;
    while (in >> field) fields.push_back(field);
    // fields[0] is state (field 3); utime is field 14, stime 15.
    if (fields.size() < 13) return -1;
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
  }

 private:
  bool exited(int* status) {
    if (reaped_) {
      if (status != nullptr) *status = status_;
      return true;
    }
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      reaped_ = true;
      status_ = st;
      if (status != nullptr) *status = st;
      return true;
    }
    return false;
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  uint16_t port_ = 0;
  int err_fd_ = -1;
  void (*child_setup_)() = nullptr;
  std::thread reader_;
  std::mutex mu_;
  std::string err_;
};

}  // namespace c10m::test
