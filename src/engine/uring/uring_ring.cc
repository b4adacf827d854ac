#include "engine/uring/uring_ring.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>

#include "sys/socket.h"

namespace c10m::engine {
namespace {

// Newer than the liburing 2.3 / Linux 6.1 headers of Debian 12 (values from the kernel's
// include/uapi/linux/io_uring.h).
constexpr uint16_t kPbufRingInc = 2;         // IOU_PBUF_RING_INC (6.12)
constexpr uint32_t kSocketOpGetsockopt = 2;  // SOCKET_URING_OP_GETSOCKOPT (6.7)
constexpr uint32_t kSocketOpSetsockopt = 3;  // SOCKET_URING_OP_SETSOCKOPT (6.7)

constexpr unsigned kSetupFlags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                 IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE |
                                 IORING_SETUP_R_DISABLED;

// SO_LINGER {1, 0}: read by the kernel while the request is submitted.
const linger kLingerReset{1, 0};

/// IORING_REGISTER_ENABLE_RINGS: liburing 2.3 declares io_uring_enable_rings but Debian's
/// build does not export it, so the registration is made directly.
int enable_rings(io_uring* ring) {
  const long rc =
      ::syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
  return rc < 0 ? -errno : 0;
}

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

std::string read_sysctl(const char* path) {
  std::ifstream in(path);
  std::string v;
  in >> v;
  return v;
}

/// Fills a URING_CMD socket-option request (the kernel reads level/optname from the `addr`
/// field, optlen from `file_index`, optval from `addr3`).
void prep_sockopt(io_uring_sqe* sqe, int fd, uint32_t op, int level, int name, const void* val,
                  uint32_t len) {
  io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, nullptr, 0, 0);
  sqe->cmd_op = op;
  sqe->addr =
      (static_cast<uint64_t>(static_cast<uint32_t>(name)) << 32) | static_cast<uint32_t>(level);
  sqe->file_index = len;
  sqe->addr3 = reinterpret_cast<uint64_t>(val);
}

/// Registers `buffers` as group `bgid`; incremental when asked.
int register_buf_ring(io_uring* ring, UringBufferRing* buffers, uint16_t bgid, bool incremental) {
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(buffers->ring());
  reg.ring_entries = buffers->count();
  reg.bgid = bgid;
  reg.pad = incremental ? kPbufRingInc : 0;  // `flags` in newer headers
  return io_uring_register_buf_ring(ring, &reg, 0);
}

UringSupport probe() {
  UringSupport s;
  io_uring ring{};
  io_uring_params p{};
  p.flags = kSetupFlags;
  p.cq_entries = 16;
  int rc = io_uring_queue_init_params(4, &ring, &p);
  if (rc < 0) {
    if (rc == -ENOSYS) {
      s.error = "io_uring is not available: this kernel has no io_uring (ENOSYS)";
    } else if (rc == -EPERM) {
      const std::string v = read_sysctl("/proc/sys/kernel/io_uring_disabled");
      s.error = "io_uring is disabled for this process (kernel.io_uring_disabled = " +
                (v.empty() ? std::string("?") : v) +
                "; or a seccomp filter / container policy forbids io_uring_setup)";
    } else if (rc == -EINVAL) {
      s.error =
          "io_uring is too old here: IORING_SETUP_SINGLE_ISSUER / DEFER_TASKRUN were rejected "
          "(the uring engine needs Linux 6.7 or newer)";
    } else {
      s.error = "io_uring_setup failed: " + errno_text(rc);
    }
    return s;
  }
  const unsigned need = IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG | IORING_FEAT_FAST_POLL;
  if ((p.features & need) != need) {
    s.error = "io_uring lacks NODROP / EXT_ARG / FAST_POLL (the uring engine needs Linux 6.7+)";
    io_uring_queue_exit(&ring);
    return s;
  }
  if (io_uring_probe* pr = io_uring_get_probe_ring(&ring)) {
    const struct {
      int op;
      const char* name;
    } ops[] = {{IORING_OP_ACCEPT, "ACCEPT"},       {IORING_OP_RECV, "RECV"},
               {IORING_OP_SEND, "SEND"},           {IORING_OP_SENDMSG, "SENDMSG"},
               {IORING_OP_ASYNC_CANCEL, "CANCEL"}, {IORING_OP_CLOSE, "CLOSE"},
               {IORING_OP_POLL_ADD, "POLL_ADD"},   {IORING_OP_URING_CMD, "URING_CMD"}};
    for (const auto& o : ops) {
      if (!io_uring_opcode_supported(pr, o.op)) {
        s.error = std::string("io_uring lacks IORING_OP_") + o.name + " (needs Linux 6.7+)";
        break;
      }
    }
    s.send_zc = io_uring_opcode_supported(pr, IORING_OP_SEND_ZC) != 0;
    io_uring_free_probe(pr);
  } else {
    s.error = "io_uring opcode probe failed (IORING_REGISTER_PROBE)";
  }
  if (s.error.empty()) {
    rc = io_uring_register_files_sparse(&ring, 1);
    if (rc < 0) s.error = "io_uring sparse file table registration failed: " + errno_text(rc);
  }
  UringBufferRing bufs(1, 64, true);
  if (s.error.empty() && !bufs.error().empty()) s.error = bufs.error();
  if (s.error.empty()) {
    rc = register_buf_ring(&ring, &bufs, 0, true);
    s.incremental = rc == 0;
    if (rc < 0) rc = register_buf_ring(&ring, &bufs, 0, false);
    if (rc < 0) s.error = "io_uring provided-buffer ring registration failed: " + errno_text(rc);
  }
  if (s.error.empty()) {
    rc = enable_rings(&ring);
    if (rc < 0) s.error = "io_uring_enable_rings failed: " + errno_text(rc);
  }
  if (s.error.empty()) {
    // setsockopt through io_uring (6.7+), used for SO_LINGER on direct descriptors: ask a
    // throwaway socket for SO_TYPE.
    sys::Fd sock(sys::tcp_socket());
    int type = 0;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (!sock.valid() || sqe == nullptr) {
      s.error = "cannot create a probe socket";
    } else {
      prep_sockopt(sqe, sock.get(), kSocketOpGetsockopt, SOL_SOCKET, SO_TYPE, &type, sizeof type);
      io_uring_cqe* cqe = nullptr;
      rc = io_uring_submit_and_wait(&ring, 1);
      if (rc >= 0) rc = io_uring_peek_cqe(&ring, &cqe);
      if (rc < 0 || cqe == nullptr) {
        s.error = "io_uring submit failed in the probe: " + errno_text(rc);
      } else {
        if (cqe->res < 0)
          s.error =
              "io_uring cannot get/set socket options (IORING_OP_URING_CMD on sockets "
              "needs Linux 6.7+): " +
              errno_text(cqe->res);
        io_uring_cqe_seen(&ring, cqe);
      }
    }
  }
  io_uring_queue_exit(&ring);
  return s;
}

}  // namespace

const UringSupport& uring_support() {
  static const UringSupport s = probe();
  return s;
}

void UringStats::add(const UringStats& o) {
  enters += o.enters;
  early_submits += o.early_submits;
  cqes += o.cqes;
  sqes += o.sqes;
  recv_arms += o.recv_arms;
  recv_rearms += o.recv_rearms;
  enobufs += o.enobufs;
  recv_cancels += o.recv_cancels;
  short_sends += o.short_sends;
  zc_sends += o.zc_sends;
  cq_overflows += o.cq_overflows;
  cq_dropped += o.cq_dropped;
  accept_multishot_arms += o.accept_multishot_arms;
  accept_single_arms += o.accept_single_arms;
  accept_pauses += o.accept_pauses;
  accept_dropped += o.accept_dropped;
}

UringRing::~UringRing() {
  if (ring_ok_) io_uring_queue_exit(&ring_);
}

std::string UringRing::init(const UringOptions& opts, uint32_t fixed_files,
                            UringBufferRing* buffers) {
  io_uring_params p{};
  p.flags = kSetupFlags | IORING_SETUP_CLAMP;
  p.cq_entries = opts.cq_entries < opts.sq_entries ? opts.sq_entries : opts.cq_entries;
  int rc = io_uring_queue_init_params(opts.sq_entries, &ring_, &p);
  if (rc < 0) return "io_uring_setup: " + errno_text(rc);
  ring_ok_ = true;
  rc = io_uring_register_files_sparse(&ring_, fixed_files);
  if (rc < 0)
    return "registering " + std::to_string(fixed_files) + " direct descriptors: " + errno_text(rc);
  rc = register_buf_ring(&ring_, buffers, kBufferGroup, buffers->incremental());
  if (rc < 0) return "registering the receive buffer ring: " + errno_text(rc);
  arena_ = std::make_unique<SendMsg[]>(kArenaMsgs);
  before_wait_ = opts.before_wait;
  return "";
}

std::string UringRing::enable() {
  const int rc = enable_rings(&ring_);
  if (rc < 0) return "io_uring_enable_rings: " + errno_text(rc);
  // A registered ring fd spares io_uring_enter the fd lookup (fdget/fdput) per call.
  fd_registered_ = io_uring_register_ring_fd(&ring_) == 1;
  return "";
}

void UringRing::disable() {
  if (fd_registered_) io_uring_unregister_ring_fd(&ring_);
  fd_registered_ = false;
}

io_uring_sqe* UringRing::get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    // The submission queue is full within one turn: hand what is queued to the kernel now
    // (completions stay in the CQ for this turn's reap).
    io_uring_submit(&ring_);
    submitted();
    if (stats_ != nullptr) ++stats_->early_submits;
    sqe = io_uring_get_sqe(&ring_);
  }
  if (stats_ != nullptr) ++stats_->sqes;
  return sqe;  // never null: the queue was just emptied
}

void UringRing::submitted() { arena_used_ = 0; }

void UringRing::accept(int listen_fd, bool multishot, uint64_t ud) {
  io_uring_sqe* sqe = get_sqe();
  if (multishot) {
    io_uring_prep_multishot_accept_direct(sqe, listen_fd, nullptr, nullptr, 0);
  } else {
    io_uring_prep_accept(sqe, listen_fd, nullptr, nullptr, 0);
    // Not io_uring_prep_accept_direct: liburing 2.3 adds 1 to IORING_FILE_INDEX_ALLOC,
    // which wraps to 0 and asks for a plain fd.
    sqe->file_index = IORING_FILE_INDEX_ALLOC;
  }
  io_uring_sqe_set_data64(sqe, ud);
}

void UringRing::poll_in(int fd, uint64_t ud) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_poll_add(sqe, fd, POLLIN);
  io_uring_sqe_set_data64(sqe, ud);
}

void UringRing::poll_in_multishot(int fd, uint64_t ud) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_poll_multishot(sqe, fd, POLLIN);
  io_uring_sqe_set_data64(sqe, ud);
}

void UringRing::recv_multishot(uint32_t slot, uint16_t group, uint64_t ud) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_recv_multishot(sqe, static_cast<int>(slot), nullptr, 0, 0);
  sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
  sqe->buf_group = group;
  io_uring_sqe_set_data64(sqe, ud);
}

void UringRing::send(uint32_t slot, const iovec* iov, int cnt, bool zerocopy, uint64_t ud) {
  if (cnt > 1 && arena_used_ == kArenaMsgs) {
    io_uring_submit(&ring_);
    submitted();
    if (stats_ != nullptr) ++stats_->early_submits;
  }
  io_uring_sqe* sqe = get_sqe();
  if (cnt == 1) {
    if (zerocopy) {
      io_uring_prep_send_zc(sqe, static_cast<int>(slot), iov[0].iov_base, iov[0].iov_len,
                            MSG_NOSIGNAL, 0);
    } else {
      io_uring_prep_send(sqe, static_cast<int>(slot), iov[0].iov_base, iov[0].iov_len,
                         MSG_NOSIGNAL);
    }
  } else {
    // get_sqe() may have submitted (SQ full), which resets the arena: take the slot after.
    SendMsg& m = arena_[arena_used_++];
    if (cnt > kUringMaxSendIov) cnt = kUringMaxSendIov;
    std::memcpy(m.iov, iov, sizeof(iovec) * static_cast<size_t>(cnt));
    m.msg = msghdr{};
    m.msg.msg_iov = m.iov;
    m.msg.msg_iovlen = static_cast<size_t>(cnt);
    io_uring_prep_sendmsg(sqe, static_cast<int>(slot), &m.msg, MSG_NOSIGNAL);
  }
  sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sqe, ud);
}

void UringRing::cancel(uint64_t target, uint64_t ud) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_cancel64(sqe, target, 0);
  io_uring_sqe_set_data64(sqe, ud);
}

void UringRing::cancel_slot(uint32_t slot, uint64_t ud) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_cancel_fd(sqe, static_cast<int>(slot),
                          IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
  io_uring_sqe_set_data64(sqe, ud);
}

void UringRing::linger_reset(uint32_t slot, uint64_t ud) {
  io_uring_sqe* sqe = get_sqe();
  prep_sockopt(sqe, static_cast<int>(slot), kSocketOpSetsockopt, SOL_SOCKET, SO_LINGER,
               &kLingerReset, sizeof kLingerReset);
  sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sqe, ud);
}

void UringRing::set_rcvlowat(uint32_t slot, const int* bytes, uint64_t ud) {
  io_uring_sqe* sqe = get_sqe();
  prep_sockopt(sqe, static_cast<int>(slot), kSocketOpSetsockopt, SOL_SOCKET, SO_RCVLOWAT, bytes,
               sizeof *bytes);
  sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sqe, ud);
}

void UringRing::close_slot(uint32_t slot, uint64_t ud) {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_close_direct(sqe, slot);
  io_uring_sqe_set_data64(sqe, ud);
}

int UringRing::submit_and_wait(Nanos timeout) {
  if (before_wait_) before_wait_();
  if (stats_ != nullptr) ++stats_->enters;
  io_uring_cqe* cqe = nullptr;
  int rc;
  if (timeout == kNever) {
    rc = io_uring_submit_and_wait(&ring_, 1);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeout / kSecond;
    ts.tv_nsec = timeout % kSecond;
    rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }
  submitted();
  return rc < 0 ? rc : 0;
}

int UringRing::reap(UringCqe* out, int max) {
  if (stats_ != nullptr) {
    if (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_CQ_OVERFLOW) ++stats_->cq_overflows;
    const unsigned dropped = IO_URING_READ_ONCE(*ring_.cq.koverflow);
    if (dropped != dropped_seen_) {
      stats_->cq_dropped += dropped - dropped_seen_;
      dropped_seen_ = dropped;
    }
  }
  io_uring_cqe* cqes[256];
  if (max > 256) max = 256;
  const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, static_cast<unsigned>(max));
  for (unsigned i = 0; i < n; ++i) {
    out[i].user_data = cqes[i]->user_data;
    out[i].res = cqes[i]->res;
    out[i].flags = cqes[i]->flags;
  }
  io_uring_cq_advance(&ring_, n);
  return static_cast<int>(n);
}

}  // namespace c10m::engine
