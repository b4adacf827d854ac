// asio_echo_peer: a raw byte echo server on standalone Asio (Debian's libasio-dev), written
// the way Asio's own examples teach it: one io_context per thread (concurrency hint 1, so
// no internal locking), one acceptor that hands each new socket to the next io_context in
// turn, and per connection a callback chain async_read_some -> async_write -> read again
// over a 16 KiB buffer owned by the session (shared_ptr, the examples' lifetime idiom).
// Handlers use Asio's default recycling allocator, so the steady state does not allocate.
// Any byte echo is a valid PING/ECHO peer (docs/PROTOCOL.md). TCP_NODELAY on.
//
//   asio_echo_peer [--addr 127.0.0.1:0] [--threads N]
// Prints "listening on HOST:PORT" on stderr; exits on SIGTERM/SIGINT.
#include <sys/resource.h>

#include <array>
#include <asio.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kBufferBytes = 16 * 1024;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}
  void start() {
    asio::error_code ec;
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    read();
  }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(data_),
                            [self = shared_from_this()](asio::error_code ec, std::size_t n) {
                              if (!ec) self->write(n);
                            });
  }
  void write(std::size_t n) {
    asio::async_write(socket_, asio::buffer(data_.data(), n),
                      [self = shared_from_this()](asio::error_code ec, std::size_t) {
                        if (!ec) self->read();
                      });
  }

  asio::ip::tcp::socket socket_;
  std::array<char, kBufferBytes> data_;
};

class Server {
 public:
  Server(std::vector<std::unique_ptr<asio::io_context>>& contexts, asio::ip::tcp::acceptor& acc)
      : contexts_(contexts), acceptor_(acc), retry_(*contexts[0]) {}
  void accept() {
    asio::io_context& target = *contexts_[next_++ % contexts_.size()];
    acceptor_.async_accept(target, [this](asio::error_code ec, asio::ip::tcp::socket s) {
      if (!ec) {
        std::make_shared<Session>(std::move(s))->start();
        accept();
        return;
      }
      if (ec == asio::error::operation_aborted) return;
      // EMFILE and friends: back off instead of spinning on a full fd table.
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([this](asio::error_code) { accept(); });
    });
  }

 private:
  std::vector<std::unique_ptr<asio::io_context>>& contexts_;
  asio::ip::tcp::acceptor& acceptor_;
  asio::steady_timer retry_;
  std::size_t next_ = 0;
};

int usage() {
  std::fprintf(stderr, "usage: asio_echo_peer [--addr host:port] [--threads N]\n");
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
  const auto colon = addr_text.rfind(':');
  if (colon == std::string::npos || threads < 1) return usage();
  asio::error_code ec;
  const auto ip = asio::ip::make_address(addr_text.substr(0, colon), ec);
  if (ec) {
    std::fprintf(stderr, "asio_echo_peer: bad --addr %s\n", addr_text.c_str());
    return 2;
  }
  const auto port = static_cast<unsigned short>(std::atoi(addr_text.c_str() + colon + 1));

  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (int i = 0; i < threads; ++i) contexts.push_back(std::make_unique<asio::io_context>(1));
  asio::ip::tcp::acceptor acceptor(*contexts[0]);
  const asio::ip::tcp::endpoint endpoint(ip, port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint, ec);
  if (ec) {
    std::fprintf(stderr, "asio_echo_peer: bind %s: %s\n", addr_text.c_str(), ec.message().c_str());
    return 1;
  }
  acceptor.listen(asio::socket_base::max_listen_connections);
  const auto bound = acceptor.local_endpoint();
  std::fprintf(stderr, "listening on %s:%u\n", bound.address().to_string().c_str(),
               static_cast<unsigned>(bound.port()));
  std::fflush(stderr);

  Server server(contexts, acceptor);
  server.accept();
  asio::signal_set signals(*contexts[0], SIGINT, SIGTERM);
  signals.async_wait([&](asio::error_code, int) {
    for (auto& c : contexts) c->stop();
  });

  // Each io_context keeps running while it has no work yet (connections arrive later).
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& c : contexts) guards.push_back(asio::make_work_guard(*c));
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&, i] { contexts[i]->run(); });
  contexts[0]->run();
  for (auto& t : pool) t.join();
  return 0;
}
