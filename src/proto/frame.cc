#include "proto/frame.h"

namespace c10m::proto {

const char* frame_type_name(uint8_t type) {
  switch (type) {
    case 0x01:
      return "PING";
    case 0x02:
      return "ECHO";
    case 0x03:
      return "SINK";
    case 0x04:
      return "STREAM";
    case 0x05:
      return "CHUNK";
    case 0x06:
      return "FETCH";
    case 0xFE:
      return "GOAWAY";
    case 0xFF:
      return "ERROR";
    default:
      return "unknown";
  }
}

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kNone:
      return "NONE";
    case ErrorCode::kFrameTooLarge:
      return "FRAME_TOO_LARGE";
    case ErrorCode::kUnknownType:
      return "UNKNOWN_TYPE";
    case ErrorCode::kBadLength:
      return "BAD_LENGTH";
    case ErrorCode::kBadStream:
      return "BAD_STREAM";
    case ErrorCode::kTimeout:
      return "TIMEOUT";
    case ErrorCode::kOverloaded:
      return "OVERLOADED";
  }
  return "unknown";
}

}  // namespace c10m::proto
