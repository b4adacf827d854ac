#pragma once
// Incremental frame splitter: turns an arbitrarily fragmented byte stream into header /
// payload-piece / end events, holding nothing but the 3 header bytes and a counter
// (16 bytes in all).
// Used by the load client to read replies; the server's Session uses the same header
// rules (frame.h) with its own buffering.
//
// Contract: `next()` consumes bytes from the front of `in` (advancing it) and returns one
// event. kHeader is returned as soon as the 3 header bytes are known, before any payload
// byte is consumed, so a caller can reject a length without buffering. kPayload returns a
// view into the caller's input (valid until the caller's buffer changes). kEnd follows the
// last payload byte (immediately after kHeader for length 0). kNeedMore: `in` is empty.
#include <cstdint>
#include <span>

#include "proto/frame.h"

namespace c10m::proto {

class FrameReader {
 public:
  enum class Event { kNeedMore, kHeader, kPayload, kEnd };

  Event next(std::span<const uint8_t>& in, std::span<const uint8_t>* piece) {
    if (state_ == State::kEnd) {
      state_ = State::kHeader;
      have_ = 0;
    }
    if (state_ == State::kHeader) {
      if (have_ == 0 && in.size() >= kHeaderSize) {  // the whole header at once (common)
        header_ = parse_header(in.data());
        in = in.subspan(kHeaderSize);
        remaining_ = header_.length;
        state_ = State::kPayload;
        return Event::kHeader;
      }
      while (have_ < kHeaderSize) {
        if (in.empty()) return Event::kNeedMore;
        hdr_[have_++] = in.front();
        in = in.subspan(1);
      }
      header_ = parse_header(hdr_);
      remaining_ = header_.length;
      state_ = State::kPayload;
      return Event::kHeader;
    }
    // kPayload
    if (remaining_ == 0) {
      state_ = State::kEnd;
      return Event::kEnd;
    }
    if (in.empty()) return Event::kNeedMore;
    const size_t n = in.size() < remaining_ ? in.size() : remaining_;
    *piece = in.first(n);
    in = in.subspan(n);
    remaining_ -= static_cast<uint32_t>(n);
    return Event::kPayload;
  }

  FrameHeader header() const { return header_; }
  uint32_t remaining() const { return remaining_; }
  /// True when some bytes of a frame were consumed but the frame is not complete.
  bool mid_frame() const {
    return state_ == State::kPayload || (state_ == State::kHeader && have_ > 0);
  }

 private:
  enum class State : uint8_t { kHeader, kPayload, kEnd };
  State state_ = State::kHeader;
  uint8_t hdr_[kHeaderSize] = {};
  uint8_t have_ = 0;  // header bytes seen (the reader is kept per client connection: 16 B)
  FrameHeader header_;
  uint32_t remaining_ = 0;
};
static_assert(sizeof(FrameReader) <= 16);

}  // namespace c10m::proto
