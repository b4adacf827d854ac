#include "server/worker_board.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

namespace c10m::server {
namespace {

constexpr char kBoardMagic[8] = {'C', '1', '0', 'M', 'B', 'R', 'D', '1'};

struct alignas(64) BoardHeader {
  char magic[8];
  uint64_t workers;
};

size_t board_size(size_t workers) {
  const size_t bytes = sizeof(BoardHeader) + workers * sizeof(BoardSlot);
  return (bytes + 4095) / 4096 * 4096;
}

}  // namespace

void BoardSlot::reset() {
  pid.store(0);
  state.store(static_cast<uint32_t>(WorkerState::kStarting));
  accepting.store(1);
  capacity.store(0);
  fd_limit.store(0);
  admin_port.store(0);
  drain_open_at_start.store(0);
  drain_closed_by_peer.store(0);
  drain_force_closed.store(0);
  drain_in_flight.store(0);
}

void BoardSlot::store_drain(const engine::DrainReport& r) {
  drain_open_at_start.store(r.open_at_start);
  drain_closed_by_peer.store(r.closed_by_peer);
  drain_force_closed.store(r.force_closed);
  drain_in_flight.store(r.in_flight);
  state.store(static_cast<uint32_t>(WorkerState::kDrained));  // last: the report is complete
}

engine::DrainReport BoardSlot::load_drain() const {
  engine::DrainReport r;
  r.open_at_start = drain_open_at_start.load();
  r.closed_by_peer = drain_closed_by_peer.load();
  r.force_closed = drain_force_closed.load();
  r.in_flight = drain_in_flight.load();
  return r;
}

WorkerBoard::WorkerBoard(int fd, void* base, size_t size, size_t workers)
    : fd_(fd), base_(static_cast<uint8_t*>(base)), size_(size), workers_(workers) {}

WorkerBoard::~WorkerBoard() {
  ::munmap(base_, size_);
  ::close(fd_);
}

std::unique_ptr<WorkerBoard> WorkerBoard::create(size_t workers, std::string* error) {
  if (workers == 0 || workers > 65536) {
    *error = "worker board: 1..65536 workers";
    return nullptr;
  }
  const int fd = ::memfd_create("c10m-workers", MFD_CLOEXEC);
  if (fd < 0) {
    *error = std::string("worker board: memfd_create: ") + std::strerror(errno);
    return nullptr;
  }
  const size_t size = board_size(workers);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    *error = std::string("worker board: ftruncate: ") + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    *error = std::string("worker board: mmap: ") + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  auto* bytes = static_cast<uint8_t*>(base);
  auto* h = new (bytes) BoardHeader{};
  h->workers = workers;
  std::memcpy(h->magic, kBoardMagic, sizeof kBoardMagic);
  for (size_t w = 0; w < workers; ++w) {
    auto* s = new (bytes + sizeof(BoardHeader) + w * sizeof(BoardSlot)) BoardSlot{};
    s->reset();
  }
  return std::unique_ptr<WorkerBoard>(new WorkerBoard(fd, base, size, workers));
}

std::unique_ptr<WorkerBoard> WorkerBoard::open(int fd, size_t workers, std::string* error) {
  struct stat st {};
  const size_t size = board_size(workers);
  if (::fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) != size) {
    *error = "worker board: fd " + std::to_string(fd) + " is not a board for " +
             std::to_string(workers) + " workers";
    ::close(fd);
    return nullptr;
  }
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    *error = std::string("worker board: mmap: ") + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  const auto* h = static_cast<const BoardHeader*>(base);
  if (std::memcmp(h->magic, kBoardMagic, sizeof kBoardMagic) != 0 || h->workers != workers) {
    *error = "worker board: bad header";
    ::munmap(base, size);
    ::close(fd);
    return nullptr;
  }
  // Close-on-exec again: a worker never passes the board on.
  return std::unique_ptr<WorkerBoard>(new WorkerBoard(fd, base, size, workers));
}

BoardSlot& WorkerBoard::slot(size_t w) const {
  return *reinterpret_cast<BoardSlot*>(base_ + sizeof(BoardHeader) + w * sizeof(BoardSlot));
}

}  // namespace c10m::server
