#pragma once
// Where FETCH bytes come from. Immutable after construction; safe to share across threads.
//
// Zero-copy contract: view() hands out pointers into memory that stays valid and unchanged
// for the source's lifetime (the file's read-only mapping, or one static table for the
// pattern), so a session may queue references to content instead of copies, and an engine
// may hand those pages to the kernel (writev, MSG_ZEROCOPY) without waiting for anything.
// A file source also names its fd, so that an engine can sendfile() the same bytes.
#include <cstddef>
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
  /// The longest run of content bytes starting at `offset` that is contiguous in memory,
  /// at most `max` bytes (>= 1 when max >= 1; shorter where the content wraps). Valid and
  /// unchanged for the source's lifetime.
  virtual std::span<const uint8_t> view(uint64_t offset, size_t max) const = 0;
  /// The regular file behind the content (open, read-only) or -1. When >= 0, the bytes of
  /// view(o, n) are the file's bytes at file_offset(view(o, n).data()).
  virtual int fd() const { return -1; }
  /// Offset in the file of a pointer returned by view(). Only when fd() >= 0.
  virtual uint64_t file_offset(const uint8_t* p) const {
    (void)p;
    return 0;
  }
  /// The content repeats every wrap_size() bytes and view() cuts runs only there; 0: views
  /// are never cut short (the pattern: any max <= 65535 comes back whole).
  virtual uint64_t wrap_size() const { return 0; }
};

/// The pattern source as a static object (no allocation), for sessions given no content.
const ContentSource& pattern_source();

/// Byte i is i mod 251 (the protocol's default).
std::unique_ptr<ContentSource> make_pattern_source();
/// The bytes of `path` (mapped read-only, fd kept open for sendfile), wrapping to 0 at its
/// end. Throws std::runtime_error with a clear message if the file cannot be opened or is
/// empty.
std::unique_ptr<ContentSource> make_file_source(const std::string& path);

}  // namespace c10m::core
