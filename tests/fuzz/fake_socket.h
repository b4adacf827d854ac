#pragma once
// A fake sys/ layer for fuzzing an engine's read/write path without a network: linked
// instead of src/sys/socket.cc, it implements the same c10m::sys functions over eventfds
// (so epoll still works on them) and a script the fuzzer writes.
//
// - The listener is an eventfd, readable while connects are pending; accept_conn() hands
//   out one eventfd per scripted connection (readable from the start, writable always).
// - read_some() on a connection delivers the connection's scripted input in pieces whose
//   sizes (or EAGAIN, or ECONNRESET) come from the step source, then EOF.
// - writev_some() takes as many bytes as the step source says (or EAGAIN, or EPIPE), and
//   everything once the steps run out, up to kOutputCap per connection (then EPIPE: a peer
//   that gives up on an endless FETCH).
// - Once every connect is accepted the listener stays readable (accept_conn() answers
//   EAGAIN) until the drain eventfd is written: at the I/O call the script chose, or when
//   no connection is left open, whichever comes first, so the engine's run() always ends.
// A connection's fd may be reused by a later accept: the earlier connection was closed
// (the engine called close()), which is how closing is observed.
//
// Thread rule: one engine loop thread and the fuzz driver, never at the same time.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace c10m::fuzz {

struct FakeConn {
  int fd = -1;
  std::vector<uint8_t> input;   // what the peer sends
  size_t read_pos = 0;          // bytes the engine has read
  bool eof_delivered = false;   // read_some returned 0
  bool read_error = false;      // read_some returned -ECONNRESET
  bool write_error = false;     // writev_some returned -EPIPE
  bool reset = false;           // closed with close_with_reset
  bool closed = false;          // its fd was reused by a later accept (or the run ended)
  std::vector<uint8_t> output;  // bytes the engine wrote (what the peer received)
};

struct FakeNet {
  static constexpr size_t kOutputCap = 64 * 1024;

  /// Sizes and outcomes of reads and writes, one value per call; returns false when the
  /// script has run out (reads then deliver all they can, writes take all they can).
  std::function<bool(uint32_t* value)> next_step;
  std::vector<FakeConn> conns;  // in accept order; `pending` of them not accepted yet
  size_t accepted = 0;
  int listen_fd = -1;
  int drain_fd = -1;
  uint64_t drain_after_calls = UINT64_MAX;  // I/O calls before the drain is requested
  uint64_t io_calls = 0;
  bool drain_requested = false;
  const std::atomic<uint64_t>* open_conns = nullptr;  // the engine's count of open ones

  /// Creates the listener and drain eventfds. Returns false if eventfd failed.
  bool open();
  /// Closes every fd still open (listener, drain, connections the engine left open).
  void close_all();
  void request_drain();
  FakeConn* find(int fd);
};

/// The FakeNet the fake sys functions use (one per process; reset per fuzz input).
FakeNet& fake_net();

}  // namespace c10m::fuzz
