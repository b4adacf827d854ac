#pragma once

namespace c10m {

/// Base for types with identity (sockets, loops, sessions): no copy, no move.
class NonCopyable {
 public:
  NonCopyable(const NonCopyable&) = delete;
  NonCopyable& operator=(const NonCopyable&) = delete;

 protected:
  NonCopyable() = default;
  ~NonCopyable() = default;
};

}  // namespace c10m
