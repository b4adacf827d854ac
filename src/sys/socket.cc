#include "sys/socket.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace c10m::sys {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::optional<sockaddr_in> parse_ipv4_endpoint(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string host(text.substr(0, colon));
  std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535 ||
      port_text.empty())
    return std::nullopt;
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return std::nullopt;
  return addr;
}

std::string format_endpoint(const sockaddr_in& addr) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr.sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(addr.sin_port));
}

static int set_int_opt(int fd, int level, int name, int value) {
  return ::setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0 : -errno;
}

int tcp_socket() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  return fd >= 0 ? fd : -errno;
}

int listen_tcp(const sockaddr_in& addr, const ListenOptions& opts) {
  int type = SOCK_STREAM | SOCK_CLOEXEC | (opts.nonblocking ? SOCK_NONBLOCK : 0);
  Fd fd(::socket(AF_INET, type, 0));
  if (!fd.valid()) return -errno;
  if (int rc = set_int_opt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1); rc < 0) return rc;
  if (opts.reuseport) {
    if (int rc = set_int_opt(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1); rc < 0) return rc;
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return -errno;
  if (::listen(fd.get(), opts.backlog) != 0) return -errno;
  return fd.release();
}

int reserve_reuseport(const sockaddr_in& addr) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return -errno;
  if (int rc = set_int_opt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1); rc < 0) return rc;
  if (int rc = set_int_opt(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1); rc < 0) return rc;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return -errno;
  return fd.release();
}

std::optional<sockaddr_in> local_endpoint(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return std::nullopt;
  return addr;
}

int accept_conn(int listen_fd, bool nonblocking) {
  int flags = SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, flags);
    if (fd >= 0) return fd;
    if (errno != EINTR) return -errno;
  }
}

int connect_tcp(const sockaddr_in& dest, const sockaddr_in* source, bool nonblocking) {
  int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  Fd fd(::socket(AF_INET, type, 0));
  if (!fd.valid()) return -errno;
  if (source != nullptr) {
#ifdef IP_BIND_ADDRESS_NO_PORT
    if (int rc = set_int_opt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1); rc < 0) return rc;
#endif
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(source), sizeof *source) != 0)
      return -errno;
  }
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&dest), sizeof dest) == 0) break;
    if (errno == EINTR) continue;
    if (errno == EINPROGRESS && nonblocking) break;
    return -errno;
  }
  return fd.release();
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
  return -err;
}

int apply_socket_options(int fd, const SocketOptions& opts) {
  if (int rc = set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, opts.nodelay ? 1 : 0); rc < 0) return rc;
  if (opts.rcvbuf > 0) {
    if (int rc = set_int_opt(fd, SOL_SOCKET, SO_RCVBUF, opts.rcvbuf); rc < 0) return rc;
  }
  if (opts.sndbuf > 0) {
    if (int rc = set_int_opt(fd, SOL_SOCKET, SO_SNDBUF, opts.sndbuf); rc < 0) return rc;
  }
  if (opts.notsent_lowat > 0) {
    if (int rc = set_int_opt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, opts.notsent_lowat); rc < 0)
      return rc;
  }
  if (opts.zerocopy) {
    if (int rc = set_int_opt(fd, SOL_SOCKET, SO_ZEROCOPY, 1); rc < 0) return rc;
  }
  return 0;
}

int set_rcvlowat(int fd, int bytes) { return set_int_opt(fd, SOL_SOCKET, SO_RCVLOWAT, bytes); }

int set_nonblocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return -errno;
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  return ::fcntl(fd, F_SETFL, flags) == 0 ? 0 : -errno;
}

int set_io_timeouts(int fd, int64_t recv_ns, int64_t send_ns) {
  auto tv = [](int64_t ns) {
    timeval t{};
    t.tv_sec = ns / 1'000'000'000;
    t.tv_usec = (ns % 1'000'000'000) / 1000;
    return t;
  };
  timeval r = tv(recv_ns), s = tv(send_ns);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &r, sizeof r) != 0) return -errno;
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &s, sizeof s) != 0) return -errno;
  return 0;
}

ssize_t read_some(int fd, void* buf, size_t len) {
  for (;;) {
    ssize_t n = ::read(fd, buf, len);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t read_nowait(int fd, void* buf, size_t len) {
  for (;;) {
    ssize_t n = ::recv(fd, buf, len, MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t write_some(int fd, const void* buf, size_t len) {
  for (;;) {
    ssize_t n = ::send(fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t read_nocancel(int fd, void* buf, size_t len) {
  for (;;) {
    const long n = ::syscall(SYS_read, fd, buf, len);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t write_nocancel(int fd, const void* buf, size_t len) {
  for (;;) {
    const long n = ::syscall(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, nullptr, 0);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t writev_some(int fd, const iovec* iov, int iovcnt) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(iovcnt);
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t sendmsg_some(int fd, const iovec* iov, int iovcnt, int flags) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(iovcnt);
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, flags | MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t sendfile_some(int fd, int file_fd, uint64_t offset, size_t len) {
  auto off = static_cast<off_t>(offset);
  for (;;) {
    ssize_t n = ::sendfile(fd, file_fd, &off, len);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t discard_some(int fd, size_t len) {
  for (;;) {
    ssize_t n = ::recv(fd, nullptr, len, MSG_TRUNC);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

int set_cork(int fd, bool on) { return set_int_opt(fd, IPPROTO_TCP, TCP_CORK, on ? 1 : 0); }

int read_zerocopy_completions(int fd, ZerocopyCompletions* out) {
  for (;;) {
    alignas(cmsghdr) char control[128];
    msghdr msg{};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
      if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
            (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
        continue;
      sock_extended_err ee;
      std::memcpy(&ee, CMSG_DATA(cm), sizeof ee);
      if (ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY) {
        if (ee.ee_errno != 0) return -static_cast<int>(ee.ee_errno);
        continue;
      }
      // One notification covers the sends numbered ee_info..ee_data (inclusive).
      const uint64_t sends = uint64_t{ee.ee_data - ee.ee_info} + 1;
      out->completed += sends;
      if (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) out->copied += sends;
    }
  }
}

int shutdown_write(int fd) { return ::shutdown(fd, SHUT_WR) == 0 ? 0 : -errno; }
int shutdown_both(int fd) { return ::shutdown(fd, SHUT_RDWR) == 0 ? 0 : -errno; }

void close_with_reset(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

uint64_t raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return rl.rlim_cur;
}

uint64_t count_open_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  uint64_t n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n > 0 ? n - 1 : 0;  // minus the fd opendir holds
}

int set_reuseaddr_only(int fd) {
  const int yes = 1;
  return ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) == 0 ? 0 : -errno;
}

}  // namespace c10m::sys
