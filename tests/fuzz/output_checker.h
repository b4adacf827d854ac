#pragma once
// Shared by the fuzz targets: FUZZ_CHECK (abort with the failed condition, so libFuzzer
// saves the input) and the peer's view of a server's output stream.
#include <cstdio>
#include <cstdlib>
#include <span>

#include "proto/frame_reader.h"

namespace c10m::fuzz {

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

/// The peer's view of the output: frames must be well formed and ERROR must be last.
struct OutputChecker {
  proto::FrameReader reader;
  bool error_seen = false;
  int goaways = 0;

  void take(std::span<const uint8_t> bytes) {
    std::span<const uint8_t> piece;
    while (true) {
      const auto ev = reader.next(bytes, &piece);
      if (ev == proto::FrameReader::Event::kNeedMore) return;
      if (ev != proto::FrameReader::Event::kHeader) continue;
      FUZZ_CHECK(!error_seen);  // nothing follows an ERROR
      const proto::FrameHeader h = reader.header();
      switch (h.type) {
        case 0x01:
        case 0x03:
        case 0x04:
        case 0x05:
          FUZZ_CHECK(h.length == 0);
          break;
        case 0x02:
        case 0x06:
          break;
        case 0xFE:
          FUZZ_CHECK(h.length == 0);
          FUZZ_CHECK(++goaways == 1);
          break;
        case 0xFF:
          FUZZ_CHECK(h.length >= 1 && h.length <= 1 + proto::kMaxErrorReason);
          error_seen = true;
          break;
        default:
          FUZZ_CHECK(false && "unexpected reply type");
      }
    }
  }
};

}  // namespace c10m::fuzz
