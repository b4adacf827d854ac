#pragma once
// The wire format of docs/PROTOCOL.md: pure bytes <-> frames. No I/O, no allocation.
//
// A frame is a 3-byte header (type u8, payload length u16 big-endian) and `length` bytes
// of payload. Everything here is constexpr/inline and usable by the server and the load
// client alike.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace c10m::proto {

constexpr size_t kHeaderSize = 3;
constexpr size_t kMaxPayload = 65535;
constexpr size_t kMaxFrame = kHeaderSize + kMaxPayload;
constexpr size_t kStreamPayloadSize = 12;  // STREAM and FETCH: total u64 + chunk u32
constexpr size_t kMaxErrorReason = 200;
constexpr uint8_t kFetchModulus = 251;  // default FETCH content: byte i is i mod 251

enum class FrameType : uint8_t {
  kPing = 0x01,
  kEcho = 0x02,
  kSink = 0x03,
  kStream = 0x04,
  kChunk = 0x05,
  kFetch = 0x06,
  kGoaway = 0xFE,
  kError = 0xFF,
};

enum class ErrorCode : uint8_t {
  kNone = 0x00,
  kFrameTooLarge = 0x01,
  kUnknownType = 0x02,
  kBadLength = 0x03,
  kBadStream = 0x04,
  kTimeout = 0x05,
  kOverloaded = 0x06,
};
constexpr size_t kErrorCodeCount = 7;    // index by the code's value (0 unused)
constexpr size_t kRequestTypeCount = 7;  // index by the type's value (0 unused)

struct FrameHeader {
  uint8_t type = 0;
  uint16_t length = 0;
};

inline constexpr uint16_t load_u16(const uint8_t* p) {
  return static_cast<uint16_t>((uint16_t{p[0]} << 8) | p[1]);
}
inline constexpr uint32_t load_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline constexpr uint64_t load_u64(const uint8_t* p) {
  return (uint64_t{load_u32(p)} << 32) | load_u32(p + 4);
}
inline constexpr void store_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline constexpr void store_u32(uint8_t* p, uint32_t v) {
  store_u16(p, static_cast<uint16_t>(v >> 16));
  store_u16(p + 2, static_cast<uint16_t>(v));
}
inline constexpr void store_u64(uint8_t* p, uint64_t v) {
  store_u32(p, static_cast<uint32_t>(v >> 32));
  store_u32(p + 4, static_cast<uint32_t>(v));
}

/// `p` must hold kHeaderSize bytes.
inline constexpr FrameHeader parse_header(const uint8_t* p) { return {p[0], load_u16(p + 1)}; }

/// Writes a 3-byte header to `p`.
inline constexpr void write_header(uint8_t* p, uint8_t type, uint16_t length) {
  p[0] = type;
  store_u16(p + 1, length);
}
inline constexpr void write_header(uint8_t* p, FrameType type, uint16_t length) {
  write_header(p, static_cast<uint8_t>(type), length);
}

/// True for the request types a client may send (0x01..0x06).
inline constexpr bool is_request_type(uint8_t type) { return type >= 0x01 && type <= 0x06; }

/// Validates a request header against `max_frame`, in the order the protocol fixes:
/// UNKNOWN_TYPE, FRAME_TOO_LARGE, BAD_LENGTH. (BAD_STREAM for CHUNK needs the session's
/// stream state and is decided by the caller.) Returns kNone when the header is acceptable.
inline constexpr ErrorCode check_request_header(FrameHeader h, uint32_t max_frame) {
  if (!is_request_type(h.type)) return ErrorCode::kUnknownType;
  const auto t = static_cast<FrameType>(h.type);
  const bool fixed12 = t == FrameType::kStream || t == FrameType::kFetch;
  if (!fixed12 && h.length > max_frame) return ErrorCode::kFrameTooLarge;
  if (t == FrameType::kPing && h.length != 0) return ErrorCode::kBadLength;
  if (fixed12 && h.length != kStreamPayloadSize) return ErrorCode::kBadLength;
  return ErrorCode::kNone;
}

/// STREAM / FETCH payload: total (u64 BE) then chunk (u32 BE).
struct StreamSpec {
  uint64_t total = 0;
  uint32_t chunk = 0;
};
inline constexpr StreamSpec parse_stream_spec(const uint8_t* p) {
  return {load_u64(p), load_u32(p + 8)};
}
inline constexpr void write_stream_spec(uint8_t* p, StreamSpec s) {
  store_u64(p, s.total);
  store_u32(p + 8, s.chunk);
}

/// Encodes an ERROR frame (reason truncated to kMaxErrorReason) into `out`, which must
/// hold kHeaderSize + 1 + kMaxErrorReason bytes. Returns the frame size.
inline size_t encode_error(uint8_t* out, ErrorCode code, std::string_view reason) {
  const size_t n = reason.size() < kMaxErrorReason ? reason.size() : kMaxErrorReason;
  write_header(out, FrameType::kError, static_cast<uint16_t>(1 + n));
  out[3] = static_cast<uint8_t>(code);
  for (size_t i = 0; i < n; ++i) out[4 + i] = static_cast<uint8_t>(reason[i]);
  return kHeaderSize + 1 + n;
}

/// Byte `offset` of the default FETCH content.
inline constexpr uint8_t fetch_pattern_byte(uint64_t offset) {
  return static_cast<uint8_t>(offset % kFetchModulus);
}

const char* frame_type_name(uint8_t type);    // "PING", ..., "unknown"
const char* error_code_name(ErrorCode code);  // "FRAME_TOO_LARGE", ...

}  // namespace c10m::proto
