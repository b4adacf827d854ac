// uv_echo_peer: a raw byte echo server on libuv (Debian's libuv1-dev). N loops, one thread
// each, each with its own SO_REUSEPORT listener (libuv 1.44 has no UV_TCP_REUSEPORT, so the
// listening socket comes from c10m::sys::listen_tcp and is handed to uv_tcp_open). Reads go
// to one 64 KiB scratch buffer per loop (alloc_cb), and each read is echoed at once with
// uv_try_write; only bytes the kernel refuses are copied into a heap-allocated uv_write
// request, and the connection stops reading until that write completes (backpressure).
// An idle connection owns only its uv_tcp_t. TCP_NODELAY on. Any byte echo is a valid
// PING/ECHO peer (docs/PROTOCOL.md).
//
//   uv_echo_peer [--addr 127.0.0.1:0] [--threads N]
// Prints "listening on HOST:PORT" on stderr; exits on SIGTERM/SIGINT (default action).
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "sys/socket.h"

namespace {

constexpr size_t kScratchBytes = 64 * 1024;

struct UvLoop {
  uv_loop_t loop;
  uv_tcp_t listener;
  char scratch[kScratchBytes];
};

// The bytes uv_try_write could not take, with the request that writes them.
struct UvPendingWrite {
  uv_write_t req;
  size_t len;
  char data[];  // len bytes
};

void on_close(uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); }

void close_conn(uv_stream_t* s) {
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(s)))
    uv_close(reinterpret_cast<uv_handle_t*>(s), on_close);
}

void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* l = static_cast<UvLoop*>(h->loop->data);
  *buf = uv_buf_init(l->scratch, kScratchBytes);
}

void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);

void on_written(uv_write_t* req, int status) {
  uv_stream_t* s = req->handle;
  std::free(req);
  if (status < 0) {
    close_conn(s);
    return;
  }
  uv_read_start(s, on_alloc, on_read);  // everything written: read again
}

void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  if (nread < 0) {
    close_conn(s);
    return;
  }
  if (nread == 0) return;
  uv_buf_t out = uv_buf_init(buf->base, static_cast<unsigned>(nread));
  int w = uv_try_write(s, &out, 1);
  if (w == UV_EAGAIN) w = 0;
  if (w < 0) {
    close_conn(s);
    return;
  }
  if (w == nread) return;
  const size_t rest = static_cast<size_t>(nread) - static_cast<size_t>(w);
  auto* pw = static_cast<UvPendingWrite*>(std::malloc(sizeof(UvPendingWrite) + rest));
  pw->len = rest;
  std::memcpy(pw->data, buf->base + w, rest);
  uv_buf_t b = uv_buf_init(pw->data, static_cast<unsigned>(rest));
  uv_read_stop(s);
  if (uv_write(&pw->req, s, &b, 1, on_written) < 0) {
    std::free(pw);
    close_conn(s);
  }
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;  // EMFILE and friends: libuv itself backs off
  auto* c = new uv_tcp_t;
  uv_tcp_init(server->loop, c);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(c)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(c), on_close);
    return;
  }
  uv_tcp_nodelay(c, 1);
  uv_read_start(reinterpret_cast<uv_stream_t*>(c), on_alloc, on_read);
}

int usage() {
  std::fprintf(stderr, "usage: uv_echo_peer [--addr host:port] [--threads N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string addr_text = "127.0.0.1:0";
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--addr" && i + 1 < argc)
      addr_text = argv[++i];
    else if (a == "--threads" && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else
      return usage();
  }
  auto addr = c10m::sys::parse_ipv4_endpoint(addr_text);
  if (!addr || threads < 1) return usage();
  c10m::sys::raise_fd_limit();

  // Every loop gets its own listener on the same port (the first one resolves port 0).
  std::vector<std::unique_ptr<UvLoop>> loops;
  for (int i = 0; i < threads; ++i) {
    c10m::sys::ListenOptions opts;
    opts.reuseport = true;
    const int fd = c10m::sys::listen_tcp(*addr, opts);
    if (fd < 0) {
      std::fprintf(stderr, "uv_echo_peer: listen %s: %s\n", addr_text.c_str(), std::strerror(-fd));
      return 1;
    }
    if (i == 0) addr = c10m::sys::local_endpoint(fd);
    auto l = std::make_unique<UvLoop>();
    uv_loop_init(&l->loop);
    l->loop.data = l.get();
    uv_tcp_init(&l->loop, &l->listener);
    uv_tcp_open(&l->listener, fd);
    const int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&l->listener), 4096, on_connection);
    if (rc < 0) {
      std::fprintf(stderr, "uv_echo_peer: uv_listen: %s\n", uv_strerror(rc));
      return 1;
    }
    loops.push_back(std::move(l));
  }
  std::fprintf(stderr, "listening on %s\n", c10m::sys::format_endpoint(*addr).c_str());
  std::fflush(stderr);

  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i)
    pool.emplace_back([&, i] { uv_run(&loops[i]->loop, UV_RUN_DEFAULT); });
  uv_run(&loops[0]->loop, UV_RUN_DEFAULT);
  for (auto& t : pool) t.join();
  return 0;
}
