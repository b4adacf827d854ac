// Session output by reference (FetchBody::kReference / kFile) and ingest in the kernel
// (discard_pending / on_discarded / read_hint): every variant must put exactly the bytes
// of the copy path on the wire, whatever the file size, chunk and write sizes; and the
// request path must not allocate in steady state.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/content_source.h"
#include "core/session.h"
#include "metrics/allocation_counter.h"

namespace c10m::core {
namespace {

using Bytes = std::vector<uint8_t>;
using proto::FrameType;

Bytes frame(FrameType type, const Bytes& payload = {}) {
  Bytes b{static_cast<uint8_t>(type), static_cast<uint8_t>(payload.size() >> 8),
          static_cast<uint8_t>(payload.size())};
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}
Bytes spec(uint64_t total, uint32_t chunk) {
  Bytes p(12);
  proto::write_stream_spec(p.data(), {total, chunk});
  return p;
}
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes b;
  for (const Bytes& p : parts) b.insert(b.end(), p.begin(), p.end());
  return b;
}
/// What a FETCH of `total` bytes in `chunk` pieces answers, byte i of the content being
/// content[i % content.size()].
Bytes fetch_reply(const Bytes& content, uint64_t total, uint32_t chunk) {
  Bytes b;
  b.reserve(total + 3 * (total / chunk + 2));
  uint64_t off = 0;
  while (off < total) {
    const auto k = static_cast<uint16_t>(std::min<uint64_t>(chunk, total - off));
    b.insert(b.end(), {0x06, static_cast<uint8_t>(k >> 8), static_cast<uint8_t>(k)});
    for (size_t i = 0; i < k; ++i) b.push_back(content[(off + i) % content.size()]);
    off += k;
  }
  b.insert(b.end(), {0x06, 0, 0});
  return b;
}

/// A temporary file holding `content`, removed on destruction.
struct TempFile {
  explicit TempFile(const Bytes& content) {
    char tmpl[] = "/tmp/c10m_zc_XXXXXX";
    const int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    close(fd);
    path = tmpl;
  }
  ~TempFile() { unlink(path.c_str()); }
  std::string path;
};

/// Drives one Session like an engine that can send files: iovecs are copied out,
/// file ranges are read with pread (what sendfile would put on the wire).
struct Driver {
  Driver(FetchBody body, const ContentSource* content, SessionLimits limits = {})
      : pool(kSessionBlockSize, true), small(kSessionSmallBlockSize, true) {
    env.limits = limits;
    env.content = content;
    env.fetch_body = body;
    env.pool = &pool;
    env.small_pool = &small;
    env.counters = &counters;
    session = std::make_unique<Session>(env, now);
  }

  /// Writes everything queued, at most `per_write` bytes per "syscall".
  void flush(size_t per_write = SIZE_MAX) {
    while (session->has_output() && !session->finished()) {
      iovec iov[64];
      const Session::OutputView v = session->gather_output(iov, 64, /*files=*/true);
      size_t sent = 0;
      if (v.iovcnt > 0) {
        size_t total = 0;
        for (int i = 0; i < v.iovcnt; ++i) total += iov[i].iov_len;
        ASSERT_EQ(total, v.bytes);
        for (int i = 0; i < v.iovcnt && sent < per_write; ++i) {
          const size_t k = std::min(iov[i].iov_len, per_write - sent);
          const auto* p = static_cast<const uint8_t*>(iov[i].iov_base);
          out.insert(out.end(), p, p + k);
          sent += k;
        }
      } else {
        ASSERT_GE(v.file_fd, 0);
        ASSERT_GT(v.file_length, 0u);
        ++file_ranges;
        Bytes buf(std::min(v.file_length, per_write));
        ASSERT_EQ(pread(v.file_fd, buf.data(), buf.size(), static_cast<off_t>(v.file_offset)),
                  static_cast<ssize_t>(buf.size()));
        out.insert(out.end(), buf.begin(), buf.end());
        sent = buf.size();
      }
      session->on_sent(sent, now);
    }
  }

  Bytes roundtrip(const Bytes& in, size_t per_write = SIZE_MAX) {
    size_t i = 0;
    while (i < in.size() && !session->finished()) {
      while (!session->wants_read() && !session->finished()) flush(per_write);
      const size_t k = std::min<size_t>(in.size() - i, 4096);
      session->on_bytes({in.data() + i, k}, now);
      i += k;
    }
    flush(per_write);
    return out;
  }

  BufferPool pool;
  BufferPool small;
  metrics::ThreadCounters counters;
  SessionEnv env;
  Nanos now = 1000;
  std::unique_ptr<Session> session;
  Bytes out;
  int file_ranges = 0;
};

Bytes file_bytes(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 13 + seed + (i >> 8));
  return b;
}

// Sizes that do not divide the chunk, files shorter than one chunk, and wraps at the end.
TEST(SessionZeroCopyTest, EveryBodyModeSendsTheCopyPathsBytes) {
  const size_t file_sizes[] = {1, 7, 4095, 4096, 16385, 100003};
  const uint32_t chunks[] = {7, 4096, 16384, 65535};
  for (size_t fs : file_sizes) {
    const Bytes content = file_bytes(fs, static_cast<uint8_t>(fs));
    TempFile file(content);
    const auto src = make_file_source(file.path);
    for (uint32_t chunk : chunks) {
      const uint64_t totals[] = {0, 1, chunk, uint64_t{chunk} * 3 + 5, fs * 2 + 11};
      for (uint64_t total : totals) {
        if (total > 250000) continue;
        const Bytes in = frame(FrameType::kFetch, spec(total, chunk));
        const Bytes want = fetch_reply(content, total, chunk);
        for (FetchBody body : {FetchBody::kCopy, FetchBody::kReference, FetchBody::kFile}) {
          for (size_t per_write : {size_t{SIZE_MAX}, size_t{777}}) {
            SessionLimits l;
            l.write_queue = 50000;
            Driver d(body, src.get(), l);
            d.env.ref_min_chunk = 1;
            ASSERT_EQ(d.roundtrip(in, per_write), want)
                << "file " << fs << " chunk " << chunk << " total " << total << " body "
                << static_cast<int>(body) << " per_write " << per_write;
            EXPECT_EQ(d.pool.outstanding() + d.small.outstanding(), 0u);
            // Files shorter than a chunk are copied (a body would be many runs of it).
            if (body == FetchBody::kFile && total > 0 && chunk <= fs) {
              EXPECT_GT(d.file_ranges, 0) << "file " << fs << " chunk " << chunk;
            }
            if (body != FetchBody::kFile) {
              EXPECT_EQ(d.file_ranges, 0);
            }
          }
        }
      }
    }
  }
}

TEST(SessionZeroCopyTest, PatternByReferenceMatchesCopy) {
  const Bytes content = [] {
    Bytes b(251);
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i);
    return b;
  }();
  for (uint32_t chunk : {4096u, 65535u}) {
    const Bytes in = cat({frame(FrameType::kPing), frame(FrameType::kFetch, spec(300000, chunk)),
                          frame(FrameType::kEcho, Bytes(10, 9))});
    const Bytes want = cat({frame(FrameType::kPing), fetch_reply(content, 300000, chunk),
                            frame(FrameType::kEcho, Bytes(10, 9))});
    Driver d(FetchBody::kReference, nullptr);
    EXPECT_EQ(d.roundtrip(in, 1000), want);
    Driver f(FetchBody::kFile, nullptr);  // the pattern has no file: plain references
    EXPECT_EQ(f.roundtrip(in), want);
    EXPECT_EQ(f.file_ranges, 0);
  }
}

TEST(SessionZeroCopyTest, ReferencesAreImmutableAndHeldInSmallBlocks) {
  Driver d(FetchBody::kReference, nullptr);
  d.session->on_bytes(frame(FrameType::kFetch, spec(uint64_t{1} << 30, 16384)), d.now);
  EXPECT_GE(d.session->queued_bytes(), 256u * 1024);
  // A FETCH by reference costs small blocks of records, not 128 KiB blocks of bytes.
  EXPECT_EQ(d.pool.outstanding(), 0u);
  EXPECT_GE(d.small.outstanding(), 1u);
  iovec iov[64];
  const Session::OutputView v = d.session->gather_output(iov, 64, false);
  EXPECT_TRUE(v.immutable);
  EXPECT_EQ(v.iovcnt, 32);  // 16 frames of 16 KiB fill the 256 KiB queue: header + body each
  EXPECT_EQ(v.file_fd, -1);

  // Copied replies ahead of it make a batch mutable.
  Driver e(FetchBody::kReference, nullptr);
  e.session->on_bytes(
      cat({frame(FrameType::kEcho, Bytes(100, 1)), frame(FrameType::kFetch, spec(100000, 16384))}),
      e.now);
  EXPECT_FALSE(e.session->gather_output(iov, 64, false).immutable);
}

TEST(SessionZeroCopyTest, SmallChunksAreCopiedWhateverTheMode) {
  Driver d(FetchBody::kReference, nullptr);
  d.session->on_bytes(frame(FrameType::kFetch, spec(100000, 100)), d.now);  // < ref_min_chunk
  iovec iov[64];
  EXPECT_FALSE(d.session->gather_output(iov, 64, false).immutable);
  EXPECT_GE(d.pool.outstanding(), 1u);
}

TEST(SessionZeroCopyTest, WriteTimeoutCoversReferences) {
  SessionLimits l;
  l.write_timeout = kSecond;
  Driver d(FetchBody::kReference, nullptr, l);
  d.session->on_bytes(frame(FrameType::kFetch, spec(uint64_t{1} << 30, 65535)), d.now);
  d.session->on_sent(100000, d.now);  // part of it, then the peer stops reading
  EXPECT_EQ(d.session->next_deadline(), d.now + kSecond);
  d.now += 2 * kSecond;
  d.session->on_tick(d.now);
  EXPECT_TRUE(d.session->finished());
  EXPECT_EQ(d.session->close_cause(), CloseCause::kWriteTimeout);
  EXPECT_EQ(d.counters.write_queue_bytes.load(), 0u);
  // The unsent blocks stay until the Session is destroyed (a write may be in flight).
  d.session.reset();
  EXPECT_EQ(d.pool.outstanding() + d.small.outstanding(), 0u);
  EXPECT_EQ(d.counters.write_queue_bytes.load(), 0u);
}

TEST(SessionZeroCopyTest, IngestDiscardsLargePayloadsInTheKernel) {
  Driver d(FetchBody::kCopy, nullptr);
  d.env.ingest_trunc = true;
  d.env.trunc_min = 1000;
  // A STREAM of 2 x 1500 bytes: its header read, then the payload "dropped in the kernel".
  d.session->on_bytes(frame(FrameType::kStream, spec(3000, 1500)), d.now);
  EXPECT_EQ(d.session->read_hint(), 0u);  // the last request was no large discard
  EXPECT_EQ(d.session->discard_pending(), 0u);
  const Bytes chunk_header{0x05, 0x05, 0xDC};  // CHUNK of 1500
  d.session->on_bytes(cat({chunk_header, Bytes(100, 1)}), d.now);
  EXPECT_EQ(d.session->discard_pending(), 1400u);
  d.session->on_discarded(400, d.now);
  EXPECT_EQ(d.session->discard_pending(), 1000u);
  EXPECT_TRUE(d.session->request_in_flight());
  d.session->on_discarded(1000, d.now);
  EXPECT_EQ(d.session->discard_pending(), 0u);
  EXPECT_EQ(d.session->read_hint(), 3u);  // expect another: read just its header
  d.session->on_bytes(chunk_header, d.now);
  EXPECT_EQ(d.session->discard_pending(), 1500u);
  d.session->on_discarded(1500, d.now);
  d.flush();
  EXPECT_EQ(d.out,
            cat({frame(FrameType::kStream), frame(FrameType::kChunk), frame(FrameType::kChunk)}));
  EXPECT_EQ(d.counters.bytes_in.load(), 15u + 3 + 100 + 400 + 1000 + 3 + 1500);
  EXPECT_EQ(d.counters.frames[5].load(), 2u);
  // A small SINK is read, not discarded; the hint goes away.
  d.session->on_bytes(frame(FrameType::kSink, Bytes(10, 2)), d.now);
  EXPECT_EQ(d.session->read_hint(), 0u);
  EXPECT_EQ(d.session->discard_pending(), 0u);
  // Without ingest_trunc nothing is offered.
  Driver e(FetchBody::kCopy, nullptr);
  e.session->on_bytes(frame(FrameType::kSink, Bytes(5000, 2)), e.now);
  EXPECT_EQ(e.session->read_hint(), 0u);
}

TEST(SessionZeroCopyTest, DiscardIsNotOfferedWhileInputIsHeld) {
  SessionLimits l;
  l.write_queue = 10;
  Driver d(FetchBody::kCopy, nullptr, l);
  d.env.ingest_trunc = true;
  d.env.trunc_min = 100;
  // Behind a FETCH the SINK's header and start are held: nothing to discard yet.
  d.session->on_bytes(
      cat({frame(FrameType::kFetch, spec(100000, 1000)), Bytes{0x03, 0x10, 0x00}, Bytes(10, 1)}),
      d.now);
  EXPECT_EQ(d.session->discard_pending(), 0u);
  d.flush();
  EXPECT_EQ(d.session->discard_pending(), 4096u - 10);
}

// The request path allocates nothing in steady state (pooled blocks, no per-request
// objects), in every body mode. Needs an allocator hook (tcmalloc or a sanitizer runtime).
TEST(SessionZeroCopyTest, SteadyStateRequestsDoNotAllocate) {
  if (metrics::install_allocation_counter() == metrics::AllocationHook::kNone)
    GTEST_SKIP() << "no allocator hook in this build (glibc malloc): see the ASan build";
  for (FetchBody body : {FetchBody::kCopy, FetchBody::kReference}) {
    Driver d(body, nullptr);
    const Bytes in = cat(
        {frame(FrameType::kPing), frame(FrameType::kEcho, Bytes(64, 1)),
         frame(FrameType::kEcho, Bytes(4096, 2)), frame(FrameType::kEcho, Bytes(65535, 3)),
         frame(FrameType::kSink, Bytes(16384, 4)), frame(FrameType::kStream, spec(32768, 16384)),
         frame(FrameType::kChunk, Bytes(16384, 5)), frame(FrameType::kChunk, Bytes(16384, 6)),
         frame(FrameType::kFetch, spec(100000, 16384))});
    iovec iov[64];
    auto round = [&] {
      for (size_t i = 0; i < in.size();) {
        const size_t k = std::min<size_t>(in.size() - i, 65536);
        d.session->on_bytes({in.data() + i, k}, d.now);
        i += k;
        while (d.session->has_output()) {
          const int n = d.session->gather(iov, 64);
          size_t bytes = 0;
          for (int j = 0; j < n; ++j) bytes += iov[j].iov_len;
          d.session->on_sent(bytes, d.now);
        }
      }
    };
    for (int i = 0; i < 10; ++i) round();  // warm the pools
    const uint64_t before = metrics::allocations_now();
    for (int i = 0; i < 1000; ++i) round();
    const uint64_t after = metrics::allocations_now();
    EXPECT_EQ(after - before, 0u) << "body mode " << static_cast<int>(body);
  }
}

}  // namespace
}  // namespace c10m::core
