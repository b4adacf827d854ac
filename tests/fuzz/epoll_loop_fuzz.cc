// libFuzzer target over the epoll engine's read/write path: one real EpollLoop (epoll,
// timing wheel, read bursts, flush, backpressure, close, drain) runs over the fake sockets
// of fake_socket.h, so every read and write returns what the input says: short reads and
// writes of any size, EAGAIN, ECONNRESET, EPIPE, EOF, a drain at any moment.
//
// Checked, per connection, against a reference Session fed the same bytes in one piece by
// a peer that reads everything: what the engine wrote is exactly the reference output
// (with GOAWAY frames taken out: where the drain lands depends on timing), or a prefix of
// it when the connection was cut (reset, EPIPE, ECONNRESET). Also: run() returns (no hang),
// every connection is closed, counters add up, no pooled block leaks (ASan).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/content_source.h"
#include "core/session.h"
#include "engine/epoll/epoll_loop.h"
#include "proto/frame_reader.h"
#include "tests/fuzz/fake_socket.h"

namespace {

using namespace c10m;

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

using Bytes = std::vector<uint8_t>;

constexpr size_t kReadBufs[] = {1, 2, 3, 7, 64, 1000, 4096, 65536};
constexpr size_t kWriteQueues[] = {1, 10, 100, 1000, 4096, 65536, 256 * 1024, 0};
constexpr uint32_t kMaxFrames[] = {0, 12, 100, 4096, 65535};

/// The output with every GOAWAY frame removed; `complete` is false if it ends inside a frame.
Bytes without_goaway(const Bytes& out, bool* complete) {
  Bytes r;
  r.reserve(out.size());
  size_t i = 0;
  while (i + proto::kHeaderSize <= out.size()) {
    const proto::FrameHeader h = proto::parse_header(&out[i]);
    const size_t end = i + proto::kHeaderSize + h.length;
    if (end > out.size()) break;
    if (h.type != 0xFE) r.insert(r.end(), out.begin() + i, out.begin() + end);
    i = end;
  }
  *complete = i == out.size();
  // A partial last frame is kept as is, unless it is the start of a GOAWAY.
  if (i < out.size() && out[i] != 0xFE) r.insert(r.end(), out.begin() + i, out.end());
  return r;
}

/// What a Session answers to `in` (then EOF if `eof`) with a peer that reads everything,
/// up to `cap` bytes of output.
Bytes reference_output(const core::SessionLimits& limits, const core::ContentSource* content,
                       const Bytes& in, bool eof, size_t cap) {
  BufferPool pool(core::kSessionBlockSize, true, 4);
  BufferPool small(core::kSessionSmallBlockSize, true, 4);
  core::SessionEnv env;
  env.limits = limits;
  env.content = content;
  env.pool = &pool;
  env.small_pool = &small;
  env.read_chunk = in.size() + 1;
  core::Session s(env, 1);
  Bytes out;
  auto drain = [&]() {
    while (s.has_output() && !s.finished() && out.size() < cap) {
      iovec iov[64];
      const int n = s.gather(iov, 64);
      size_t sent = 0;
      for (int i = 0; i < n; ++i) {
        const auto* p = static_cast<const uint8_t*>(iov[i].iov_base);
        out.insert(out.end(), p, p + iov[i].iov_len);
        sent += iov[i].iov_len;
      }
      s.on_sent(sent, 1);
    }
  };
  size_t pos = 0;
  while (pos < in.size() && !s.finished() && out.size() < cap) {
    if (!s.wants_read()) {
      const size_t before = out.size();
      drain();
      if (out.size() == before && !s.wants_read()) break;  // dead input (after ERROR)
      continue;
    }
    s.on_bytes({in.data() + pos, in.size() - pos}, 1);
    pos = in.size();
  }
  if (eof) s.on_peer_eof(1);
  drain();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto content = core::make_pattern_source();
  FuzzedDataProvider fdp(data, size);
  core::ServerConfig config;
  config.readbuf = fdp.PickValueInArray(kReadBufs);
  config.limits.write_queue = fdp.PickValueInArray(kWriteQueues);
  config.limits.max_frame = fdp.PickValueInArray(kMaxFrames);
  // Timeouts are real time here (mono_now): off, so that runs are deterministic. The
  // session fuzzer covers them with a fake clock.
  config.limits.idle_timeout = 0;
  config.limits.frame_timeout = 0;
  config.limits.write_timeout = 0;
  config.drain_timeout = 0;  // wait for every peer: they all end (EOF, EPIPE or the cap)
  config.pool = fdp.ConsumeBool();

  fuzz::FakeNet& net = fuzz::fake_net();
  net = fuzz::FakeNet{};
  const size_t nconns = fdp.ConsumeIntegralInRange<size_t>(0, 4);
  net.conns.resize(nconns);
  for (fuzz::FakeConn& c : net.conns) {
    c.input = fdp.ConsumeBytes<uint8_t>(fdp.ConsumeIntegralInRange<size_t>(0, 2048));
  }
  net.drain_after_calls = fdp.ConsumeIntegralInRange<uint64_t>(1, 512);
  net.next_step = [&fdp](uint32_t* v) {
    if (fdp.remaining_bytes() == 0) return false;
    *v = fdp.ConsumeIntegral<uint16_t>();
    return true;
  };
  FUZZ_CHECK(net.open());

  metrics::ThreadCounters counters;
  engine::EpollShared shared;
  shared.config = &config;
  shared.content = content.get();
  shared.drain_fd = net.drain_fd;
  net.open_conns = &shared.open;
  engine::DrainReport report;
  {
    engine::EpollLoop loop(&shared, net.listen_fd, /*exclusive_listener=*/false, &counters);
    FUZZ_CHECK(loop.init().empty());
    report = loop.run();
  }
  FUZZ_CHECK(net.drain_requested);
  FUZZ_CHECK(shared.open.load() == 0);
  FUZZ_CHECK(counters.conns_opened.load() == net.accepted);
  FUZZ_CHECK(counters.conns_closed.load() == net.accepted);
  FUZZ_CHECK(counters.write_queue_bytes.load() == 0);

  uint64_t written = 0;
  for (size_t i = 0; i < net.accepted; ++i) {
    const fuzz::FakeConn& c = net.conns[i];
    written += c.output.size();
    const bool cut = c.reset || c.read_error || c.write_error;
    const Bytes in(c.input.begin(), c.input.begin() + static_cast<ptrdiff_t>(c.read_pos));
    const Bytes want = reference_output(config.limits, content.get(), in, c.eof_delivered,
                                        fuzz::FakeNet::kOutputCap + 4096);
    bool complete = false;
    const Bytes got = without_goaway(c.output, &complete);
    if (std::getenv("C10M_FUZZ_DEBUG") != nullptr) {
      std::fprintf(stderr,
                   "conn %zu: readbuf %zu write_queue %zu max_frame %u; read %zu of %zu%s%s, "
                   "wrote %zu%s%s; reference %zu\n",
                   i, config.readbuf, config.limits.write_queue, config.limits.max_frame,
                   c.read_pos, c.input.size(), c.eof_delivered ? " +EOF" : "",
                   c.read_error ? " +ECONNRESET" : "", c.output.size(),
                   c.write_error ? " +EPIPE" : "", c.reset ? " +RST" : "", want.size());
      for (const Bytes* b : {&in, &c.output, &want}) {
        for (size_t k = 0; k < std::min<size_t>(b->size(), 64); ++k)
          std::fprintf(stderr, "%02x ", (*b)[k]);
        std::fprintf(stderr, "\n");
      }
    }
    FUZZ_CHECK(got.size() <= want.size());
    FUZZ_CHECK(std::equal(got.begin(), got.end(), want.begin()));
    if (!cut) {
      FUZZ_CHECK(complete);  // never a partial frame and then a plain close
      FUZZ_CHECK(got.size() == want.size());
    }
  }
  FUZZ_CHECK(counters.bytes_out.load() == written);
  (void)report;
  net.close_all();
  net.next_step = nullptr;
  return 0;
}
