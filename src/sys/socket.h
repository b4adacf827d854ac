#pragma once
// The only place raw socket syscalls and setsockopt live. Errors are values: functions
// return -errno (or a negative value) instead of throwing; start-up code turns them into
// messages. Every fd returned is O_CLOEXEC.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/noncopyable.h"

namespace c10m::sys {

/// Owns one file descriptor; closes it on destruction. Movable, not copyable.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

/// "host:port" (IPv4 dotted quad or "localhost"; port may be 0). nullopt if malformed.
std::optional<sockaddr_in> parse_ipv4_endpoint(std::string_view text);
std::string format_endpoint(const sockaddr_in& addr);

struct ListenOptions {
  bool reuseport = false;
  int backlog = 65535;  // the kernel clamps it to net.core.somaxconn
  bool nonblocking = true;
};

/// socket + SO_REUSEADDR (+ SO_REUSEPORT) + bind + listen. Returns the fd or -errno.
int listen_tcp(const sockaddr_in& addr, const ListenOptions& opts);
/// socket + SO_REUSEADDR + SO_REUSEPORT + bind, no listen: holds a port for SO_REUSEPORT
/// listeners other processes add (a bound, non-listening socket receives no connection).
/// Returns the fd or -errno.
int reserve_reuseport(const sockaddr_in& addr);
/// The address a socket is bound to (to learn the port after binding port 0).
std::optional<sockaddr_in> local_endpoint(int fd);

/// A fresh, unbound IPv4 TCP socket (feature probes). Returns the fd or -errno.
int tcp_socket();

/// accept4(SOCK_NONBLOCK? | SOCK_CLOEXEC). Returns the fd or -errno.
int accept_conn(int listen_fd, bool nonblocking);

/// Non-blocking TCP connect; returns the fd (connect may be in progress) or -errno.
/// `source` (optional) binds a local address first with IP_BIND_ADDRESS_NO_PORT, so many
/// source IPs share the ephemeral port range without exhausting it at bind().
int connect_tcp(const sockaddr_in& dest, const sockaddr_in* source, bool nonblocking);
/// SO_ERROR of a socket (0 when a non-blocking connect succeeded), or -errno.
int socket_error(int fd);

struct SocketOptions {
  bool nodelay = true;
  int rcvbuf = 0;  // 0 = kernel default (autotuning stays on)
  int sndbuf = 0;
  int notsent_lowat = 0;  // TCP_NOTSENT_LOWAT: unsent bytes the kernel may queue (0 = sysctl)
  bool zerocopy = false;  // SO_ZEROCOPY (allows sendmsg with MSG_ZEROCOPY)
};
/// Applies TCP_NODELAY / SO_RCVBUF / SO_SNDBUF / TCP_NOTSENT_LOWAT / SO_ZEROCOPY. Returns 0 or
/// -errno.
int apply_socket_options(int fd, const SocketOptions& opts);
int set_nonblocking(int fd, bool on);
/// SO_RCVLOWAT: readiness (poll/epoll) and wakeups wait for this many received bytes (the
/// kernel caps it at half the receive buffer, and still wakes under memory pressure or a
/// nearly closed window). Non-blocking reads return what is there. Returns 0 or -errno.
int set_rcvlowat(int fd, int bytes);
/// SO_RCVTIMEO/SO_SNDTIMEO for blocking sockets (thread engine); 0 = none.
int set_io_timeouts(int fd, int64_t recv_ns, int64_t send_ns);

/// read/readv/write/writev: return bytes, 0 on EOF (reads), or -errno. EINTR is retried.
ssize_t read_some(int fd, void* buf, size_t len);
/// recv(MSG_DONTWAIT): what is already waiting, even on a blocking socket (-EAGAIN: none).
ssize_t read_nowait(int fd, void* buf, size_t len);
ssize_t write_some(int fd, const void* buf, size_t len);
/// read_some / write_some through syscall(2) instead of libc's wrappers: in a process with
/// more than one thread, glibc brackets every read/send with two atomic updates of the
/// thread's cancellation state (~20 ns a call here), and c10m never cancels a thread. For
/// the event loops' hot path; the same semantics otherwise.
ssize_t read_nocancel(int fd, void* buf, size_t len);
ssize_t write_nocancel(int fd, const void* buf, size_t len);
ssize_t writev_some(int fd, const iovec* iov, int iovcnt);
/// sendmsg with extra `flags` (MSG_MORE, MSG_ZEROCOPY; MSG_NOSIGNAL is always added).
/// Returns bytes or -errno.
ssize_t sendmsg_some(int fd, const iovec* iov, int iovcnt, int flags);
/// sendfile(2): up to `len` bytes of `file_fd` from `offset` to socket `fd` (the page
/// cache's pages go to the socket; no copy through user space). Returns bytes or -errno.
ssize_t sendfile_some(int fd, int file_fd, uint64_t offset, size_t len);
/// recv(MSG_TRUNC) on TCP: drops up to `len` received bytes in the kernel without copying
/// them anywhere. Returns bytes dropped, 0 on EOF, or -errno (blocking as the socket is).
ssize_t discard_some(int fd, size_t len);
/// TCP_CORK on/off: while on, the kernel sends only full segments (off flushes).
int set_cork(int fd, bool on);

/// MSG_ZEROCOPY completions read from a socket's error queue.
struct ZerocopyCompletions {
  uint64_t completed = 0;  // sendmsg calls whose pages the kernel released
  uint64_t copied = 0;     // ... of them, copied by the kernel after all (local delivery)
};
/// Reads every notification waiting on the error queue (recvmsg MSG_ERRQUEUE, never
/// blocks) and adds them to `out`. Returns 0, or -errno of a socket error found there.
int read_zerocopy_completions(int fd, ZerocopyCompletions* out);
/// shutdown(SHUT_WR): half-close our side. Returns 0 or -errno.
int shutdown_write(int fd);
/// shutdown(SHUT_RDWR). On a listening socket: stop listening (pending and new connects
/// are refused, a thread blocked in accept() wakes with EINVAL) while the fd stays valid,
/// so other threads may still hold it. On a connection: wakes threads blocked on it.
int shutdown_both(int fd);
/// Closes after setting SO_LINGER {1, 0}: an RST instead of a FIN (used to drop a peer
/// that does not read, so the kernel does not keep its unsent bytes).
void close_with_reset(int fd);

/// SO_REUSEADDR only (no SO_REUSEPORT: a second process must not share the port).
/// Returns 0 or -errno. For sockets other libraries create (the admin HTTP port).
int set_reuseaddr_only(int fd);

/// RLIMIT_NOFILE soft limit, after raising soft to hard when allowed.
uint64_t raise_fd_limit();
/// Number of open fds in this process (counts /proc/self/fd).
uint64_t count_open_fds();

}  // namespace c10m::sys
