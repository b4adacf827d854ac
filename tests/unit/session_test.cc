// Session: the engine-agnostic protocol logic, driven with fake time and no sockets.
#include "core/session.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/content_source.h"

namespace c10m::core {
namespace {

using Bytes = std::vector<uint8_t>;
using proto::FrameType;

// --- building requests and expected replies --------------------------------------------

void put_frame(Bytes& b, uint8_t type, const Bytes& payload) {
  b.push_back(type);
  b.push_back(static_cast<uint8_t>(payload.size() >> 8));
  b.push_back(static_cast<uint8_t>(payload.size()));
  b.insert(b.end(), payload.begin(), payload.end());
}
Bytes frame(uint8_t type, const Bytes& payload = {}) {
  Bytes b;
  put_frame(b, type, payload);
  return b;
}
Bytes frame(FrameType type, const Bytes& payload = {}) {
  return frame(static_cast<uint8_t>(type), payload);
}
Bytes header(uint8_t type, uint16_t length) {
  return {type, static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length)};
}
Bytes spec(uint64_t total, uint32_t chunk) {
  Bytes p(12);
  proto::write_stream_spec(p.data(), {total, chunk});
  return p;
}
Bytes pattern(size_t n, uint8_t seed = 0) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 7 + seed);
  return b;
}
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes b;
  for (const Bytes& p : parts) b.insert(b.end(), p.begin(), p.end());
  return b;
}
/// The DATA frames and end frame a FETCH of the default pattern answers with.
Bytes fetch_reply(uint64_t total, uint32_t chunk) {
  Bytes b;
  uint64_t off = 0;
  while (off < total) {
    const size_t k = std::min<uint64_t>(chunk, total - off);
    Bytes p(k);
    for (size_t i = 0; i < k; ++i) p[i] = proto::fetch_pattern_byte(off + i);
    put_frame(b, 0x06, p);
    off += k;
  }
  put_frame(b, 0x06, {});
  return b;
}

struct Frame {
  uint8_t type;
  Bytes payload;
};
/// Splits `b` into frames; fails the test on a partial frame at the end.
std::vector<Frame> split_frames(const Bytes& b) {
  std::vector<Frame> out;
  size_t i = 0;
  while (i < b.size()) {
    EXPECT_GE(b.size() - i, 3u) << "partial header in output";
    if (b.size() - i < 3) break;
    const auto h = proto::parse_header(&b[i]);
    EXPECT_GE(b.size() - i, 3u + h.length) << "partial frame in output";
    if (b.size() - i < 3u + h.length) break;
    out.push_back({h.type, Bytes(b.begin() + i + 3, b.begin() + i + 3 + h.length)});
    i += 3 + h.length;
  }
  return out;
}

// --- the driver ---------------------------------------------------------------------------

/// Drives one Session like an engine would, with fake time, and records what it writes.
struct Driver {
  explicit Driver(SessionLimits limits = {}, const ContentSource* content = nullptr,
                  bool pool_on = true)
      : pool(kSessionBlockSize, pool_on), small(kSessionSmallBlockSize, pool_on) {
    env.limits = limits;
    env.content = content;
    env.pool = &pool;
    env.small_pool = &small;
    env.counters = &counters;
    session = std::make_unique<Session>(env, now);
  }

  /// Writes up to `max` bytes of the queued output to `out` (the peer reads them).
  size_t flush(size_t max = SIZE_MAX) {
    size_t total = 0;
    while (session->has_output() && total < max && !session->finished()) {
      iovec iov[64];
      const int n = session->gather(iov, 64);
      EXPECT_GT(n, 0);
      size_t sent = 0;
      for (int i = 0; i < n && total + sent < max; ++i) {
        const size_t k = std::min(iov[i].iov_len, max - total - sent);
        const auto* p = static_cast<const uint8_t*>(iov[i].iov_base);
        out.insert(out.end(), p, p + k);
        sent += k;
      }
      session->on_sent(sent, now);
      total += sent;
    }
    return total;
  }

  /// Feeds `in` in pieces of at most `piece` bytes, reading all output whenever the
  /// session stops reading (the peer keeps up). Returns false if it could not deliver.
  bool feed(const Bytes& in, size_t piece = SIZE_MAX) {
    size_t i = 0;
    while (i < in.size()) {
      for (int spins = 0; !session->wants_read(); ++spins) {
        if (session->finished() || spins > 1000000) return false;
        flush();
      }
      const size_t k = std::min(piece, in.size() - i);
      session->on_bytes({in.data() + i, k}, now);
      i += k;
    }
    return true;
  }

  /// Feeds and reads everything back.
  Bytes roundtrip(const Bytes& in, size_t piece = SIZE_MAX) {
    feed(in, piece);
    flush();
    return out;
  }

  void eof() { session->on_peer_eof(now); }
  void tick(Nanos t) {
    now = t;
    session->on_tick(now);
  }

  BufferPool pool;
  BufferPool small;
  metrics::ThreadCounters counters;
  SessionEnv env;
  Nanos now = 1000;
  std::unique_ptr<Session> session;
  Bytes out;
};

SessionLimits no_timeouts() {
  SessionLimits l;
  l.idle_timeout = 0;
  l.frame_timeout = 0;
  l.write_timeout = 0;
  return l;
}

uint64_t count(const metrics::Counter& c) { return c.load(); }

// --- basics ---------------------------------------------------------------------------------

TEST(SessionTest, SizeIsSmall) { EXPECT_LE(sizeof(Session), 128u); }

TEST(SessionTest, EveryRequestType) {
  Driver d;
  const Bytes echo = pattern(1000);
  const Bytes in =
      cat({frame(FrameType::kPing), frame(FrameType::kEcho, echo),
           frame(FrameType::kSink, pattern(500)), frame(FrameType::kStream, spec(10, 6)),
           frame(FrameType::kChunk, pattern(6)), frame(FrameType::kChunk, pattern(4)),
           frame(FrameType::kFetch, spec(5, 2))});
  const Bytes want = cat({frame(FrameType::kPing), frame(FrameType::kEcho, echo),
                          frame(FrameType::kSink), frame(FrameType::kStream),
                          frame(FrameType::kChunk), frame(FrameType::kChunk), fetch_reply(5, 2)});
  EXPECT_EQ(d.roundtrip(in), want);
  EXPECT_FALSE(d.session->finished());
  EXPECT_TRUE(d.session->wants_read());
  EXPECT_EQ(d.pool.outstanding(), 0u);
}

TEST(SessionTest, EchoEmptyAndMaximal) {
  Driver d;
  const Bytes big = pattern(65535, 3);
  const Bytes in = cat({frame(FrameType::kEcho), frame(FrameType::kEcho, big)});
  EXPECT_EQ(d.roundtrip(in, 1000), in);
  EXPECT_EQ(d.pool.outstanding(), 0u);
}

TEST(SessionTest, EchoOfMaxFrameIsAccepted) {
  SessionLimits l;
  l.max_frame = 100;
  Driver d(l);
  const Bytes in = frame(FrameType::kEcho, pattern(100));
  EXPECT_EQ(d.roundtrip(in), in);
  EXPECT_FALSE(d.session->finished());
}

TEST(SessionTest, StreamAndFetchIgnoreMaxFrameForTheirLength) {
  SessionLimits l;
  l.max_frame = 5;  // smaller than the 12-byte STREAM/FETCH payload
  Driver d(l);
  const Bytes in =
      cat({frame(FrameType::kStream, spec(3, 2)), frame(FrameType::kChunk, pattern(2)),
           frame(FrameType::kChunk, pattern(1)), frame(FrameType::kFetch, spec(7, 5))});
  EXPECT_EQ(d.roundtrip(in), cat({frame(FrameType::kStream), frame(FrameType::kChunk),
                                  frame(FrameType::kChunk), fetch_reply(7, 5)}));
}

// --- errors ----------------------------------------------------------------------------------

struct ErrorCase {
  const char* name;
  uint32_t max_frame;
  Bytes in;
  uint8_t code;
};

Bytes expect_error(Driver& d, const Bytes& in) {
  d.feed(in);
  d.flush();
  EXPECT_TRUE(d.session->finished());
  const auto frames = split_frames(d.out);
  EXPECT_FALSE(frames.empty());
  if (frames.empty()) return {};
  EXPECT_EQ(frames.back().type, 0xFF);
  EXPECT_GE(frames.back().payload.size(), 1u);
  EXPECT_LE(frames.back().payload.size(), 1 + proto::kMaxErrorReason);
  return frames.back().payload;
}

TEST(SessionTest, EveryProtocolErrorAndPrecedence) {
  const std::vector<ErrorCase> cases = {
      {"unknown 0x07", 65535, header(0x07, 0), 0x02},
      {"unknown 0x00", 65535, header(0x00, 0), 0x02},
      {"unknown GOAWAY from client", 65535, header(0xFE, 0), 0x02},
      {"unknown ERROR from client", 65535, header(0xFF, 1), 0x02},
      {"unknown beats too large", 10, header(0x09, 500), 0x02},
      {"too large echo", 10, header(0x02, 11), 0x01},
      {"too large sink", 65534, header(0x03, 65535), 0x01},
      {"too large chunk beats bad stream", 10, header(0x05, 11), 0x01},
      {"too large ping beats bad length", 10, header(0x01, 11), 0x01},
      {"bad length ping", 65535, cat({header(0x01, 1), Bytes{0}}), 0x03},
      {"bad length stream", 65535, frame(0x04, pattern(11)), 0x03},
      {"bad length fetch", 65535, frame(0x06, pattern(13)), 0x03},
      {"bad length stream beyond max frame", 5, header(0x04, 100), 0x03},
      {"chunk without stream", 65535, frame(0x05, pattern(4)), 0x04},
      {"chunk of wrong size", 65535, cat({frame(0x04, spec(10, 4)), frame(0x05, pattern(3))}),
       0x04},
      {"short last chunk too long", 65535,
       cat({frame(0x04, spec(10, 4)), frame(0x05, pattern(4)), frame(0x05, pattern(4)),
            frame(0x05, pattern(4))}),
       0x04},
      {"empty chunk", 65535, cat({frame(0x04, spec(10, 4)), frame(0x05)}), 0x04},
      {"chunk after stream closed", 65535,
       cat({frame(0x04, spec(2, 4)), frame(0x05, pattern(2)), frame(0x05, pattern(2))}), 0x04},
      {"chunk after empty stream", 65535, cat({frame(0x04, spec(0, 4)), frame(0x05, pattern(1))}),
       0x04},
      {"stream while open", 65535, cat({frame(0x04, spec(10, 4)), frame(0x04, spec(10, 4))}), 0x04},
      {"stream chunk 0", 65535, frame(0x04, spec(10, 0)), 0x04},
      {"stream chunk 0 total 0", 65535, frame(0x04, spec(0, 0)), 0x04},
      {"stream chunk > max", 100, frame(0x04, spec(10, 101)), 0x04},
      {"fetch chunk 0", 65535, frame(0x06, spec(10, 0)), 0x04},
      {"fetch chunk > max", 65535, frame(0x06, spec(10, 65536)), 0x04},
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.name);
    SessionLimits l;
    l.max_frame = c.max_frame;
    Driver d(l);
    const Bytes err = expect_error(d, c.in);
    ASSERT_FALSE(err.empty());
    EXPECT_EQ(err[0], c.code);
    EXPECT_EQ(d.session->close_cause(), CloseCause::kProtocolError);
    EXPECT_FALSE(d.session->reset_on_close());
    EXPECT_EQ(count(d.counters.protocol_errors[c.code]), 1u);
    EXPECT_EQ(d.pool.outstanding(), 0u);
  }
}

TEST(SessionTest, ErrorReasonIsReadable) {
  SessionLimits l;
  l.max_frame = 1000;
  Driver d(l);
  const Bytes err = expect_error(d, header(0x02, 5000));
  const std::string reason(err.begin() + 1, err.end());
  EXPECT_NE(reason.find("5000"), std::string::npos) << reason;
  EXPECT_NE(reason.find("1000"), std::string::npos) << reason;
}

TEST(SessionTest, RequestsAheadOfBadFrameAreAnsweredAndRestIgnored) {
  Driver d;
  const Bytes echo = frame(FrameType::kEcho, pattern(10));
  const Bytes in = cat({frame(FrameType::kPing), echo, frame(FrameType::kFetch, spec(4, 3)),
                        header(0x09, 0), frame(FrameType::kPing)});
  d.feed(in);
  EXPECT_FALSE(d.session->wants_read());
  d.flush();
  const auto frames = split_frames(d.out);
  ASSERT_EQ(frames.size(), 6u);
  EXPECT_EQ(frames[0].type, 0x01);
  EXPECT_EQ(frames[1].type, 0x02);
  EXPECT_EQ(frames[2].payload.size(), 3u);
  EXPECT_EQ(frames[3].payload.size(), 1u);
  EXPECT_EQ(frames[4].payload.size(), 0u);  // FETCH end
  EXPECT_EQ(frames[5].type, 0xFF);
  EXPECT_EQ(frames[5].payload[0], 0x02);
  EXPECT_TRUE(d.session->finished());
  EXPECT_EQ(count(d.counters.frames[1]), 1u);
}

TEST(SessionTest, OversizeHeaderDecidedAtOnceWithoutBuffering) {
  Driver d;
  d.env.limits.max_frame = 1024;  // the session reads limits through env
  d.session->on_bytes(header(0x02, 60000), d.now);
  EXPECT_FALSE(d.session->wants_read());
  EXPECT_TRUE(d.session->has_output());
  EXPECT_EQ(d.pool.outstanding(), 1u);  // the output block with the ERROR; no input kept
  d.flush();
  const auto frames = split_frames(d.out);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload[0], 0x01);
  EXPECT_TRUE(d.session->finished());
  EXPECT_EQ(d.pool.outstanding(), 0u);
}

TEST(SessionTest, HeaderDecisionsSplitAcrossReads) {
  SessionLimits l;
  l.max_frame = 100;
  Driver d(l);
  const Bytes h = header(0x03, 101);
  d.session->on_bytes({h.data(), 1}, d.now);
  d.session->on_bytes({h.data() + 1, 1}, d.now);
  EXPECT_FALSE(d.session->has_output());
  EXPECT_TRUE(d.session->request_in_flight());
  d.session->on_bytes({h.data() + 2, 1}, d.now);
  EXPECT_TRUE(d.session->has_output());
  d.flush();
  EXPECT_EQ(split_frames(d.out).back().payload[0], 0x01);
}

TEST(SessionTest, Overloaded) {
  Driver d;
  d.session->refuse_overloaded(d.now);
  EXPECT_FALSE(d.session->wants_read());
  EXPECT_FALSE(d.session->finished());
  d.flush();
  const auto frames = split_frames(d.out);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, 0xFF);
  EXPECT_EQ(frames[0].payload[0], 0x06);
  EXPECT_TRUE(d.session->finished());
  EXPECT_EQ(d.session->close_cause(), CloseCause::kOverloaded);
  EXPECT_EQ(count(d.counters.protocol_errors[6]), 1u);
  EXPECT_EQ(count(d.counters.overloaded_total), 1u);
}

// --- STREAM / CHUNK ---------------------------------------------------------------------

TEST(SessionTest, StreamExactChunksShortLastAndInterleaving) {
  Driver d;
  const Bytes echo = frame(FrameType::kEcho, pattern(7));
  const Bytes in =
      cat({frame(FrameType::kStream, spec(12, 4)), frame(FrameType::kChunk, pattern(4)),
           frame(FrameType::kPing), frame(FrameType::kChunk, pattern(4)), echo,
           frame(FrameType::kSink, pattern(9)), frame(FrameType::kChunk, pattern(4)),
           // a new stream may open once the last chunk was acknowledged
           frame(FrameType::kStream, spec(5, 3)), frame(FrameType::kChunk, pattern(3)),
           frame(FrameType::kChunk, pattern(2)), frame(FrameType::kStream, spec(0, 1)),
           frame(FrameType::kStream, spec(1, 65535)), frame(FrameType::kChunk, pattern(1))});
  const Bytes want =
      cat({frame(0x04), frame(0x05), frame(0x01), frame(0x05), echo, frame(0x03), frame(0x05),
           frame(0x04), frame(0x05), frame(0x05), frame(0x04), frame(0x04), frame(0x05)});
  EXPECT_EQ(d.roundtrip(in), want);
  EXPECT_FALSE(d.session->finished());
  EXPECT_EQ(count(d.counters.frames[4]), 4u);
  EXPECT_EQ(count(d.counters.frames[5]), 6u);
}

TEST(SessionTest, LargeStreamIsNeverBuffered) {
  Driver d;
  Bytes in = frame(FrameType::kStream, spec(1 << 20, 65535));
  d.feed(in);
  d.flush();
  uint64_t left = 1 << 20;
  const Bytes chunk = pattern(65535);
  size_t acks = 0;
  while (left != 0) {
    const size_t k = std::min<uint64_t>(left, 65535);
    Bytes f = frame(FrameType::kChunk, Bytes(chunk.begin(), chunk.begin() + k));
    // Deliver the chunk in small pieces: between them nothing is held.
    for (size_t i = 0; i < f.size(); i += 1000) {
      d.session->on_bytes({f.data() + i, std::min<size_t>(1000, f.size() - i)}, d.now);
      if (i >= 3 && i + 1000 < f.size()) {
        EXPECT_EQ(d.pool.outstanding(), 0u);
      }
    }
    d.flush();
    ++acks;
    left -= k;
  }
  EXPECT_EQ(split_frames(d.out).size(), 1 + acks);
  EXPECT_EQ(d.pool.outstanding(), 0u);
}

// --- FETCH --------------------------------------------------------------------------------

TEST(SessionTest, FetchPatternZeroAndShortLast) {
  Driver d;
  const Bytes in =
      cat({frame(FrameType::kFetch, spec(0, 10)), frame(FrameType::kFetch, spec(1000, 300)),
           frame(FrameType::kFetch, spec(600, 300))});
  EXPECT_EQ(d.roundtrip(in),
            cat({fetch_reply(0, 10), fetch_reply(1000, 300), fetch_reply(600, 300)}));
}

TEST(SessionTest, FetchContentCountsFromZeroEachTime) {
  Driver d;
  const auto src = make_pattern_source();
  d.env.content = src.get();
  const Bytes in =
      cat({frame(FrameType::kFetch, spec(300, 65535)), frame(FrameType::kFetch, spec(300, 7))});
  EXPECT_EQ(d.roundtrip(in), cat({fetch_reply(300, 65535), fetch_reply(300, 7)}));
}

TEST(SessionTest, RequestsBehindFetchWaitForItsEnd) {
  SessionLimits l;
  l.write_queue = 1000;
  Driver d(l);
  const Bytes in =
      cat({frame(FrameType::kFetch, spec(100000, 500)), frame(FrameType::kPing),
           frame(FrameType::kEcho, pattern(20)), frame(FrameType::kFetch, spec(10, 3))});
  d.session->on_bytes(in, d.now);
  EXPECT_FALSE(d.session->wants_read());
  EXPECT_LE(d.session->queued_bytes(), 1000u + 503u);
  const Bytes want = cat({fetch_reply(100000, 500), frame(FrameType::kPing),
                          frame(FrameType::kEcho, pattern(20)), fetch_reply(10, 3)});
  while (d.session->has_output()) d.flush(777);
  EXPECT_EQ(d.out, want);
  EXPECT_TRUE(d.session->wants_read());
  EXPECT_EQ(d.pool.outstanding(), 0u);
}

TEST(SessionTest, FetchUnboundedQueueProducesInBatches) {
  SessionLimits l = no_timeouts();
  l.write_queue = 0;
  Driver d(l);
  d.session->on_bytes(frame(FrameType::kFetch, spec(10'000'000, 65535)), d.now);
  EXPECT_LE(d.session->queued_bytes(), 256u * 1024 + 65538);
  EXPECT_FALSE(d.session->wants_read());
  d.flush();
  const auto frames = split_frames(d.out);
  ASSERT_EQ(frames.size(), 10'000'000 / 65535 + 2);
  EXPECT_TRUE(d.session->wants_read());
}

TEST(SessionTest, FetchOfTinyChunksQueuesABoundedNumberOfFramesPerCall) {
  // Fairness: whatever the chunk, one call produces at most kProduceFrames DATA frames;
  // every write continues the FETCH, and the reply is whole and in order.
  SessionLimits l = no_timeouts();
  l.write_queue = 0;
  Driver d(l);
  const uint64_t total = 3 * kProduceFrames + 17;
  d.session->on_bytes(cat({frame(FrameType::kFetch, spec(total, 1)), frame(FrameType::kPing)}),
                      d.now);
  EXPECT_EQ(d.session->queued_bytes(), kProduceFrames * 4);
  d.flush(100);  // one on_sent(): at most kProduceFrames more
  EXPECT_EQ(d.session->queued_bytes(), kProduceFrames * 4 - 100 + kProduceFrames * 4);
  d.flush();
  EXPECT_EQ(d.out, cat({fetch_reply(total, 1), frame(FrameType::kPing)}));
}

TEST(SessionTest, FetchFromFileWraps) {
  char path[] = "/tmp/c10m_fetch_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string content = "abcdefg";
  ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  close(fd);
  const auto src = make_file_source(path);
  unlink(path);
  Bytes got(20);
  src->read(5, got);
  EXPECT_EQ(std::string(got.begin(), got.end()), "fgabcdefgabcdefgabcd");

  SessionLimits l;
  Driver d(l, src.get());
  d.roundtrip(frame(FrameType::kFetch, spec(20, 6)));
  const auto frames = split_frames(d.out);
  ASSERT_EQ(frames.size(), 5u);
  std::string all;
  for (const Frame& f : frames) all.append(f.payload.begin(), f.payload.end());
  EXPECT_EQ(all, "abcdefgabcdefgabcdef");
  EXPECT_EQ(frames[3].payload.size(), 2u);
}

TEST(SessionTest, FileSourceErrors) {
  EXPECT_THROW(make_file_source("/nonexistent/c10m/file"), std::runtime_error);
  char path[] = "/tmp/c10m_empty_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  try {
    make_file_source(path);
    ADD_FAILURE() << "empty file accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  unlink(path);
}

TEST(SessionTest, PatternSourceMatchesProtocol) {
  const auto src = make_pattern_source();
  Bytes b(1000);
  src->read(249, b);
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], proto::fetch_pattern_byte(249 + i));
}

// --- fragmentation ------------------------------------------------------------------------

/// A random valid request sequence and the exact replies it must get.
struct Script {
  Bytes in;
  Bytes want;
};

Script random_script(std::mt19937& rng, int ops, uint32_t max_payload) {
  Script s;
  auto uni = [&](uint32_t lo, uint32_t hi) {
    return std::uniform_int_distribution<uint32_t>(lo, hi)(rng);
  };
  auto simple = [&]() {
    switch (uni(0, 2)) {
      case 0:
        put_frame(s.in, 0x01, {});
        put_frame(s.want, 0x01, {});
        break;
      case 1: {
        const Bytes p = pattern(uni(0, max_payload), static_cast<uint8_t>(uni(0, 255)));
        put_frame(s.in, 0x02, p);
        put_frame(s.want, 0x02, p);
        break;
      }
      default:
        put_frame(s.in, 0x03, pattern(uni(0, max_payload)));
        put_frame(s.want, 0x03, {});
    }
  };
  for (int op = 0; op < ops; ++op) {
    const uint32_t kind = uni(0, 9);
    if (kind < 6) {
      simple();
    } else if (kind < 8) {
      const uint32_t chunk = uni(1, max_payload == 0 ? 1 : max_payload);
      const uint64_t total = uni(0, 3 * chunk + 1);
      put_frame(s.in, 0x04, spec(total, chunk));
      put_frame(s.want, 0x04, {});
      for (uint64_t left = total; left != 0;) {
        if (uni(0, 2) == 0) simple();
        const size_t k = std::min<uint64_t>(left, chunk);
        put_frame(s.in, 0x05, pattern(k));
        put_frame(s.want, 0x05, {});
        left -= k;
      }
    } else {
      const uint32_t chunk = uni(1, max_payload == 0 ? 1 : max_payload);
      const uint64_t total = uni(0, 4 * chunk + 3);
      put_frame(s.in, 0x06, spec(total, chunk));
      const Bytes r = fetch_reply(total, chunk);
      s.want.insert(s.want.end(), r.begin(), r.end());
    }
  }
  return s;
}

/// Feeds `in` cut at the given ascending offsets, the peer reading `read` bytes at a time.
Bytes run_split(const Bytes& in, const std::vector<size_t>& cuts, SessionLimits l,
                size_t read = SIZE_MAX) {
  Driver d(l);
  size_t prev = 0;
  auto deliver = [&](size_t end) {
    while (prev < end) {
      while (!d.session->wants_read()) {
        if (d.session->finished()) return;
        d.flush(read);
      }
      // The engine passes at most read_chunk bytes per call.
      const size_t k = std::min(end - prev, d.env.read_chunk);
      d.session->on_bytes({in.data() + prev, k}, d.now);
      prev += k;
    }
  };
  for (size_t c : cuts) deliver(c);
  deliver(in.size());
  d.eof();
  while (d.session->has_output()) d.flush(read);
  EXPECT_TRUE(d.session->finished());
  EXPECT_EQ(d.session->close_cause(), CloseCause::kPeerClosed);
  EXPECT_EQ(d.pool.outstanding(), 0u);
  EXPECT_EQ(d.small.outstanding(), 0u);
  EXPECT_EQ(count(d.counters.write_queue_bytes), 0u);
  return d.out;
}

TEST(SessionTest, EverySplitPointGivesTheSameReplies) {
  std::mt19937 rng(7);
  const Script s = random_script(rng, 12, 20);
  for (size_t cut = 0; cut <= s.in.size(); ++cut) {
    ASSERT_EQ(run_split(s.in, {cut}, no_timeouts()), s.want) << "cut at " << cut;
  }
}

TEST(SessionTest, EveryPairOfSplitPointsGivesTheSameReplies) {
  const Bytes in = cat({frame(FrameType::kPing), frame(FrameType::kEcho, pattern(5)),
                        frame(FrameType::kSink, pattern(4)), frame(FrameType::kStream, spec(3, 2)),
                        frame(FrameType::kChunk, pattern(2)), frame(FrameType::kChunk, pattern(1)),
                        frame(FrameType::kFetch, spec(3, 2))});
  const Bytes want = cat({frame(0x01), frame(FrameType::kEcho, pattern(5)), frame(0x03),
                          frame(0x04), frame(0x05), frame(0x05), fetch_reply(3, 2)});
  SessionLimits l = no_timeouts();
  l.write_queue = 8;  // backpressure on top of fragmentation
  for (size_t a = 0; a <= in.size(); ++a) {
    for (size_t b = a; b <= in.size(); ++b) {
      ASSERT_EQ(run_split(in, {a, b}, l, 5), want) << "cuts " << a << "," << b;
    }
  }
}

TEST(SessionTest, RandomFragmentationOfLongSequences) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 6; ++round) {
    const bool big = round % 2 == 1;
    const Script s = random_script(rng, big ? 25 : 150, big ? 3000 : 40);
    const Bytes one_shot = run_split(s.in, {}, no_timeouts());
    ASSERT_EQ(one_shot, s.want);
    for (int t = 0; t < 500; ++t) {
      std::vector<size_t> cuts;
      size_t pos = 0;
      const uint32_t maxstep = 1u << std::uniform_int_distribution<uint32_t>(0, 14)(rng);
      while (true) {
        pos += std::uniform_int_distribution<uint32_t>(1, maxstep)(rng);
        if (pos >= s.in.size()) break;
        cuts.push_back(pos);
      }
      SessionLimits l = no_timeouts();
      l.write_queue = std::uniform_int_distribution<uint32_t>(0, 4)(rng) == 0
                          ? 0
                          : std::uniform_int_distribution<uint32_t>(1, 20000)(rng);
      const size_t read = std::uniform_int_distribution<uint32_t>(1, 5000)(rng);
      ASSERT_EQ(run_split(s.in, cuts, l, read), one_shot) << "round " << round << " trial " << t;
    }
  }
}

TEST(SessionTest, ReadsLargerThanABlockAreKept) {
  // An engine passing more than a block while the session is blocked: all is consumed.
  SessionLimits l = no_timeouts();
  l.write_queue = 100;
  std::mt19937 rng(99);
  const Script s = random_script(rng, 300, 2000);
  Driver d(l);
  d.session->on_bytes(frame(FrameType::kFetch, spec(5000, 100)), d.now);
  ASSERT_FALSE(d.session->wants_read());
  d.session->on_bytes(s.in, d.now);  // against the contract, but must be safe
  while (d.session->has_output()) d.flush(333);
  EXPECT_EQ(d.out, cat({fetch_reply(5000, 100), s.want}));
  EXPECT_EQ(d.pool.outstanding(), 0u);
}

// --- backpressure -----------------------------------------------------------------------

TEST(SessionTest, TenThousandPipelinedPingsWithSmallWriteQueue) {
  SessionLimits l;
  l.write_queue = 64;
  Driver d(l);
  Bytes in;
  for (int i = 0; i < 10000; ++i)
    put_frame(in, i % 2 == 0 ? 0x01 : 0x02, i % 2 == 0 ? Bytes{} : pattern(i % 50));
  Bytes want = in;
  d.session->on_bytes(in, d.now);  // one big read: everything written before reading
  EXPECT_FALSE(d.session->wants_read());
  EXPECT_LE(d.session->queued_bytes(), 64u + 53u);
  d.flush(50);
  EXPECT_FALSE(d.session->wants_read());  // refilled from the held requests
  size_t rounds = 1;
  while (d.session->has_output()) {
    d.flush(50);
    ++rounds;
  }
  EXPECT_GT(rounds, 100u);
  EXPECT_EQ(d.out, want);
  EXPECT_TRUE(d.session->wants_read());
  EXPECT_EQ(count(d.counters.frames[1]) + count(d.counters.frames[2]), 10000u);
  EXPECT_EQ(count(d.counters.service_count), 10000u);
  EXPECT_EQ(d.pool.outstanding(), 0u);
}

TEST(SessionTest, WantsReadFollowsTheWriteQueue) {
  SessionLimits l;
  l.write_queue = 10;
  Driver d(l);
  d.session->on_bytes(frame(FrameType::kEcho, pattern(20)), d.now);
  EXPECT_FALSE(d.session->wants_read());
  d.flush(15);
  EXPECT_TRUE(d.session->wants_read());  // 8 bytes left < 10
}

// --- timeouts -----------------------------------------------------------------------------

TEST(SessionTest, IdleTimeout) {
  SessionLimits l = no_timeouts();
  l.idle_timeout = 10 * kSecond;
  Driver d(l);
  d.now = 0;
  d.session = std::make_unique<Session>(d.env, 0);
  EXPECT_EQ(d.session->next_deadline(), 10 * kSecond);
  d.now = 4 * kSecond;
  d.roundtrip(frame(FrameType::kPing));
  EXPECT_EQ(d.session->next_deadline(), 14 * kSecond);
  d.tick(14 * kSecond - 1);
  EXPECT_FALSE(d.session->has_output());
  d.tick(14 * kSecond);
  ASSERT_TRUE(d.session->has_output());
  EXPECT_FALSE(d.session->wants_read());
  d.flush();
  const auto frames = split_frames(d.out);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[1].type, 0xFF);
  EXPECT_EQ(frames[1].payload[0], 0x05);
  EXPECT_TRUE(d.session->finished());
  EXPECT_EQ(d.session->close_cause(), CloseCause::kTimeout);
  EXPECT_EQ(count(d.counters.timeouts[static_cast<size_t>(metrics::TimeoutKind::kIdle)]), 1u);
  EXPECT_EQ(count(d.counters.protocol_errors[5]), 1u);
}

TEST(SessionTest, NoIdleTimeoutWhileOutputWaits) {
  SessionLimits l = no_timeouts();
  l.idle_timeout = 10 * kSecond;
  Driver d(l);
  d.session->on_bytes(frame(FrameType::kPing), d.now);
  EXPECT_EQ(d.session->next_deadline(), kNever);
  d.tick(d.now + 100 * kSecond);
  EXPECT_FALSE(d.session->finished());
  d.flush();
  // Counted from the last byte received: already past, so it fires at the next tick.
  EXPECT_EQ(d.session->next_deadline(), 1000 + 10 * kSecond);
  d.tick(d.now);
  EXPECT_TRUE(d.session->has_output());
  EXPECT_FALSE(d.session->wants_read());
}

TEST(SessionTest, FrameTimeout) {
  SessionLimits l = no_timeouts();
  l.frame_timeout = 2 * kSecond;
  Driver d(l);
  d.now = 10 * kSecond;
  const Bytes f = frame(FrameType::kEcho, pattern(10));
  d.session->on_bytes({f.data(), 1}, d.now);
  EXPECT_EQ(d.session->next_deadline(), 12 * kSecond);
  EXPECT_TRUE(d.session->request_in_flight());
  d.now = 11 * kSecond;
  d.session->on_bytes({f.data() + 1, 5}, d.now);  // more bytes do not restart the clock
  EXPECT_EQ(d.session->next_deadline(), 12 * kSecond);
  d.tick(12 * kSecond);
  d.flush();
  const auto frames = split_frames(d.out);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload[0], 0x05);
  EXPECT_EQ(d.session->close_cause(), CloseCause::kTimeout);
  EXPECT_EQ(count(d.counters.timeouts[static_cast<size_t>(metrics::TimeoutKind::kFrame)]), 1u);
  EXPECT_EQ(d.pool.outstanding(), 0u);
}

TEST(SessionTest, FrameTimeoutRestartsWithEachFrame) {
  SessionLimits l = no_timeouts();
  l.frame_timeout = 2 * kSecond;
  Driver d(l);
  d.now = 0;
  const Bytes in = cat({frame(FrameType::kSink, pattern(10)), frame(FrameType::kPing)});
  d.session->on_bytes({in.data(), 5}, d.now);  // inside the SINK
  EXPECT_EQ(d.session->next_deadline(), 2 * kSecond);
  d.now = 1 * kSecond;
  d.session->on_bytes({in.data() + 5, 9}, d.now);  // completes SINK, 1 byte of PING
  EXPECT_EQ(d.session->next_deadline(), 3 * kSecond);
  d.now = 2 * kSecond;
  d.session->on_bytes({in.data() + 14, 2}, d.now);
  EXPECT_EQ(d.session->next_deadline(), kNever);
  d.flush();
  EXPECT_EQ(d.out, cat({frame(0x03), frame(0x01)}));
}

TEST(SessionTest, HeldCompleteFramesHaveNoFrameTimeout) {
  SessionLimits l = no_timeouts();
  l.frame_timeout = 1 * kSecond;
  l.write_queue = 1000;
  Driver d(l);
  d.session->on_bytes(cat({frame(FrameType::kFetch, spec(100000, 1000)), frame(FrameType::kPing)}),
                      d.now);
  EXPECT_EQ(d.session->next_deadline(), kNever);
  d.tick(d.now + 100 * kSecond);
  EXPECT_FALSE(d.session->finished());
  d.flush();
  EXPECT_EQ(d.out, cat({fetch_reply(100000, 1000), frame(0x01)}));
}

TEST(SessionTest, WriteTimeoutDropsSlowReader) {
  SessionLimits l = no_timeouts();
  l.write_timeout = 10 * kSecond;
  l.write_queue = 2000;
  Driver d(l);
  d.now = 0;
  d.session->on_bytes(frame(FrameType::kFetch, spec(1'000'000, 500)), d.now);
  EXPECT_EQ(d.session->next_deadline(), 10 * kSecond);
  // The peer reads everything at t=9s: new DATA frames are queued at 9s.
  d.now = 9 * kSecond;
  d.flush(d.session->queued_bytes());
  EXPECT_TRUE(d.session->has_output());
  EXPECT_EQ(d.session->next_deadline(), 19 * kSecond);
  d.tick(18 * kSecond);
  EXPECT_FALSE(d.session->finished());
  // An engine has a write of the queued bytes in flight when the timeout fires.
  iovec iov[64];
  const int n = d.session->gather(iov, 64);
  ASSERT_GT(n, 0);
  const Bytes in_flight(static_cast<const uint8_t*>(iov[0].iov_base),
                        static_cast<const uint8_t*>(iov[0].iov_base) + iov[0].iov_len);
  d.tick(19 * kSecond);
  EXPECT_TRUE(d.session->finished());
  EXPECT_EQ(d.session->close_cause(), CloseCause::kWriteTimeout);
  EXPECT_TRUE(d.session->reset_on_close());
  EXPECT_FALSE(d.session->has_output());
  EXPECT_EQ(count(d.counters.write_queue_drops), 1u);
  EXPECT_EQ(count(d.counters.timeouts[static_cast<size_t>(metrics::TimeoutKind::kWrite)]), 1u);
  EXPECT_EQ(count(d.counters.write_queue_bytes), 0u);
  // The dropped bytes stay where gather() said, unchanged, until the Session is destroyed
  // (the kernel may still be reading them); then every block goes back.
  EXPECT_EQ(Bytes(static_cast<const uint8_t*>(iov[0].iov_base),
                  static_cast<const uint8_t*>(iov[0].iov_base) + iov[0].iov_len),
            in_flight);
  d.session.reset();
  EXPECT_EQ(d.pool.outstanding(), 0u);
  // No ERROR was written, and only whole frames before the drop.
  for (const Frame& f : split_frames(d.out)) EXPECT_EQ(f.type, 0x06);
}

TEST(SessionTest, WriteTimeoutCountsTheOldestUnsentByte) {
  SessionLimits l = no_timeouts();
  l.write_timeout = 10 * kSecond;
  Driver d(l);
  d.now = 0;
  d.session->on_bytes(frame(FrameType::kPing), d.now);
  d.now = 5 * kSecond;
  d.session->on_bytes(frame(FrameType::kPing), d.now);
  d.flush(4);  // the first PONG and one byte of the second
  EXPECT_EQ(d.session->next_deadline(), 15 * kSecond);
  d.now = 16 * kSecond;
  d.session->on_sent(0, d.now);  // checked on on_sent too
  EXPECT_TRUE(d.session->finished());
  EXPECT_EQ(d.session->close_cause(), CloseCause::kWriteTimeout);
}

TEST(SessionTest, ManyBatchesMergeToTheEarlierTime) {
  SessionLimits l = no_timeouts();
  l.write_timeout = 1000 * kSecond;
  Driver d(l);
  d.now = 0;
  for (int i = 0; i < 200; ++i) {
    d.now = i * kSecond;
    d.session->on_bytes(frame(FrameType::kPing), d.now);
  }
  EXPECT_EQ(d.session->next_deadline(), 1000 * kSecond);
  d.flush(3 * 150);
  // Marks beyond the per-block capacity were merged keeping the earlier time: the deadline
  // never lies later than the true one (150s + 1000s).
  EXPECT_LE(d.session->next_deadline(), 1150 * kSecond);
  d.flush();
  EXPECT_EQ(split_frames(d.out).size(), 200u);
  EXPECT_EQ(count(d.counters.service_count), 200u);
}

TEST(SessionTest, ZeroMeansNever) {
  Driver d(no_timeouts());
  d.session->on_bytes({frame(FrameType::kPing).data(), 1}, d.now);
  EXPECT_EQ(d.session->next_deadline(), kNever);
  d.tick(kNever - 1);
  EXPECT_FALSE(d.session->finished());
}

TEST(SessionTest, ServiceTimeIsObservedWhenSent) {
  Driver d(no_timeouts());
  d.now = 0;
  d.session->on_bytes(cat({frame(FrameType::kPing), frame(FrameType::kPing)}), d.now);
  d.now = 3 * kMillisecond;
  d.flush();
  EXPECT_EQ(count(d.counters.service_count), 2u);
  EXPECT_EQ(count(d.counters.service_sum_ns), 6u * kMillisecond);
}

TEST(SessionTest, PipelinedEchoesAreObservedWithTheBlockTheirReplyEndsIn) {
  // One read of three 60,003-byte ECHOs: the first two replies and the start of the third
  // fill an output block, the third ends in the next one. A request is observed when the
  // block its reply ends in has been sent.
  SessionLimits l = no_timeouts();
  l.write_queue = 0;
  Driver d(l);
  const Bytes one = frame(FrameType::kEcho, pattern(60000));
  const Bytes in = cat({one, one, one});
  d.session->on_bytes(in, d.now);
  d.flush(in.size() - 1);  // the first block, not all of the second
  EXPECT_EQ(count(d.counters.service_count), 2u);
  d.flush();
  EXPECT_EQ(count(d.counters.service_count), 3u);
  EXPECT_EQ(d.out, in);
  EXPECT_EQ(count(d.counters.frames[static_cast<uint8_t>(FrameType::kEcho)]), 3u);
}

// --- half-close -------------------------------------------------------------------------

TEST(SessionTest, EofAfterCompleteRequests) {
  SessionLimits l;
  l.write_queue = 100;
  Driver d(l);
  const Bytes in = cat({frame(FrameType::kPing), frame(FrameType::kFetch, spec(5000, 100)),
                        frame(FrameType::kEcho, pattern(30)), frame(FrameType::kSink, pattern(3))});
  d.session->on_bytes(in, d.now);
  d.eof();
  EXPECT_FALSE(d.session->wants_read());
  EXPECT_FALSE(d.session->finished());
  while (d.session->has_output()) d.flush(64);
  EXPECT_EQ(d.out, cat({frame(0x01), fetch_reply(5000, 100), frame(FrameType::kEcho, pattern(30)),
                        frame(0x03)}));
  EXPECT_TRUE(d.session->finished());
  EXPECT_EQ(d.session->close_cause(), CloseCause::kPeerClosed);
  EXPECT_EQ(count(d.counters.truncated_frames), 0u);
}

TEST(SessionTest, EofWithNothingOwedFinishesAtOnce) {
  Driver d;
  d.eof();
  EXPECT_TRUE(d.session->finished());
  EXPECT_EQ(d.session->close_cause(), CloseCause::kPeerClosed);
}

TEST(SessionTest, EofMidFrameCountsTruncatedAndWritesOwedReplies) {
  for (const Bytes& partial :
       {Bytes{0x01}, header(0x02, 10), cat({header(0x02, 10), pattern(4)}),
        cat({header(0x03, 10), pattern(4)}), cat({header(0x06, 12), pattern(11)})}) {
    Driver d;
    d.session->on_bytes(
        cat({frame(FrameType::kPing), frame(FrameType::kEcho, pattern(3)), partial}), d.now);
    EXPECT_TRUE(d.session->request_in_flight());
    d.eof();
    d.flush();
    EXPECT_EQ(d.out, cat({frame(0x01), frame(FrameType::kEcho, pattern(3))}));
    EXPECT_TRUE(d.session->finished());
    EXPECT_EQ(d.session->close_cause(), CloseCause::kProtocolError);
    EXPECT_EQ(count(d.counters.truncated_frames), 1u);
    EXPECT_EQ(count(d.counters.protocol_errors[1]) + count(d.counters.protocol_errors[2]), 0u);
    EXPECT_EQ(d.pool.outstanding(), 0u);
  }
}

TEST(SessionTest, EofMidFrameBehindBackpressure) {
  SessionLimits l;
  l.write_queue = 10;
  Driver d(l);
  Bytes in;
  for (int i = 0; i < 20; ++i) put_frame(in, 0x01, {});
  const Bytes want = in;
  in.push_back(0x02);  // a partial frame behind the held PINGs
  d.session->on_bytes(in, d.now);
  EXPECT_TRUE(d.session->request_in_flight());
  d.eof();
  while (d.session->has_output()) d.flush(4);
  EXPECT_EQ(d.out, want);
  EXPECT_EQ(count(d.counters.truncated_frames), 1u);
  EXPECT_TRUE(d.session->finished());
}

// --- drain ----------------------------------------------------------------------------------

TEST(SessionTest, GoawayOnceAtFrameBoundaryAndKeepServing) {
  Driver d;
  const Bytes echo = frame(FrameType::kEcho, pattern(50));
  d.session->on_bytes(cat({echo, {0x01}}), d.now);
  d.session->begin_drain(d.now);
  d.session->begin_drain(d.now);
  d.session->on_bytes(Bytes{0x00, 0x00}, d.now);
  d.flush();
  EXPECT_EQ(d.out, cat({echo, frame(0xFE), frame(0x01)}));
  EXPECT_TRUE(d.session->wants_read());
  d.eof();
  EXPECT_TRUE(d.session->finished());
}

TEST(SessionTest, GoawayBetweenFetchDataFrames) {
  SessionLimits l;
  l.write_queue = 300;
  Driver d(l);
  d.session->on_bytes(cat({frame(FrameType::kFetch, spec(3000, 100)), frame(FrameType::kPing)}),
                      d.now);
  d.flush(250);
  d.session->begin_drain(d.now);
  while (d.session->has_output()) d.flush(77);
  const auto frames = split_frames(d.out);
  size_t goaway = 0, data_before = 0, data_after = 0;
  bool seen = false;
  for (const Frame& f : frames) {
    if (f.type == 0xFE) {
      ++goaway;
      seen = true;
    } else if (f.type == 0x06 && !f.payload.empty()) {
      (seen ? data_after : data_before)++;
    }
  }
  EXPECT_EQ(goaway, 1u);
  EXPECT_GT(data_before, 0u);
  EXPECT_GT(data_after, 0u);
  EXPECT_EQ(data_before + data_after, 30u);
  EXPECT_EQ(frames.back().type, 0x01);
}

TEST(SessionTest, ForceCloseAnswersWhatWasReceivedAndDropsThePartial) {
  SessionLimits l;
  l.write_queue = 200;
  Driver d(l);
  const Bytes in =
      cat({frame(FrameType::kFetch, spec(2000, 100)), frame(FrameType::kPing), header(0x02, 10)});
  d.session->on_bytes(in, d.now);
  d.session->begin_drain(d.now);
  EXPECT_TRUE(d.session->request_in_flight());
  d.session->force_close(d.now);
  EXPECT_FALSE(d.session->wants_read());
  EXPECT_TRUE(d.session->request_in_flight());
  EXPECT_FALSE(d.session->finished());
  while (d.session->has_output()) d.flush(150);
  const auto frames = split_frames(d.out);
  EXPECT_EQ(frames.back().type, 0x01);
  EXPECT_TRUE(d.session->finished());
  EXPECT_EQ(d.session->close_cause(), CloseCause::kForced);
  EXPECT_EQ(count(d.counters.drain_forced), 1u);
  EXPECT_EQ(count(d.counters.truncated_frames), 0u);
  EXPECT_EQ(d.pool.outstanding(), 0u);
}

TEST(SessionTest, ForceCloseOfAnIdleSession) {
  Driver d;
  d.roundtrip(frame(FrameType::kPing));
  EXPECT_FALSE(d.session->request_in_flight());
  d.session->force_close(d.now);
  EXPECT_TRUE(d.session->finished());
  EXPECT_FALSE(d.session->request_in_flight());
  EXPECT_EQ(d.session->close_cause(), CloseCause::kForced);
}

TEST(SessionTest, ForceCloseInsideSink) {
  Driver d;
  d.session->on_bytes(cat({header(0x03, 100), pattern(10)}), d.now);
  EXPECT_TRUE(d.session->request_in_flight());
  EXPECT_EQ(d.pool.outstanding(), 0u);  // a SINK payload is never kept
  d.session->force_close(d.now);
  EXPECT_TRUE(d.session->request_in_flight());
  EXPECT_TRUE(d.session->finished());
}

// --- memory and counters ----------------------------------------------------------------

TEST(SessionTest, IdleSessionHoldsNoBlock) {
  Driver d;
  std::mt19937 rng(3);
  for (int i = 0; i < 50; ++i) {
    const Script s = random_script(rng, 3, 5000);
    for (size_t k = 0; k < s.in.size();) {
      const size_t n = std::min<size_t>(s.in.size() - k, 1 + rng() % 3000);
      d.session->on_bytes({s.in.data() + k, n}, d.now);
      d.flush();
      k += n;
    }
    EXPECT_EQ(d.out, s.want);
    d.out.clear();
    d.flush();
    EXPECT_EQ(d.pool.outstanding(), 0u) << i;
    EXPECT_EQ(d.small.outstanding(), 0u) << i;
  }
  // A partial frame is kept: inline, in a small block, or in a big one, by its size.
  const Bytes f = frame(FrameType::kEcho, pattern(1000));
  d.session->on_bytes({f.data(), 2}, d.now);
  EXPECT_TRUE(d.session->request_in_flight());
  EXPECT_EQ(d.pool.outstanding() + d.small.outstanding(), 0u);  // inline
  d.session->on_bytes({f.data() + 2, 98}, d.now);
  EXPECT_EQ(d.pool.outstanding(), 0u);
  EXPECT_EQ(d.small.outstanding(), 1u);
  d.session->on_bytes({f.data() + 100, f.size() - 100}, d.now);
  d.flush();
  EXPECT_EQ(d.pool.outstanding() + d.small.outstanding(), 0u);
  const Bytes g = frame(FrameType::kEcho, pattern(60000));
  d.session->on_bytes({g.data(), 5000}, d.now);
  EXPECT_EQ(d.pool.outstanding(), 1u);
  EXPECT_EQ(d.small.outstanding(), 0u);
  d.session->on_bytes({g.data() + 5000, g.size() - 5000}, d.now);
  d.flush();
  EXPECT_EQ(d.pool.outstanding() + d.small.outstanding(), 0u);
  EXPECT_EQ(d.out, cat({f, g}));
}

// --- memory under slow peers (slowloris) ----------------------------------------------------

/// One thread's sessions, all sharing an env, as an engine loop would hold them.
struct Fleet {
  Fleet(size_t n, bool small_pool)
      : pool(kSessionBlockSize, true), small(kSessionSmallBlockSize, true) {
    env.pool = &pool;
    env.small_pool = small_pool ? &small : nullptr;
    env.counters = &counters;
    for (size_t i = 0; i < n; ++i) sessions.push_back(std::make_unique<Session>(env, now));
  }
  /// Pooled bytes the sessions hold, per session.
  size_t pooled_per_session() const {
    return (pool.outstanding() * pool.block_size() + small.outstanding() * small.block_size()) /
           sessions.size();
  }
  /// Reads everything session `i` queued.
  Bytes flush(size_t i) {
    Session& s = *sessions[i];
    Bytes out;
    while (s.has_output() && !s.finished()) {
      iovec iov[16];
      const int n = s.gather(iov, 16);
      size_t sent = 0;
      for (int k = 0; k < n; ++k) {
        const auto* p = static_cast<const uint8_t*>(iov[k].iov_base);
        out.insert(out.end(), p, p + iov[k].iov_len);
        sent += iov[k].iov_len;
      }
      s.on_sent(sent, now);
    }
    return out;
  }

  BufferPool pool;
  BufferPool small;
  metrics::ThreadCounters counters;
  SessionEnv env;
  Nanos now = 1000;
  std::vector<std::unique_ptr<Session>> sessions;
};

struct SlowCase {
  const char* name;
  Bytes frame;
  Bytes reply;
  size_t sent;          // bytes of `frame` each peer sends, then stalls
  size_t small_blocks;  // small blocks each session holds meanwhile
};

std::vector<SlowCase> slow_cases() {
  const Bytes echo = frame(FrameType::kEcho, pattern(1000));
  const Bytes echo4k = frame(FrameType::kEcho, pattern(kSessionSmallFrame - 3));
  return {
      {"1 byte of an ECHO header", echo, echo, 1, 0},
      {"2 bytes of a PING header", frame(FrameType::kPing), frame(FrameType::kPing), 2, 0},
      {"14 bytes of a FETCH", frame(FrameType::kFetch, spec(10, 4)), fetch_reply(10, 4), 14, 0},
      {"14 bytes of a STREAM", frame(FrameType::kStream, spec(0, 4)), frame(FrameType::kStream), 14,
       0},
      {"14 bytes of a 1000-byte ECHO", echo, echo, 14, 0},
      {"100 bytes of a 1000-byte ECHO", echo, echo, 100, 1},
      {"all but 1 byte of a 4 KiB ECHO", echo4k, echo4k, echo4k.size() - 1, 1},
  };
}

TEST(SessionTest, SlowPeersHoldNoBigBlockForShortFrames) {
  for (const SlowCase& c : slow_cases()) {
    SCOPED_TRACE(c.name);
    Fleet f(1000, /*small_pool=*/true);
    for (auto& s : f.sessions) s->on_bytes({c.frame.data(), c.sent}, f.now);
    EXPECT_EQ(f.pool.outstanding(), 0u);
    EXPECT_EQ(f.small.outstanding(), c.small_blocks * f.sessions.size());
    EXPECT_LE(f.pooled_per_session(), c.small_blocks * kSessionSmallBlockSize);
    for (auto& s : f.sessions) {
      EXPECT_TRUE(s->request_in_flight());
      EXPECT_TRUE(s->wants_read());
      EXPECT_NE(s->next_deadline(), kNever);  // the frame timeout bounds it
    }
    // The rest arrives (session i splits it at a different point): the same replies.
    const size_t rest = c.frame.size() - c.sent;
    for (size_t i = 0; i < f.sessions.size(); ++i) {
      const size_t cut = c.sent + i % (rest + 1);
      f.sessions[i]->on_bytes({c.frame.data() + c.sent, cut - c.sent}, f.now);
      f.sessions[i]->on_bytes({c.frame.data() + cut, c.frame.size() - cut}, f.now);
      ASSERT_EQ(f.flush(i), c.reply) << "session " << i;
      EXPECT_FALSE(f.sessions[i]->request_in_flight());
    }
    EXPECT_EQ(count(f.counters.frames[c.frame[0]]), f.sessions.size());
    EXPECT_EQ(f.pool.outstanding() + f.small.outstanding(), 0u);
  }
}

TEST(SessionTest, WithoutASmallPoolOnlyTheInlineCasesAvoidBigBlocks) {
  for (const SlowCase& c : slow_cases()) {
    SCOPED_TRACE(c.name);
    Fleet f(10, /*small_pool=*/false);
    for (auto& s : f.sessions) s->on_bytes({c.frame.data(), c.sent}, f.now);
    EXPECT_EQ(f.pool.outstanding(), c.small_blocks * f.sessions.size());
    EXPECT_EQ(f.small.outstanding(), 0u);
    for (size_t i = 0; i < f.sessions.size(); ++i) {
      f.sessions[i]->on_bytes({c.frame.data() + c.sent, c.frame.size() - c.sent}, f.now);
      ASSERT_EQ(f.flush(i), c.reply);
    }
    EXPECT_EQ(f.pool.outstanding(), 0u);
  }
}

TEST(SessionTest, LargePartialEchoTakesABigBlock) {
  Fleet f(10, /*small_pool=*/true);
  const Bytes echo = frame(FrameType::kEcho, pattern(20000));
  for (auto& s : f.sessions) s->on_bytes({echo.data(), 100}, f.now);  // the header says 20003
  EXPECT_EQ(f.pool.outstanding(), 10u);
  EXPECT_EQ(f.small.outstanding(), 0u);
  for (size_t i = 0; i < f.sessions.size(); ++i) {
    f.sessions[i]->on_bytes({echo.data() + 100, echo.size() - 100}, f.now);
    EXPECT_EQ(f.flush(i), echo);
  }
  EXPECT_EQ(f.pool.outstanding() + f.small.outstanding(), 0u);
}

TEST(SessionTest, EverySplitPointOfEachFrameSize) {
  std::vector<Bytes> frames = {frame(FrameType::kPing), frame(FrameType::kStream, spec(3, 2)),
                               frame(FrameType::kFetch, spec(5, 2)),
                               frame(FrameType::kSink, pattern(20))};
  for (size_t len : {size_t{0}, size_t{1}, size_t{11}, size_t{12}, size_t{13}, size_t{100},
                     kSessionSmallFrame - 4, kSessionSmallFrame - 3, kSessionSmallFrame - 2,
                     kSessionSmallBlockSize, size_t{65535}}) {
    frames.push_back(frame(FrameType::kEcho, pattern(len, static_cast<uint8_t>(len))));
  }
  const Bytes ping = frame(FrameType::kPing);
  for (bool small_pool : {true, false}) {
    for (const Bytes& fr : frames) {
      const Bytes want = run_split(fr, {}, no_timeouts());
      // Every cut of small frames; around the ends and a sample in between for big ones.
      for (size_t a = 0; a <= fr.size(); a += (a < 40 || fr.size() - a < 40) ? 1 : 997) {
        Driver d(no_timeouts());
        if (!small_pool) d.env.small_pool = nullptr;
        d.feed({fr.begin(), fr.begin() + static_cast<ptrdiff_t>(a)});
        d.feed({fr.begin() + static_cast<ptrdiff_t>(a), fr.end()});
        d.feed(ping);  // and the next frame after it
        d.flush();
        ASSERT_EQ(d.out, cat({want, ping}))
            << "size " << fr.size() << " cut " << a << " small " << small_pool;
        ASSERT_EQ(d.pool.outstanding() + d.small.outstanding(), 0u);
      }
    }
  }
  // Every pair of cuts through two pipelined short frames.
  const Bytes two =
      cat({frame(FrameType::kEcho, pattern(13)), frame(FrameType::kFetch, spec(3, 2))});
  const Bytes want = cat({frame(FrameType::kEcho, pattern(13)), fetch_reply(3, 2)});
  for (size_t a = 0; a <= two.size(); ++a) {
    for (size_t b = a; b <= two.size(); ++b)
      ASSERT_EQ(run_split(two, {a, b}, no_timeouts()), want) << a << "," << b;
  }
}

// read_lowat(): after every byte of a pipelined sequence, exactly what the frame being
// received still misses (the rest of its header first), and 1 at a frame boundary.
TEST(SessionTest, ReadLowatIsWhatThePartialFrameMisses) {
  const std::vector<Bytes> frames = {frame(FrameType::kPing), frame(FrameType::kEcho, pattern(13)),
                                     frame(FrameType::kEcho, pattern(20000)),
                                     frame(FrameType::kEcho, pattern(kSessionSmallFrame))};
  for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}}) {
    Driver d(no_timeouts());
    EXPECT_EQ(d.session->read_lowat(), 1u);
    for (const Bytes& fr : frames) {
      for (size_t at = 0; at < fr.size();) {
        const size_t k = std::min(piece, fr.size() - at);
        ASSERT_TRUE(d.feed({fr.begin() + static_cast<ptrdiff_t>(at),
                            fr.begin() + static_cast<ptrdiff_t>(at + k)}));
        at += k;
        d.flush();
        const size_t want = at == fr.size() ? 1 : at < 3 ? 3 - at : fr.size() - at;
        ASSERT_EQ(d.session->read_lowat(), want) << "frame " << fr.size() << " at " << at;
      }
    }
  }
  // A whole frame and the start of the next in one read: the next one's need.
  Driver d(no_timeouts());
  const Bytes echo = frame(FrameType::kEcho, pattern(100));
  d.session->on_bytes(cat({frame(FrameType::kPing), Bytes(echo.begin(), echo.begin() + 40)}),
                      d.now);
  EXPECT_EQ(d.session->read_lowat(), echo.size() - 40);
  // Not reading (the write queue is full): 1, whatever is held.
  SessionLimits l = no_timeouts();
  l.write_queue = 1;
  Driver b(l);
  b.session->on_bytes(cat({frame(FrameType::kPing), Bytes(echo.begin(), echo.begin() + 40)}),
                      b.now);
  EXPECT_FALSE(b.session->wants_read());
  EXPECT_EQ(b.session->read_lowat(), 1u);
  b.flush();
  EXPECT_EQ(b.session->read_lowat(), echo.size() - 40);
}

TEST(SessionTest, ShortPartialHeldBehindBackpressureIsExaminedWhenUnblocked) {
  SessionLimits l = no_timeouts();
  l.write_queue = 1;
  Driver d(l);
  // The PING reply blocks the session; the bad PING header behind it is kept inline.
  d.session->on_bytes(cat({frame(FrameType::kPing), header(0x01, 5)}), d.now);
  EXPECT_FALSE(d.session->wants_read());
  EXPECT_EQ(d.small.outstanding(), 0u);
  d.flush();
  EXPECT_TRUE(d.session->finished());
  const auto frames = split_frames(d.out);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[1].type, 0xFF);
  EXPECT_EQ(frames[1].payload[0], 0x03);  // BAD_LENGTH, as when it arrives unblocked
}

TEST(SessionTest, HeldSmallBlockGrowsAndCompacts) {
  SessionLimits l = no_timeouts();
  l.write_queue = 1;  // every reply blocks: what follows it is held
  for (size_t echo_len : {size_t{2000}, size_t{6000}}) {
    Driver d(l);
    Bytes pings;
    for (int i = 0; i < 1000; ++i) pings = cat({pings, frame(FrameType::kPing)});
    const Bytes echo = frame(FrameType::kEcho, pattern(echo_len));
    const Bytes head = cat({pings, Bytes(echo.begin(), echo.begin() + 100)});
    d.session->on_bytes(head, d.now);
    EXPECT_EQ(d.small.outstanding(), 1u);  // the PINGs behind the first and the ECHO's start
    d.flush();
    EXPECT_TRUE(d.session->wants_read());
    // All but the last byte: compacted in the small block (2000) or moved to a big one.
    d.feed({echo.begin() + 100, echo.end() - 1});
    EXPECT_EQ(d.small.outstanding(), echo_len == 2000 ? 1u : 0u);
    EXPECT_EQ(d.pool.outstanding(), echo_len == 2000 ? 0u : 1u);
    d.feed({echo.end() - 1, echo.end()});
    d.flush();
    EXPECT_EQ(d.out, cat({pings, echo})) << echo_len;
    EXPECT_EQ(d.pool.outstanding() + d.small.outstanding(), 0u);
  }
}

TEST(SessionTest, DestroyWithQueuedOutputReturnsEverything) {
  Driver d;
  d.session->on_bytes(cat({frame(FrameType::kFetch, spec(1'000'000, 60000)), header(0x02, 5)}),
                      d.now);
  EXPECT_GT(d.pool.outstanding(), 0u);
  EXPECT_GT(count(d.counters.write_queue_bytes), 0u);
  d.session.reset();
  EXPECT_EQ(d.pool.outstanding(), 0u);
  EXPECT_EQ(count(d.counters.write_queue_bytes), 0u);
}

TEST(SessionTest, CountersEqualTheTraffic) {
  std::mt19937 rng(5);
  const Script s = random_script(rng, 200, 1000);
  Driver d;
  d.roundtrip(s.in, 999);
  d.eof();
  EXPECT_EQ(d.out, s.want);
  EXPECT_EQ(count(d.counters.bytes_in), s.in.size());
  EXPECT_EQ(count(d.counters.bytes_out), s.want.size());
  uint64_t requests = 0;
  size_t i = 0;
  std::vector<uint64_t> by_type(7);
  while (i < s.in.size()) {
    const auto h = proto::parse_header(&s.in[i]);
    ++by_type[h.type];
    ++requests;
    i += 3 + h.length;
  }
  for (int t = 1; t <= 6; ++t) EXPECT_EQ(count(d.counters.frames[t]), by_type[t]) << t;
  EXPECT_EQ(count(d.counters.service_count), requests);
  EXPECT_EQ(count(d.counters.write_queue_bytes), 0u);
  for (int c = 1; c <= 6; ++c) EXPECT_EQ(count(d.counters.protocol_errors[c]), 0u);
}

TEST(SessionTest, WorksWithoutCountersAndWithoutPooling) {
  Driver d(SessionLimits{}, nullptr, /*pool_on=*/false);
  d.env.counters = nullptr;
  std::mt19937 rng(11);
  const Script s = random_script(rng, 50, 3000);
  d.roundtrip(s.in, 100);
  EXPECT_EQ(d.out, s.want);
  d.session->begin_drain(d.now);
  d.session->force_close(d.now);
  d.flush();
  EXPECT_TRUE(d.session->finished());
  EXPECT_EQ(d.pool.cached(), 0u);
}

// --- the write timeout as a minimum read rate -------------------------------------------------

/// A reader that takes `piece` bytes every `piece / rate` seconds from an endless FETCH.
/// Returns true if the session dropped it for the write timeout within 20 s.
bool slow_reader_dropped(size_t write_queue, Nanos write_timeout, double rate, size_t piece) {
  SessionLimits l = no_timeouts();
  l.write_queue = write_queue;
  l.write_timeout = write_timeout;
  Driver d(l);
  // Frames of exactly `piece` bytes: one frame read, one frame queued, per step.
  d.session->on_bytes(
      frame(FrameType::kFetch, spec(uint64_t{1} << 40, static_cast<uint32_t>(piece - 3))), d.now);
  const auto dt = static_cast<Nanos>(static_cast<double>(piece) / rate * kSecond);
  const Nanos end = d.now + 20 * kSecond;
  while (d.now < end && !d.session->finished()) {
    d.now += dt;
    if (d.now >= d.session->next_deadline()) d.session->on_tick(d.now);
    if (d.session->finished()) break;
    d.flush(piece);
  }
  return d.session->finished() && d.session->close_cause() == CloseCause::kWriteTimeout;
}

// docs/PROTOCOL.md: a reader must sustain R_min = --write-queue / --write-timeout; the
// marks make it blame a byte for at most ~4 KiB of extra reading, so one at
// (--write-queue + 4 KiB) / --write-timeout is always served. Read sizes from 512 B
// (many write batches per block: marks are merged) to 8 KiB.
TEST(SessionTest, ReaderJustBelowTheMinimumReadRateIsDropped) {
  for (const size_t piece : {512, 1024, 4096, 8192}) {
    const size_t q = 64 * 1024;
    EXPECT_TRUE(slow_reader_dropped(q, kSecond, 0.97 * q, piece)) << piece;
    EXPECT_TRUE(slow_reader_dropped(256 * 1024, 10 * kSecond, 0.97 * 256 * 1024 / 10, piece))
        << piece;
  }
}

TEST(SessionTest, ReaderJustAboveTheMinimumReadRateIsServed) {
  for (const size_t piece : {512, 1024, 4096, 8192}) {
    const size_t q = 64 * 1024;
    EXPECT_FALSE(slow_reader_dropped(q, kSecond, 1.03 * (q + 4096), piece)) << piece;
    EXPECT_FALSE(
        slow_reader_dropped(256 * 1024, 10 * kSecond, 1.03 * (256 * 1024 + 4096) / 10, piece))
        << piece;
  }
}

// --- memory budget ---------------------------------------------------------------------------

TEST(MemoryBudgetTest, LevelsBeginAtTheirPercentages) {
  MemoryBudget b(1000, BudgetLevels{50, 70, 85});
  EXPECT_EQ(b.pressure_for(0), Pressure::kNone);
  EXPECT_EQ(b.pressure_for(499), Pressure::kNone);
  EXPECT_EQ(b.pressure_for(500), Pressure::kPause);
  EXPECT_EQ(b.pressure_for(700), Pressure::kShrink);
  EXPECT_EQ(b.pressure_for(850), Pressure::kStopAccept);
  EXPECT_EQ(b.pressure_for(999), Pressure::kStopAccept);
  EXPECT_EQ(b.pressure_for(1000), Pressure::kShed);
  EXPECT_EQ(b.shed_resume(), 950u);
  MemoryBudget none(0);
  EXPECT_EQ(none.pressure_for(uint64_t{1} << 60), Pressure::kNone);
}

TEST(MemoryBudgetTest, ParsesLevels) {
  BudgetLevels l;
  EXPECT_EQ(parse_budget_levels("40,60,90", &l), "");
  EXPECT_EQ(l.pause, 40u);
  EXPECT_EQ(l.shrink, 60u);
  EXPECT_EQ(l.stop_accept, 90u);
  EXPECT_NE(parse_budget_levels("60,40,90", &l), "");
  EXPECT_NE(parse_budget_levels("40,60", &l), "");
  EXPECT_NE(parse_budget_levels("40,60,100", &l), "");
  EXPECT_NE(parse_budget_levels("a,b,c", &l), "");
}

TEST(MemoryBudgetTest, AccountsReserveWholeChunks) {
  MemoryBudget b(100 << 20);
  metrics::ThreadCounters counters;
  {
    BudgetAccount a(&b, 1 << 20, &counters);
    a.charge(100 * 1024);
    EXPECT_EQ(b.used(), 1u << 20);
    a.charge(1 << 20);
    EXPECT_EQ(b.used(), 2u << 20);
    EXPECT_EQ(counters.memory_budget_bytes.load(), (1u << 20) + 100 * 1024);
    a.credit(1 << 20);
    EXPECT_EQ(b.used(), 2u << 20);  // one chunk of headroom: no ping-pong
    a.credit(100 * 1024);
    EXPECT_EQ(a.held(), 0u);
    EXPECT_EQ(counters.memory_budget_bytes.load(), 0u);
  }
  EXPECT_EQ(b.used(), 0u);  // the account gave its reservation back
  BudgetAccount exact(&b, 0, nullptr);
  exact.charge(5);
  EXPECT_EQ(b.used(), 5u);
  exact.credit(5);
  EXPECT_EQ(b.used(), 0u);
}

/// A session whose blocks are charged to `account`.
struct BudgetDriver : Driver {
  BudgetDriver(BudgetAccount* account, SessionLimits l = no_timeouts()) : Driver(l) {
    env.account = account;
    session = std::make_unique<Session>(env, now);
  }
};

size_t action(const metrics::ThreadCounters& c, metrics::OverloadAction a) {
  return c.overload_actions[static_cast<size_t>(a)].load();
}

TEST(SessionBudgetTest, SessionChargesExactlyTheBlocksItHolds) {
  MemoryBudget b(0);
  BudgetAccount a(&b, 0, nullptr);
  {
    BudgetDriver d(&a);
    d.session->on_bytes(frame(FrameType::kFetch, spec(1 << 20, 1000)), d.now);
    EXPECT_GT(a.held(), 0u);
    EXPECT_EQ(a.held(), d.session->memory_held());
    d.session->on_bytes(Bytes{0x02, 0x10}, d.now);  // held input behind the FETCH
    EXPECT_EQ(a.held(), d.session->memory_held());
    d.flush(100000);
    EXPECT_EQ(a.held(), d.session->memory_held());
  }
  EXPECT_EQ(a.held(), 0u);
  EXPECT_EQ(b.used(), 0u);
}

TEST(SessionBudgetTest, UnderPressureAConnectionHoldingMoreThanThePressureQueueIsPaused) {
  MemoryBudget b(100 << 20, BudgetLevels{50, 70, 85});
  BudgetAccount others(&b, 0, nullptr);
  BudgetAccount a(&b, 0, nullptr);
  SessionLimits l = no_timeouts();  // write queue 256 KiB: pressure queue 32 KiB
  BudgetDriver d(&a, l);
  others.charge(60 << 20);  // the budget is at 60%: kPause
  a.refresh();
  d.session->on_bytes(frame(FrameType::kFetch, spec(1 << 30, 4000)), d.now);
  EXPECT_LE(d.session->queued_bytes(), pressure_queue(l.write_queue) + 4003);
  EXPECT_GE(d.session->queued_bytes(), pressure_queue(l.write_queue));
  EXPECT_EQ(action(d.counters, metrics::OverloadAction::kPauseRead), 1u);
  EXPECT_EQ(action(d.counters, metrics::OverloadAction::kShrinkQueue), 0u);
  // Pressure gone: it is fed up to the whole queue again.
  others.credit(60 << 20);
  a.refresh();
  d.flush(8000);
  EXPECT_GT(d.session->queued_bytes(), 200u * 1024);
}

TEST(SessionBudgetTest, AConnectionAcceptedUnderShrinkKeepsThePressureQueue) {
  MemoryBudget b(100 << 20, BudgetLevels{50, 70, 85});
  BudgetAccount others(&b, 0, nullptr);
  BudgetAccount a(&b, 0, nullptr);
  others.charge(75 << 20);  // kShrink
  a.refresh();
  BudgetDriver d(&a);
  EXPECT_EQ(action(d.counters, metrics::OverloadAction::kShrinkQueue), 1u);
  others.credit(75 << 20);
  a.refresh();  // no pressure any more, but this connection keeps its small queue
  d.session->on_bytes(frame(FrameType::kFetch, spec(1 << 30, 4000)), d.now);
  EXPECT_LE(d.session->queued_bytes(), pressure_queue(256 * 1024) + 4003);
  d.flush(100000);
  EXPECT_LE(d.session->queued_bytes(), pressure_queue(256 * 1024) + 4003);
}

TEST(SessionBudgetTest, ShedWithOutputQueuedDropsItAndResets) {
  MemoryBudget b(0);
  BudgetAccount a(&b, 0, nullptr);
  BudgetDriver d(&a);
  d.session->on_bytes(frame(FrameType::kFetch, spec(1 << 30, 4000)), d.now);
  ASSERT_TRUE(d.session->has_output());
  d.session->shed(d.now);
  EXPECT_TRUE(d.session->finished());
  EXPECT_TRUE(d.session->reset_on_close());
  EXPECT_EQ(d.session->close_cause(), CloseCause::kShed);
  // The unsent blocks stay until the Session is destroyed (a write may be in flight).
  d.session.reset();
  EXPECT_EQ(a.held(), 0u);
  EXPECT_EQ(action(d.counters, metrics::OverloadAction::kCloseReset), 1u);
  EXPECT_EQ(count(d.counters.write_queue_bytes), 0u);
}

TEST(SessionBudgetTest, ShedWithNothingQueuedSendsOverloadedAtAFrameBoundary) {
  MemoryBudget b(0);
  BudgetAccount a(&b, 0, nullptr);
  BudgetDriver d(&a);
  d.session->on_bytes(cat({header(0x02, 1000), pattern(100)}), d.now);  // a partial ECHO
  EXPECT_GT(a.held(), 0u);
  d.session->shed(d.now);
  EXPECT_FALSE(d.session->wants_read());
  d.flush();
  EXPECT_TRUE(d.session->finished());
  EXPECT_FALSE(d.session->reset_on_close());
  const auto frames = split_frames(d.out);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, 0xFF);
  EXPECT_EQ(frames[0].payload[0], static_cast<uint8_t>(proto::ErrorCode::kOverloaded));
  EXPECT_EQ(a.held(), 0u);
  EXPECT_EQ(action(d.counters, metrics::OverloadAction::kCloseError), 1u);
}

// Shedding goes by Session::shed_rank, larger first: a reply still being sent (one block,
// a few bytes) ranks below a peer that leaves the same block unread.
TEST(SessionBudgetTest, ShedRankPutsAnUnreadQueueBeforeAReplyInFlight) {
  MemoryBudget b(0);
  BudgetAccount a(&b, 0, nullptr);
  BudgetDriver answering(&a), unread(&a);
  answering.session->on_bytes(frame(FrameType::kPing), answering.now);
  unread.session->on_bytes(frame(FrameType::kEcho, pattern(1000)), unread.now);
  ASSERT_TRUE(answering.session->has_output());
  ASSERT_TRUE(unread.session->has_output());
  EXPECT_EQ(answering.session->shed_rank().first, unread.session->shed_rank().first);
  EXPECT_LT(answering.session->shed_rank(), unread.session->shed_rank());
  answering.flush();
  EXPECT_EQ(answering.session->shed_rank().first, 0u);  // nothing held once it is sent
}

}  // namespace
}  // namespace c10m::core
