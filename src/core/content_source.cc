#include "core/content_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "proto/frame.h"

namespace c10m::core {

namespace {

/// table[k] = k mod 251 for k < 251 + 65535: any run of up to one maximal payload that
/// starts anywhere in the pattern is one contiguous piece of it.
constexpr size_t kPatternTableSize = proto::kFetchModulus + proto::kMaxPayload;
constexpr auto kPatternTable = [] {
  std::array<uint8_t, kPatternTableSize> t{};
  for (size_t k = 0; k < t.size(); ++k) t[k] = proto::fetch_pattern_byte(k);
  return t;
}();

class PatternSource final : public ContentSource {
 public:
  void read(uint64_t offset, std::span<uint8_t> dst) const override {
    size_t done = 0;
    while (done < dst.size()) {
      const std::span<const uint8_t> v = view(offset + done, dst.size() - done);
      std::memcpy(dst.data() + done, v.data(), v.size());
      done += v.size();
    }
  }
  std::span<const uint8_t> view(uint64_t offset, size_t max) const override {
    const size_t start = static_cast<size_t>(offset % proto::kFetchModulus);
    return {kPatternTable.data() + start, std::min(max, proto::kMaxPayload)};
  }
};

/// The file mapped read-only for the source's lifetime; its fd stays open for sendfile.
class FileSource final : public ContentSource {
 public:
  FileSource(int fd, const uint8_t* data, size_t size) : fd_(fd), data_(data), size_(size) {}
  ~FileSource() override {
    ::munmap(const_cast<uint8_t*>(data_), size_);
    ::close(fd_);
  }

  void read(uint64_t offset, std::span<uint8_t> dst) const override {
    size_t done = 0;
    while (done < dst.size()) {
      const std::span<const uint8_t> v = view(offset + done, dst.size() - done);
      std::memcpy(dst.data() + done, v.data(), v.size());
      done += v.size();
    }
  }
  std::span<const uint8_t> view(uint64_t offset, size_t max) const override {
    const size_t pos = static_cast<size_t>(offset % size_);
    return {data_ + pos, std::min(max, size_ - pos)};
  }
  int fd() const override { return fd_; }
  uint64_t wrap_size() const override { return size_; }
  uint64_t file_offset(const uint8_t* p) const override { return static_cast<uint64_t>(p - data_); }

 private:
  int fd_;
  const uint8_t* data_;
  size_t size_;
};

[[noreturn]] void fail(const std::string& path, const char* what, int err) {
  throw std::runtime_error("--fetch-file " + path + ": " + what +
                           (err != 0 ? std::string(": ") + std::strerror(err) : ""));
}

}  // namespace

std::unique_ptr<ContentSource> make_pattern_source() { return std::make_unique<PatternSource>(); }

const ContentSource& pattern_source() {
  static const PatternSource source;
  return source;
}

std::unique_ptr<ContentSource> make_file_source(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open", errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, "cannot stat", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file", 0);
  }
  if (st.st_size == 0) {
    ::close(fd);
    fail(path, "file is empty", 0);
  }
  const auto size = static_cast<size_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    fail(path, "cannot map", err);
  }
  return std::make_unique<FileSource>(fd, static_cast<const uint8_t*>(p), size);
}

}  // namespace c10m::core
