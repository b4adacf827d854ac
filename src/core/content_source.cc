#include "core/content_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "proto/frame.h"

namespace c10m::core {

namespace {

class PatternSource final : public ContentSource {
 public:
  void read(uint64_t offset, std::span<uint8_t> dst) const override {
    auto v = static_cast<uint8_t>(offset % proto::kFetchModulus);
    for (uint8_t& b : dst) {
      b = v;
      v = v + 1 == proto::kFetchModulus ? 0 : static_cast<uint8_t>(v + 1);
    }
  }
};

/// The file mapped read-only for the source's lifetime.
class FileSource final : public ContentSource {
 public:
  FileSource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  ~FileSource() override { ::munmap(const_cast<uint8_t*>(data_), size_); }

  void read(uint64_t offset, std::span<uint8_t> dst) const override {
    size_t pos = static_cast<size_t>(offset % size_);
    size_t done = 0;
    while (done < dst.size()) {
      const size_t k = std::min(dst.size() - done, size_ - pos);
      std::memcpy(dst.data() + done, data_ + pos, k);
      done += k;
      pos = 0;
    }
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

[[noreturn]] void fail(const std::string& path, const char* what, int err) {
  throw std::runtime_error("--fetch-file " + path + ": " + what +
                           (err != 0 ? std::string(": ") + std::strerror(err) : ""));
}

}  // namespace

std::unique_ptr<ContentSource> make_pattern_source() { return std::make_unique<PatternSource>(); }

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
  const int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) fail(path, "cannot map", err);
  return std::make_unique<FileSource>(static_cast<const uint8_t*>(p), size);
}

}  // namespace c10m::core
