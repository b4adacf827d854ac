#include "metrics/shm_counter_region.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace c10m::metrics {
namespace {

constexpr size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

std::string errno_text(const char* what, const std::string& path) {
  return std::string(what) + (path.empty() ? "" : " " + path) + ": " + std::strerror(errno);
}

}  // namespace

bool process_alive(pid_t pid) {
  if (pid <= 0) return false;
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

/// CounterSlots over one worker's slots inside the mapping.
class ShmCounterRegion::WorkerSlots final : public CounterSlots {
 public:
  WorkerSlots(const ShmCounterRegion* region, size_t worker) : region_(region), worker_(worker) {}
  ThreadCounters* slot(size_t index) override {
    if (index >= region_->slots_per_worker_) {
      std::fprintf(stderr, "c10m: counter slot %zu out of range (capacity %zu)\n", index,
                   region_->slots_per_worker_);
      std::abort();
    }
    return region_->block(worker_, index);
  }
  size_t capacity() const override { return region_->slots_per_worker_; }

 private:
  const ShmCounterRegion* region_;
  size_t worker_;
};

ShmCounterRegion::ShmCounterRegion(int fd, void* base, size_t size, std::string path)
    : fd_(fd), base_(static_cast<uint8_t*>(base)), size_(size), path_(std::move(path)) {
  const auto* h = reinterpret_cast<const RegionHeader*>(base_);
  workers_ = h->workers;
  slots_per_worker_ = h->slots_per_worker;
}

ShmCounterRegion::~ShmCounterRegion() {
  if (allocation_target_) {
    // Some thread may still be inside the allocation hook with a pointer into this
    // mapping: send the counts elsewhere and keep the pages (until the process exits).
    retarget_allocation_counter_away_from(base_, base_ + size_);
  } else {
    ::munmap(base_, size_);
  }
  ::close(fd_);
  if (!path_.empty()) ::unlink(path_.c_str());
}

std::unique_ptr<ShmCounterRegion> ShmCounterRegion::init_fd(int fd, std::string path,
                                                            size_t workers, size_t slots_per_worker,
                                                            std::string* error) {
  if (workers == 0 || slots_per_worker == 0 || workers > (1u << 20) ||
      slots_per_worker > (1u << 16)) {
    *error = "counter region: workers and slots per worker must be 1..2^20 and 1..2^16";
    ::close(fd);
    if (!path.empty()) ::unlink(path.c_str());
    return nullptr;
  }
  const size_t headers_off = sizeof(RegionHeader);
  const size_t slots_off = align_up(headers_off + workers * sizeof(WorkerHeader), 4096);
  const size_t total =
      align_up(slots_off + workers * slots_per_worker * sizeof(ThreadCounters), 4096);
  if (::ftruncate(fd, static_cast<off_t>(total)) != 0) {
    *error = errno_text("counter region: ftruncate", path);
    ::close(fd);
    if (!path.empty()) ::unlink(path.c_str());
    return nullptr;
  }
  void* base = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    *error = errno_text("counter region: mmap", path);
    ::close(fd);
    if (!path.empty()) ::unlink(path.c_str());
    return nullptr;
  }
  auto* bytes = static_cast<uint8_t*>(base);
  // Fresh pages are zero; construct the objects so the atomics formally exist.
  for (size_t w = 0; w < workers; ++w)
    new (bytes + headers_off + w * sizeof(WorkerHeader)) WorkerHeader{};
  for (size_t i = 0; i < workers * slots_per_worker; ++i)
    new (bytes + slots_off + i * sizeof(ThreadCounters)) ThreadCounters{};
  auto* h = new (bytes) RegionHeader{};
  h->version = kRegionVersion;
  h->workers = static_cast<uint32_t>(workers);
  h->slots_per_worker = static_cast<uint32_t>(slots_per_worker);
  h->slot_size = sizeof(ThreadCounters);
  h->worker_headers_offset = headers_off;
  h->slots_offset = slots_off;
  h->total_size = total;
  // Magic last: a reader that sees it sees a complete header.
  std::atomic_thread_fence(std::memory_order_release);
  std::memcpy(h->magic, kRegionMagic, sizeof(kRegionMagic));
  return std::unique_ptr<ShmCounterRegion>(new ShmCounterRegion(fd, base, total, std::move(path)));
}

std::unique_ptr<ShmCounterRegion> ShmCounterRegion::create_anonymous(const std::string& name,
                                                                     size_t workers,
                                                                     size_t slots_per_worker,
                                                                     std::string* error) {
  const int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) {
    *error = errno_text("counter region: memfd_create", "");
    return nullptr;
  }
  return init_fd(fd, "", workers, slots_per_worker, error);
}

std::unique_ptr<ShmCounterRegion> ShmCounterRegion::create_file(const std::string& path,
                                                                size_t workers,
                                                                size_t slots_per_worker,
                                                                std::string* error) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = errno_text("counter region: open", path);
    return nullptr;
  }
  return init_fd(fd, path, workers, slots_per_worker, error);
}

std::unique_ptr<ShmCounterRegion> ShmCounterRegion::open_file(const std::string& path,
                                                              std::string* error) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    *error = errno_text("counter region: open", path);
    return nullptr;
  }
  auto region = open_fd(fd, error);
  if (!region) *error = "counter region " + path + ": " + *error;
  return region;
}

std::unique_ptr<ShmCounterRegion> ShmCounterRegion::open_fd(int fd, std::string* error) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < sizeof(RegionHeader)) {
    *error = "too small to hold a header";
    ::close(fd);
    return nullptr;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    *error = std::string("mmap: ") + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  const auto* h = static_cast<const RegionHeader*>(base);
  std::string why;
  if (std::memcmp(h->magic, kRegionMagic, sizeof(kRegionMagic)) != 0) {
    why = "bad magic (not a c10m counter region)";
  } else if (h->version != kRegionVersion) {
    why = "version " + std::to_string(h->version) + ", expected " + std::to_string(kRegionVersion);
  } else if (h->slot_size != sizeof(ThreadCounters)) {
    why = "counter block size " + std::to_string(h->slot_size) + ", this build has " +
          std::to_string(sizeof(ThreadCounters)) + " (reader and writers must match)";
  } else if (h->workers == 0 || h->slots_per_worker == 0 || h->total_size > size ||
             h->slots_offset + uint64_t{h->workers} * h->slots_per_worker * h->slot_size >
                 h->total_size ||
             h->worker_headers_offset != sizeof(RegionHeader)) {
    why = "inconsistent sizes";
  }
  if (!why.empty()) {
    *error = why;
    ::munmap(base, size);
    ::close(fd);
    return nullptr;
  }
  return std::unique_ptr<ShmCounterRegion>(new ShmCounterRegion(fd, base, size, ""));
}

WorkerHeader* ShmCounterRegion::worker_header(size_t w) const {
  const auto* h = reinterpret_cast<const RegionHeader*>(base_);
  return reinterpret_cast<WorkerHeader*>(base_ + h->worker_headers_offset +
                                         w * sizeof(WorkerHeader));
}

ThreadCounters* ShmCounterRegion::block(size_t w, size_t s) const {
  const auto* h = reinterpret_cast<const RegionHeader*>(base_);
  return reinterpret_cast<ThreadCounters*>(base_ + h->slots_offset +
                                           (w * slots_per_worker_ + s) * sizeof(ThreadCounters));
}

int32_t ShmCounterRegion::worker_pid(size_t w) const {
  return w < workers_ ? worker_header(w)->pid.load(std::memory_order_acquire) : 0;
}

uint32_t ShmCounterRegion::attach_count(size_t w) const {
  return w < workers_ ? worker_header(w)->attach_count.load(std::memory_order_relaxed) : 0;
}

CounterSource::WorkerSample ShmCounterRegion::worker_sample(size_t w) const {
  CounterTotals t;
  const int32_t pid = worker_pid(w);
  if (pid != 0) {
    const bool live = process_alive(pid);
    for (size_t s = 0; s < slots_per_worker_; ++s) t.add(*block(w, s), live);
  }
  return {t.conns_open(), t.accept_total};
}

CounterSlots* ShmCounterRegion::attach_worker(size_t w) {
  if (w >= workers_) {
    std::fprintf(stderr, "c10m: worker %zu out of range (region has %zu)\n", w, workers_);
    std::abort();
  }
  WorkerHeader* wh = worker_header(w);
  for (size_t s = 0; s < slots_per_worker_; ++s) {
    ThreadCounters* b = block(w, s);
    // The previous holder's connections died with it: its gauges return to zero while
    // the counters (opened, closed, bytes, ...) keep counting upward.
    b->conns_closed.set(b->conns_opened.load());
    b->write_queue_bytes.set(0);
  }
  wh->attach_count.fetch_add(1, std::memory_order_relaxed);
  allocation_target_ = true;
  const AllocationHook hook = install_allocation_counter(&wh->allocations);
  wh->allocation_hook.store(static_cast<uint32_t>(hook), std::memory_order_relaxed);
  wh->pid.store(static_cast<int32_t>(::getpid()), std::memory_order_release);
  attached_.push_back(std::make_unique<WorkerSlots>(this, w));
  return attached_.back().get();
}

void ShmCounterRegion::collect(CounterTotals* out) const {
  *out = CounterTotals{};
  for (size_t w = 0; w < workers_; ++w) {
    const WorkerHeader* wh = worker_header(w);
    const int32_t pid = wh->pid.load(std::memory_order_acquire);
    if (pid == 0) continue;  // never attached: all zero
    const bool live = process_alive(pid);
    for (size_t s = 0; s < slots_per_worker_; ++s) out->add(*block(w, s), live);
    const auto hook =
        static_cast<AllocationHook>(wh->allocation_hook.load(std::memory_order_relaxed));
    if (hook != AllocationHook::kNone) {
      out->allocation_hook = hook;
      out->allocations += wh->allocations.count.load(std::memory_order_relaxed);
      out->allocation_bytes += wh->allocations.bytes.load(std::memory_order_relaxed);
    }
  }
}

std::vector<CounterSource::LoopAccepts> ShmCounterRegion::loop_accepts(size_t workers) const {
  std::vector<LoopAccepts> v;
  for (size_t w = 0; w < workers && w < workers_; ++w) {
    if (worker_header(w)->pid.load(std::memory_order_acquire) == 0) continue;
    for (size_t s = 0; s < slots_per_worker_; ++s)
      v.push_back({w, s, block(w, s)->accept_total.load()});
  }
  return v;
}

std::vector<pid_t> ShmCounterRegion::live_worker_pids() const {
  std::vector<pid_t> pids;
  for (size_t w = 0; w < workers_; ++w) {
    const int32_t pid = worker_header(w)->pid.load(std::memory_order_acquire);
    if (pid == 0 || !process_alive(pid)) continue;
    bool dup = false;
    for (pid_t p : pids) dup = dup || p == pid;
    if (!dup) pids.push_back(pid);
  }
  return pids;
}

size_t ShmCounterRegion::worker_processes() const { return live_worker_pids().size(); }

std::vector<pid_t> ShmCounterRegion::processes() const {
  std::vector<pid_t> pids = live_worker_pids();
  const pid_t self = ::getpid();
  bool self_seen = false;
  for (pid_t p : pids) self_seen = self_seen || p == self;
  if (!self_seen) pids.insert(pids.begin(), self);
  return pids;
}

}  // namespace c10m::metrics
