// libFuzzer target over proto::FrameReader: any byte stream, cut anywhere, decodes to the
// same events as the stream read in one piece; payload never exceeds the header's length.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "proto/frame_reader.h"

namespace {

using c10m::proto::FrameReader;

struct Decoded {
  std::vector<uint8_t> stream;  // type, length, payload... of complete frames, re-encoded
  size_t complete = 0;
};

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "check failed: %s\n", what);
    std::abort();
  }
}

void decode(FrameReader& r, std::span<const uint8_t> in, Decoded& out, std::vector<uint8_t>& cur) {
  std::span<const uint8_t> piece;
  while (true) {
    const size_t before = in.size();
    const auto ev = r.next(in, &piece);
    switch (ev) {
      case FrameReader::Event::kNeedMore:
        check(in.empty(), "kNeedMore with input left");
        return;
      case FrameReader::Event::kHeader:
        check(before - in.size() <= 3, "header consumed payload");
        cur.clear();
        cur.push_back(r.header().type);
        cur.push_back(static_cast<uint8_t>(r.header().length >> 8));
        cur.push_back(static_cast<uint8_t>(r.header().length));
        break;
      case FrameReader::Event::kPayload:
        check(!piece.empty() && piece.size() == before - in.size(), "payload piece size");
        cur.insert(cur.end(), piece.begin(), piece.end());
        check(cur.size() <= 3u + r.header().length, "payload beyond length");
        break;
      case FrameReader::Event::kEnd:
        check(cur.size() == 3u + r.header().length, "short frame at end");
        out.stream.insert(out.stream.end(), cur.begin(), cur.end());
        ++out.complete;
        break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  const std::vector<uint8_t> stream =
      fdp.ConsumeBytes<uint8_t>(fdp.ConsumeIntegralInRange<size_t>(0, size));
  Decoded whole;
  {
    FrameReader r;
    std::vector<uint8_t> cur;
    decode(r, stream, whole, cur);
  }
  check(whole.stream.size() <= stream.size(), "decoded more than given");
  check(std::equal(whole.stream.begin(), whole.stream.end(), stream.begin()),
        "re-encoding differs");
  Decoded pieces;
  FrameReader r;
  std::vector<uint8_t> cur;
  size_t pos = 0;
  while (pos < stream.size()) {
    const size_t n = fdp.remaining_bytes() > 0
                         ? fdp.ConsumeIntegralInRange<size_t>(1, stream.size() - pos)
                         : stream.size() - pos;
    decode(r, {stream.data() + pos, n}, pieces, cur);
    pos += n;
  }
  check(pieces.stream == whole.stream && pieces.complete == whole.complete,
        "fragmentation changed the result");
  return 0;
}
