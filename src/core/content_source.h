#pragma once
// Where FETCH bytes come from. Immutable after construction; safe to share across threads.
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/noncopyable.h"

namespace c10m::core {

class ContentSource : NonCopyable {
 public:
  virtual ~ContentSource() = default;
  /// Fills `dst` with content bytes starting at `offset`, wrapping at the content's end.
  virtual void read(uint64_t offset, std::span<uint8_t> dst) const = 0;
};

/// Byte i is i mod 251 (the protocol's default).
std::unique_ptr<ContentSource> make_pattern_source();
/// The bytes of `path` (mapped read-only), wrapping to 0 at its end. Throws
/// std::runtime_error with a clear message if the file cannot be opened or is empty.
std::unique_ptr<ContentSource> make_file_source(const std::string& path);

}  // namespace c10m::core
