// The fake sys/ layer of fake_socket.h: every c10m::sys function an engine links, over
// eventfds and a script. Functions an engine under fuzz must not call abort.
#include "tests/fuzz/fake_socket.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "sys/socket.h"

namespace c10m::fuzz {
struct FakeNet;
}

namespace {

using c10m::fuzz::FakeNet;

[[noreturn]] void unexpected(const char* what) {
  std::fprintf(stderr, "fake sys: unexpected call to %s\n", what);
  std::abort();
}

void set_readable(int fd, bool on) {
  if (on) {
    const uint64_t one = 1;
    ssize_t rc = ::write(fd, &one, sizeof one);
    (void)rc;
  } else {
    uint64_t v;
    ssize_t rc = ::read(fd, &v, sizeof v);  // EFD_NONBLOCK: EAGAIN when already 0
    (void)rc;
  }
}

/// Counts an I/O call; requests the drain at the scripted call.
void count_call(FakeNet& net) {
  if (++net.io_calls >= net.drain_after_calls) net.request_drain();
}

}  // namespace

namespace c10m::fuzz {

FakeNet& fake_net() {
  static FakeNet net;
  return net;
}

bool FakeNet::open() {
  listen_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  drain_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (listen_fd < 0 || drain_fd < 0) return false;
  set_readable(listen_fd, true);  // readable until the drain (see accept_conn)
  return true;
}

void FakeNet::close_all() {
  for (FakeConn& c : conns) {
    if (c.fd >= 0 && !c.closed) ::close(c.fd);
    c.closed = true;
  }
  if (listen_fd >= 0) ::close(listen_fd);
  if (drain_fd >= 0) ::close(drain_fd);
  listen_fd = drain_fd = -1;
}

void FakeNet::request_drain() {
  if (drain_requested) return;
  drain_requested = true;
  set_readable(drain_fd, true);
}

FakeConn* FakeNet::find(int fd) {
  for (size_t i = accepted; i-- > 0;) {
    if (conns[i].fd == fd && !conns[i].closed) return &conns[i];
  }
  return nullptr;
}

}  // namespace c10m::fuzz

namespace c10m::sys {

using fuzz::fake_net;
using fuzz::FakeConn;
using fuzz::FakeNet;

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::optional<sockaddr_in> parse_ipv4_endpoint(std::string_view) { unexpected("parse"); }
std::string format_endpoint(const sockaddr_in&) { unexpected("format_endpoint"); }
int listen_tcp(const sockaddr_in&, const ListenOptions&) { unexpected("listen_tcp"); }
std::optional<sockaddr_in> local_endpoint(int) { unexpected("local_endpoint"); }
int connect_tcp(const sockaddr_in&, const sockaddr_in*, bool) { unexpected("connect_tcp"); }
int socket_error(int) { unexpected("socket_error"); }
int set_nonblocking(int, bool) { return 0; }
int set_io_timeouts(int, int64_t, int64_t) { return 0; }
int apply_socket_options(int, const SocketOptions&) { return 0; }
int set_rcvlowat(int, int) { return 0; }  // readiness stays the script's
ssize_t write_some(int, const void*, size_t) { unexpected("write_some"); }
ssize_t read_nowait(int, void*, size_t) { unexpected("read_nowait"); }
int shutdown_write(int) { unexpected("shutdown_write"); }
int set_reuseaddr_only(int) { unexpected("set_reuseaddr_only"); }
ssize_t sendfile_some(int, int, uint64_t, size_t) { unexpected("sendfile_some"); }
ssize_t discard_some(int, size_t) { unexpected("discard_some"); }
int set_cork(int, bool) { unexpected("set_cork"); }
int read_zerocopy_completions(int, ZerocopyCompletions*) { unexpected("zerocopy completions"); }
uint64_t raise_fd_limit() { return 20000; }
uint64_t count_open_fds() { return 0; }

int shutdown_both(int fd) {
  FakeNet& net = fake_net();
  if (fd == net.listen_fd) {
    // Stop listening: connects not yet accepted are refused.
    set_readable(net.listen_fd, false);
    return 0;
  }
  unexpected("shutdown_both on a connection");
}

int accept_conn(int listen_fd, bool) {
  FakeNet& net = fake_net();
  if (listen_fd != net.listen_fd) unexpected("accept_conn on another fd");
  if (net.accepted == net.conns.size()) {
    // The listener stays readable, so the loop comes back here every turn until the
    // drain: requested at the scripted call, or once every connection is closed (after
    // that nothing would ever wake the loop again).
    count_call(net);
    if (net.open_conns != nullptr && net.open_conns->load() == 0) net.request_drain();
    return -EAGAIN;
  }
  const int fd = ::eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);  // readable: input may come
  if (fd < 0) return -errno;
  // The number was free, so any earlier connection holding it has been closed.
  for (size_t i = 0; i < net.accepted; ++i) {
    if (net.conns[i].fd == fd) net.conns[i].closed = true;
  }
  net.conns[net.accepted++].fd = fd;
  return fd;
}

ssize_t read_some(int fd, void* buf, size_t len) {
  FakeNet& net = fake_net();
  FakeConn* c = net.find(fd);
  if (c == nullptr) unexpected("read_some on an unknown fd");
  if (c->eof_delivered || c->read_error) unexpected("read_some after EOF or an error");
  count_call(net);
  const size_t left = c->input.size() - c->read_pos;
  size_t n = std::min(len, left);
  uint32_t step = 0;
  if (net.next_step(&step)) {
    switch (step % 16) {
      case 0:
        return -EAGAIN;  // nothing arrived yet; the eventfd stays readable, epoll comes back
      case 1:
        if (step % 64 == 1) {
          c->read_error = true;
          return -ECONNRESET;
        }
        break;
      default:
        n = std::min<size_t>(n, 1 + step / 16);
        break;
    }
  }
  if (n == 0) {
    c->eof_delivered = true;
    return 0;
  }
  std::memcpy(buf, c->input.data() + c->read_pos, n);
  c->read_pos += n;
  return static_cast<ssize_t>(n);
}

ssize_t writev_some(int fd, const iovec* iov, int iovcnt) {
  FakeNet& net = fake_net();
  FakeConn* c = net.find(fd);
  if (c == nullptr) unexpected("writev_some on an unknown fd");
  if (c->write_error) unexpected("writev_some after EPIPE");
  if (iovcnt <= 0) unexpected("writev_some with no iovec");
  count_call(net);
  size_t want = 0;
  for (int i = 0; i < iovcnt; ++i) {
    if (iov[i].iov_len == 0) unexpected("writev_some with an empty iovec");
    want += iov[i].iov_len;
  }
  size_t n = want;
  uint32_t step = 0;
  if (net.next_step(&step)) {
    switch (step % 16) {
      case 0:
        return -EAGAIN;  // send buffer full; eventfds are always writable, epoll comes back
      case 1:
        if (step % 64 == 1) {
          c->write_error = true;
          return -EPIPE;
        }
        break;
      default:
        n = std::min<size_t>(n, 1 + step / 16);
        break;
    }
  }
  if (c->output.size() >= FakeNet::kOutputCap) {
    c->write_error = true;
    return -EPIPE;
  }
  n = std::min(n, FakeNet::kOutputCap - c->output.size());
  size_t left = n;
  for (int i = 0; i < iovcnt && left != 0; ++i) {
    const size_t k = std::min(left, iov[i].iov_len);
    const auto* p = static_cast<const uint8_t*>(iov[i].iov_base);
    c->output.insert(c->output.end(), p, p + k);
    left -= k;
  }
  return static_cast<ssize_t>(n);
}

// The loop's hot-path read and send are the same fake reads and writes.
ssize_t read_nocancel(int fd, void* buf, size_t len) { return read_some(fd, buf, len); }
ssize_t write_nocancel(int fd, const void* buf, size_t len) {
  const iovec iov{const_cast<void*>(buf), len};
  return writev_some(fd, &iov, 1);
}

void close_with_reset(int fd) {
  FakeNet& net = fake_net();
  if (FakeConn* c = net.find(fd)) {
    c->reset = true;
    c->closed = true;
  }
  ::close(fd);
}

// The engine's writes with flags (MSG_MORE only with sendfile, MSG_ZEROCOPY only with
// --fetch-send zerocopy: neither is configured here) are plain writes.
ssize_t sendmsg_some(int fd, const iovec* iov, int iovcnt, int flags) {
  if (flags != 0) unexpected("sendmsg flags");
  return writev_some(fd, iov, iovcnt);
}

}  // namespace c10m::sys
