#pragma once
// Everything the server is told on its command line, parsed and validated by apps/.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "core/memory_budget.h"

namespace c10m::core {

/// --fetch-send: how FETCH DATA bodies reach the socket (docs/FINDINGS.md, zero copy).
enum class FetchSend : uint8_t {
  kCopy,      // copied into pooled blocks, then writev (two copies on the send side)
  kWritev,    // writev straight from the content (file mapping / pattern table): one copy
  kSendfile,  // --fetch-file bodies by sendfile(2): the page cache's pages, no copy;
              // headers with MSG_MORE. Pattern content falls back to kWritev.
  kZerocopy,  // kWritev with MSG_ZEROCOPY (pages pinned, completions read from the error
              // queue; the kernel copies anyway on loopback). epoll engine only.
};
inline const char* fetch_send_name(FetchSend f) {
  switch (f) {
    case FetchSend::kCopy:
      return "copy";
    case FetchSend::kWritev:
      return "writev";
    case FetchSend::kSendfile:
      return "sendfile";
    case FetchSend::kZerocopy:
      return "zerocopy";
  }
  return "?";
}
inline bool parse_fetch_send(std::string_view name, FetchSend* out) {
  for (FetchSend f :
       {FetchSend::kCopy, FetchSend::kWritev, FetchSend::kSendfile, FetchSend::kZerocopy}) {
    if (name == fetch_send_name(f)) {
      *out = f;
      return true;
    }
  }
  return false;
}

/// Per-connection limits of docs/PROTOCOL.md ("Connection contract"). 0 = never/unbounded.
struct SessionLimits {
  uint32_t max_frame = 65535;
  Nanos idle_timeout = 300 * kSecond;
  Nanos frame_timeout = 10 * kSecond;
  Nanos write_timeout = 10 * kSecond;
  size_t write_queue = 256 * 1024;
};

struct ServerConfig {
  std::string addr = "127.0.0.1:7000";
  int threads = 0;         // event loops (epoll); 0 = number of cores
  bool reuseport = false;  // one SO_REUSEPORT listener per loop instead of a shared one
  bool nodelay = true;
  int rcvbuf = 0;  // 0 = kernel default
  int sndbuf = 0;
  int notsent_lowat = 0;       // TCP_NOTSENT_LOWAT: unsent bytes the kernel may queue per socket
  // --rcvlowat: a connection holding a partial frame sets SO_RCVLOWAT to what the frame
  // misses, at most this (Session::read_lowat); 0 = never. Every engine.
  int rcvlowat = 16 * 1024;
  size_t readbuf = 64 * 1024;  // bytes read per read() call (per-loop scratch buffer)
  bool pool = true;            // recycle per-thread buffers (false: malloc/free each time)
  size_t thread_stack = 64 * 1024;  // thread engine: stack per connection thread
  size_t zerocopy_min = 0;          // uring: SEND_ZC for a reply block of >= this; 0 = never
  std::string fetch_file;           // FETCH content; empty = the i mod 251 pattern
  FetchSend fetch_send = FetchSend::kWritev;
  bool ingest_trunc = false;  // --ingest trunc: large SINK/CHUNK payloads dropped in the kernel
  size_t fetch_ref_min = 16 * 1024;  // FETCH chunks below this are copied whatever fetch_send
  SessionLimits limits;
  uint64_t max_conns = 0;  // 0 = no limit
  // --accept-rate: new connections this process accepts per second at most (0 = no limit);
  // the rest wait in the listen backlog. The engines split it among their loops.
  double accept_rate = 0;
  Nanos drain_timeout = 30 * kSecond;
  // Memory budget (core/memory_budget.h): bytes of pooled blocks all connections of this
  // process may hold; 0 = no limit. apps/ resolves --memory-limit auto to a number.
  uint64_t memory_limit = 0;
  BudgetLevels overload_levels;        // percent of the limit: pause, shrink, stop accepting
  Nanos memory_release = 1 * kSecond;  // return free memory to the OS this often; 0 = never
};

}  // namespace c10m::core
