// The wire codec: FrameReader under every fragmentation, header checks and their order.
#include "proto/frame.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "proto/frame_reader.h"

namespace c10m::proto {
namespace {

using Bytes = std::vector<uint8_t>;

struct Frame {
  uint8_t type;
  Bytes payload;
  bool operator==(const Frame&) const = default;
};

Bytes encode(const std::vector<Frame>& frames) {
  Bytes b;
  for (const Frame& f : frames) {
    uint8_t h[kHeaderSize];
    write_header(h, f.type, static_cast<uint16_t>(f.payload.size()));
    b.insert(b.end(), h, h + kHeaderSize);
    b.insert(b.end(), f.payload.begin(), f.payload.end());
  }
  return b;
}

/// Decodes with one FrameReader, fed the byte ranges between consecutive cuts.
std::vector<Frame> decode(const Bytes& in, const std::vector<size_t>& cuts) {
  FrameReader r;
  std::vector<Frame> out;
  Frame cur{};
  size_t prev = 0;
  auto feed = [&](size_t end) {
    std::span<const uint8_t> s(in.data() + prev, end - prev);
    prev = end;
    std::span<const uint8_t> piece;
    while (true) {
      const auto ev = r.next(s, &piece);
      if (ev == FrameReader::Event::kNeedMore) break;
      if (ev == FrameReader::Event::kHeader) {
        cur = Frame{r.header().type, {}};
        EXPECT_EQ(r.remaining(), r.header().length);
      } else if (ev == FrameReader::Event::kPayload) {
        cur.payload.insert(cur.payload.end(), piece.begin(), piece.end());
      } else {
        EXPECT_EQ(cur.payload.size(), r.header().length);
        out.push_back(cur);
      }
    }
    EXPECT_TRUE(s.empty());
  };
  for (size_t c : cuts) feed(c);
  feed(in.size());
  // A complete sequence leaves the reader between frames (kEnd may still be pending for
  // a last frame only when its kEnd was returned; then mid_frame() is false as well).
  EXPECT_FALSE(r.mid_frame());
  return out;
}

std::vector<Frame> sample_frames() {
  return {{0x01, {}},
          {0x02, {1, 2, 3, 4, 5}},
          {0x03, Bytes(300, 0xAB)},
          {0x04, Bytes(12, 7)},
          {0x05, {9}},
          {0x06, {}},
          {0xFF, {0x05, 'h', 'i'}}};
}

TEST(FrameReaderTest, EverySplitPoint) {
  const auto frames = sample_frames();
  const Bytes in = encode(frames);
  for (size_t cut = 0; cut <= in.size(); ++cut) ASSERT_EQ(decode(in, {cut}), frames) << cut;
}

TEST(FrameReaderTest, EveryPairOfSplitPoints) {
  const std::vector<Frame> frames = {
      {0x01, {}}, {0x02, {1, 2, 3}}, {0x06, {}}, {0x03, {4, 5}}, {0x02, {6}}};
  const Bytes in = encode(frames);
  for (size_t a = 0; a <= in.size(); ++a) {
    for (size_t b = a; b <= in.size(); ++b) ASSERT_EQ(decode(in, {a, b}), frames) << a << "," << b;
  }
}

TEST(FrameReaderTest, ByteAtATime) {
  const auto frames = sample_frames();
  const Bytes in = encode(frames);
  std::vector<size_t> cuts;
  for (size_t i = 1; i < in.size(); ++i) cuts.push_back(i);
  EXPECT_EQ(decode(in, cuts), frames);
}

TEST(FrameReaderTest, SeededRandomFragmentation) {
  std::mt19937 rng(2024);
  for (int round = 0; round < 5000; ++round) {
    std::vector<Frame> frames(std::uniform_int_distribution<int>(1, 20)(rng));
    for (Frame& f : frames) {
      f.type = static_cast<uint8_t>(rng());
      const uint32_t max_len = (rng() % 40 == 0) ? 65535 : 64;
      f.payload.resize(std::uniform_int_distribution<uint32_t>(0, max_len)(rng) % (max_len + 1));
      for (uint8_t& b : f.payload) b = static_cast<uint8_t>(rng());
    }
    const Bytes in = encode(frames);
    std::vector<size_t> cuts;
    const uint32_t maxstep = 1u << std::uniform_int_distribution<uint32_t>(0, 12)(rng);
    for (size_t pos = std::uniform_int_distribution<uint32_t>(0, maxstep)(rng); pos < in.size();
         pos += std::uniform_int_distribution<uint32_t>(1, maxstep)(rng)) {
      cuts.push_back(pos);
    }
    ASSERT_EQ(decode(in, cuts), frames) << "round " << round;
  }
}

TEST(FrameReaderTest, CoalescedFramesInOneRead) {
  std::vector<Frame> frames;
  for (int i = 0; i < 10; ++i) frames.push_back({0x01, {}});
  for (int i = 0; i < 10; ++i)
    frames.push_back({0x02, Bytes(static_cast<size_t>(i), static_cast<uint8_t>(i))});
  EXPECT_EQ(decode(encode(frames), {}), frames);
}

TEST(FrameReaderTest, HeaderComesBeforeAnyPayloadByte) {
  Bytes in = {0x02, 0xFF, 0xFF, 1, 2, 3};
  FrameReader r;
  std::span<const uint8_t> s(in);
  std::span<const uint8_t> piece;
  ASSERT_EQ(r.next(s, &piece), FrameReader::Event::kHeader);
  EXPECT_EQ(s.size(), 3u);  // no payload consumed yet
  EXPECT_EQ(r.header().length, 65535);
  EXPECT_TRUE(r.mid_frame());
  ASSERT_EQ(r.next(s, &piece), FrameReader::Event::kPayload);
  EXPECT_EQ(piece.size(), 3u);
  EXPECT_EQ(r.remaining(), 65532u);
  EXPECT_EQ(r.next(s, &piece), FrameReader::Event::kNeedMore);
}

TEST(FrameReaderTest, MidFrameOnPartialHeader) {
  FrameReader r;
  Bytes in = {0x01};
  std::span<const uint8_t> s(in);
  std::span<const uint8_t> piece;
  EXPECT_FALSE(r.mid_frame());
  EXPECT_EQ(r.next(s, &piece), FrameReader::Event::kNeedMore);
  EXPECT_TRUE(r.mid_frame());
}

// --- header checks -------------------------------------------------------------------------

TEST(FrameHeaderTest, ErrorPrecedence) {
  struct Case {
    uint8_t type;
    uint16_t length;
    uint32_t max_frame;
    ErrorCode want;
  };
  const Case cases[] = {
      {0x00, 0, 65535, ErrorCode::kUnknownType},
      {0x07, 0, 65535, ErrorCode::kUnknownType},
      {0xFE, 0, 65535, ErrorCode::kUnknownType},
      {0xFF, 3, 65535, ErrorCode::kUnknownType},
      {0x07, 65535, 10, ErrorCode::kUnknownType},  // unknown beats too large
      {0x01, 11, 10, ErrorCode::kFrameTooLarge},   // too large beats bad length
      {0x02, 11, 10, ErrorCode::kFrameTooLarge},
      {0x03, 65535, 65534, ErrorCode::kFrameTooLarge},
      {0x05, 11, 10, ErrorCode::kFrameTooLarge},
      {0x02, 0, 0, ErrorCode::kNone},
      {0x02, 1, 0, ErrorCode::kFrameTooLarge},
      {0x01, 1, 65535, ErrorCode::kBadLength},
      {0x04, 11, 65535, ErrorCode::kBadLength},
      {0x04, 13, 65535, ErrorCode::kBadLength},
      {0x06, 0, 65535, ErrorCode::kBadLength},
      {0x04, 100, 5, ErrorCode::kBadLength},  // STREAM/FETCH are exempt from max-frame
      {0x04, 12, 5, ErrorCode::kNone},
      {0x06, 12, 0, ErrorCode::kNone},
      {0x01, 0, 0, ErrorCode::kNone},
      {0x02, 65535, 65535, ErrorCode::kNone},
      {0x03, 0, 65535, ErrorCode::kNone},
      {0x05, 65535, 65535, ErrorCode::kNone},  // BAD_STREAM is the session's call
  };
  for (const Case& c : cases) {
    EXPECT_EQ(check_request_header({c.type, c.length}, c.max_frame), c.want)
        << std::hex << int{c.type} << " len " << std::dec << c.length << " max " << c.max_frame;
  }
}

TEST(FrameHeaderTest, RoundTrips) {
  uint8_t b[12];
  write_header(b, FrameType::kEcho, 0xABCD);
  EXPECT_EQ(parse_header(b).type, 0x02);
  EXPECT_EQ(parse_header(b).length, 0xABCD);
  EXPECT_EQ(b[1], 0xAB);  // big-endian
  write_stream_spec(b, {0x0102030405060708ull, 0xA0B0C0D0u});
  EXPECT_EQ(b[0], 0x01);
  EXPECT_EQ(b[11], 0xD0);
  const StreamSpec s = parse_stream_spec(b);
  EXPECT_EQ(s.total, 0x0102030405060708ull);
  EXPECT_EQ(s.chunk, 0xA0B0C0D0u);
}

TEST(FrameHeaderTest, EncodeErrorTruncatesReason) {
  uint8_t b[kHeaderSize + 1 + kMaxErrorReason];
  const std::string long_reason(500, 'x');
  const size_t n = encode_error(b, ErrorCode::kTimeout, long_reason);
  EXPECT_EQ(n, kHeaderSize + 1 + kMaxErrorReason);
  EXPECT_EQ(parse_header(b).type, 0xFF);
  EXPECT_EQ(parse_header(b).length, 1 + kMaxErrorReason);
  EXPECT_EQ(b[3], 0x05);
  EXPECT_EQ(encode_error(b, ErrorCode::kBadStream, ""), kHeaderSize + 1);
}

TEST(FrameHeaderTest, Names) {
  EXPECT_STREQ(frame_type_name(0x06), "FETCH");
  EXPECT_STREQ(frame_type_name(0x42), "unknown");
  EXPECT_STREQ(error_code_name(ErrorCode::kOverloaded), "OVERLOADED");
  EXPECT_EQ(fetch_pattern_byte(250), 250);
  EXPECT_EQ(fetch_pattern_byte(251), 0);
  EXPECT_EQ(fetch_pattern_byte(1000), 1000 % 251);
}

}  // namespace
}  // namespace c10m::proto
