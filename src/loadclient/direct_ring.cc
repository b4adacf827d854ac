#include "loadclient/direct_ring.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace c10m::loadclient {
namespace {

// Newer than the liburing 2.3 / Linux 6.1 headers of Debian 12 (values from the kernel's
// include/uapi/linux/io_uring.h).
constexpr uint8_t kOpBind = 56;              // IORING_OP_BIND (6.11)
constexpr uint16_t kPbufRingInc = 2;         // IOU_PBUF_RING_INC (6.12)
constexpr uint32_t kSocketOpSetsockopt = 3;  // SOCKET_URING_OP_SETSOCKOPT (6.7)

constexpr unsigned kRingFlags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
                                IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL;
constexpr int kSendFlags = MSG_DONTWAIT | MSG_NOSIGNAL;
constexpr uint8_t kChained = IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;

const int kOne = 1;

/// A URING_CMD socket-option request on a fixed file (the kernel reads level/optname from
/// the `addr` field, optlen from `file_index`, optval from `addr3`).
void prep_setsockopt(io_uring_sqe* sqe, uint32_t slot, int level, int name, const int* val) {
  io_uring_prep_rw(IORING_OP_URING_CMD, sqe, static_cast<int>(slot), nullptr, 0, 0);
  sqe->cmd_op = kSocketOpSetsockopt;
  sqe->addr =
      (static_cast<uint64_t>(static_cast<uint32_t>(name)) << 32) | static_cast<uint32_t>(level);
  sqe->file_index = sizeof(int);
  sqe->addr3 = reinterpret_cast<uint64_t>(val);
  sqe->flags |= IOSQE_FIXED_FILE;
}

void prep_bind(io_uring_sqe* sqe, uint32_t slot, const sockaddr_in* addr) {
  io_uring_prep_rw(kOpBind, sqe, static_cast<int>(slot), addr, 0, sizeof *addr);
  sqe->flags |= IOSQE_FIXED_FILE;
}

std::string kernel_release() {
  utsname u{};
  return uname(&u) == 0 ? std::string(u.release) : std::string("?");
}

std::string needs(const std::string& what, const char* version, int err = 0) {
  std::string s = "--io direct: this kernel (" + kernel_release() + ") lacks " + what +
                  ", which needs Linux " + version + " or newer";
  if (err != 0) s += std::string(" (") + std::strerror(err < 0 ? -err : err) + ")";
  return s;
}

int register_buf_ring(io_uring* ring, io_uring_buf_ring* br, uint32_t count) {
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br);
  reg.ring_entries = count;
  reg.bgid = 0;
  reg.pad = kPbufRingInc;  // `flags` in newer headers
  return io_uring_register_buf_ring(ring, &reg, 0);
}

std::string probe() {
  io_uring ring{};
  io_uring_params p{};
  p.flags = kRingFlags;
  int rc = io_uring_queue_init_params(8, &ring, &p);
  if (rc == -EPERM) {
    std::ifstream in("/proc/sys/kernel/io_uring_disabled");
    std::string v;
    in >> v;
    return "--io direct: io_uring is disabled for this process (kernel.io_uring_disabled = " +
           (v.empty() ? std::string("?") : v) + ", or a seccomp filter forbids io_uring_setup)";
  }
  if (rc < 0)
    return needs("io_uring with SINGLE_ISSUER and COOP_TASKRUN (io_uring_setup)", "6.12", rc);
  std::string why;
  if ((p.features & IORING_FEAT_NODROP) == 0) why = needs("IORING_FEAT_NODROP", "6.12");
  if (io_uring_probe* pr = why.empty() ? io_uring_get_probe_ring(&ring) : nullptr) {
    const struct {
      int op;
      const char* name;
      const char* version;
    } ops[] = {
        {IORING_OP_SOCKET, "IORING_OP_SOCKET", "5.19"},
        {IORING_OP_CONNECT, "IORING_OP_CONNECT", "5.5"},
        {IORING_OP_RECV, "IORING_OP_RECV", "5.6"},
        {IORING_OP_SEND, "IORING_OP_SEND", "5.6"},
        {IORING_OP_SENDMSG, "IORING_OP_SENDMSG", "5.3"},
        {IORING_OP_POLL_ADD, "IORING_OP_POLL_ADD", "5.1"},
        {IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL", "5.5"},
        {IORING_OP_CLOSE, "IORING_OP_CLOSE", "5.6"},
        {IORING_OP_URING_CMD, "IORING_OP_URING_CMD", "6.7"},
        {kOpBind, "IORING_OP_BIND (bind a direct descriptor to its --srcips address)", "6.11"}};
    for (const auto& o : ops) {
      if (!io_uring_opcode_supported(pr, o.op)) {
        why = needs(o.name, o.version);
        break;
      }
    }
    io_uring_free_probe(pr);
  } else if (why.empty()) {
    why = needs("IORING_REGISTER_PROBE", "5.6");
  }
  if (why.empty() && (rc = io_uring_register_files_sparse(&ring, 1)) < 0)
    why = needs("a sparse direct-descriptor table", "5.19", rc);
  void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (why.empty() && mem != MAP_FAILED &&
      (rc = register_buf_ring(&ring, static_cast<io_uring_buf_ring*>(mem), 1)) < 0)
    why = needs("incremental provided buffers (IOU_PBUF_RING_INC)", "6.12", rc);
  if (why.empty()) {
    // A socket into slot 0, an option through URING_CMD, a bind, as a connect does them
    // (IP_BIND_ADDRESS_NO_PORT: the bind takes no ephemeral port).
    static sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_socket_direct(sqe, AF_INET, SOCK_STREAM, 0, 0, 0);
    sqe->flags |= IOSQE_IO_LINK;
    sqe->user_data = 1;
    sqe = io_uring_get_sqe(&ring);
    prep_setsockopt(sqe, 0, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &kOne);
    sqe->flags |= IOSQE_IO_LINK;
    sqe->user_data = 2;
    sqe = io_uring_get_sqe(&ring);
    prep_bind(sqe, 0, &any);
    sqe->user_data = 3;
    rc = io_uring_submit_and_wait(&ring, 3);
    if (rc < 0) why = needs("io_uring_enter", "6.12", rc);
    for (int i = 0; i < 3 && why.empty(); ++i) {
      io_uring_cqe* cqe = nullptr;
      if ((rc = io_uring_wait_cqe(&ring, &cqe)) < 0) {
        why = needs("io_uring completions", "6.12", rc);
        break;
      }
      const int res = cqe->res;
      const uint64_t ud = cqe->user_data;
      io_uring_cqe_seen(&ring, cqe);
      if (res >= 0 || res == -ECANCELED) continue;
      why = ud == 1   ? needs("IORING_OP_SOCKET into a direct descriptor", "5.19", res)
            : ud == 2 ? needs(
                            "setsockopt on a direct descriptor (IORING_OP_URING_CMD "
                            "SOCKET_URING_OP_SETSOCKOPT)",
                            "6.7", res)
                      : needs("IORING_OP_BIND on a direct descriptor", "6.11", res);
    }
  }
  io_uring_queue_exit(&ring);
  if (mem != MAP_FAILED) munmap(mem, 4096);
  return why;
}

}  // namespace

const std::string& DirectRing::unavailable() {
  static const std::string why = probe();
  return why;
}

DirectRing::~DirectRing() {
  if (ok_) io_uring_queue_exit(&ring_);  // closes every direct descriptor it still holds
  if (br_ != nullptr) munmap(br_, br_bytes_);
  if (bufs_ != nullptr) munmap(bufs_, bufs_bytes_);
}

std::string DirectRing::init(const Options& opts, metrics::Counter* enters) {
  enters_ = enters;
  io_uring_params p{};
  p.flags = kRingFlags | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
  p.cq_entries = opts.cq_entries;
  int rc = io_uring_queue_init_params(opts.sq_entries, &ring_, &p);
  if (rc < 0) return std::string("io_uring_setup: ") + std::strerror(-rc);
  ok_ = true;
  rc = io_uring_register_files_sparse(&ring_, opts.slots);
  if (rc < 0)
    return "registering " + std::to_string(opts.slots) +
           " direct descriptors: " + std::strerror(-rc);
  buf_count_ = opts.buffers;
  buf_size_ = opts.buffer_size;
  br_bytes_ = (buf_count_ * sizeof(io_uring_buf) + 4095) & ~size_t{4095};
  bufs_bytes_ = size_t{buf_count_} * buf_size_;
  void* br = mmap(nullptr, br_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* bufs =
      mmap(nullptr, bufs_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (br == MAP_FAILED || bufs == MAP_FAILED) {
    if (br != MAP_FAILED) munmap(br, br_bytes_);
    if (bufs != MAP_FAILED) munmap(bufs, bufs_bytes_);
    return std::string("mmap of the receive buffers: ") + std::strerror(errno);
  }
  br_ = static_cast<io_uring_buf_ring*>(br);
  bufs_ = static_cast<uint8_t*>(bufs);
  offset_ = std::make_unique<uint32_t[]>(buf_count_);
  rc = register_buf_ring(&ring_, br_, buf_count_);
  if (rc < 0) return std::string("registering the receive buffer ring: ") + std::strerror(-rc);
  for (uint32_t b = 0; b < buf_count_; ++b)
    io_uring_buf_ring_add(br_, bufs_ + size_t{b} * buf_size_, buf_size_, static_cast<uint16_t>(b),
                          io_uring_buf_ring_mask(buf_count_), static_cast<int>(b));
  io_uring_buf_ring_advance(br_, static_cast<int>(buf_count_));
  return {};
}

io_uring_sqe* DirectRing::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  if (s == nullptr) {
    // The submission queue is full within one turn: hand what is queued to the kernel now
    // (completions wait in the CQ for the next reap).
    submit();
    s = io_uring_get_sqe(&ring_);
  }
  return s;  // never null: the queue was just emptied
}

int DirectRing::submit() {
  int rc;
  do {
    rc = io_uring_submit(&ring_);
  } while (rc == -EINTR);
  if (enters_ != nullptr) enters_->add();
  return rc;
}

void DirectRing::connect(uint32_t slot, const SocketSetup& s, uint64_t step_ud,
                         uint64_t connect_ud) {
  // A chain never straddles an early submit (a link is cut at the end of a submission):
  // keep room for all of it.
  if (io_uring_sq_space_left(&ring_) < 7) submit();
  io_uring_sqe* q = sqe();
  io_uring_prep_socket_direct(q, AF_INET, SOCK_STREAM, 0, slot, 0);
  q->flags |= kChained;
  q->user_data = step_ud;
  auto option = [&](int level, int name, const int* val) {
    io_uring_sqe* o = sqe();
    prep_setsockopt(o, slot, level, name, val);
    o->flags |= kChained;
    o->user_data = step_ud;
  };
  option(IPPROTO_TCP, TCP_NODELAY, s.nodelay);
  if (s.sndbuf != nullptr) option(SOL_SOCKET, SO_SNDBUF, s.sndbuf);
  if (s.rcvbuf != nullptr) option(SOL_SOCKET, SO_RCVBUF, s.rcvbuf);
  if (s.source != nullptr) {
    // The kernel picks the port at connect, per 4-tuple: many source IPs share the
    // ephemeral range without exhausting it at bind.
    option(IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &kOne);
    io_uring_sqe* b = sqe();
    prep_bind(b, slot, s.source);
    b->flags |= kChained;
    b->user_data = step_ud;
  }
  io_uring_sqe* c = sqe();
  io_uring_prep_connect(c, static_cast<int>(slot), reinterpret_cast<const sockaddr*>(s.dest),
                        sizeof *s.dest);
  c->flags |= IOSQE_FIXED_FILE;
  c->user_data = connect_ud;
}

void DirectRing::recv(uint32_t slot, uint64_t ud) {
  io_uring_sqe* q = sqe();
  io_uring_prep_recv_multishot(q, static_cast<int>(slot), nullptr, 0, 0);
  q->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
  q->buf_group = 0;
  q->user_data = ud;
}

void DirectRing::send(uint32_t slot, const void* buf, size_t len, uint64_t ud) {
  io_uring_sqe* q = sqe();
  io_uring_prep_send(q, static_cast<int>(slot), buf, len, kSendFlags);
  q->flags |= IOSQE_FIXED_FILE;
  q->user_data = ud;
}

void DirectRing::sendmsg(uint32_t slot, const msghdr* msg, uint64_t ud) {
  io_uring_sqe* q = sqe();
  io_uring_prep_sendmsg(q, static_cast<int>(slot), msg, kSendFlags);
  q->flags |= IOSQE_FIXED_FILE;
  q->user_data = ud;
}

void DirectRing::poll_out(uint32_t slot, uint64_t ud) {
  io_uring_sqe* q = sqe();
  io_uring_prep_poll_add(q, static_cast<int>(slot), POLLOUT);
  q->flags |= IOSQE_FIXED_FILE;
  q->user_data = ud;
}

void DirectRing::close_slot(uint32_t slot, bool cancel, uint64_t ud) {
  if (cancel) {
    io_uring_sqe* q = sqe();
    io_uring_prep_cancel_fd(q, static_cast<int>(slot),
                            IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
    q->flags |= IOSQE_CQE_SKIP_SUCCESS;
    q->user_data = ud;
  }
  io_uring_sqe* q = sqe();
  io_uring_prep_close_direct(q, slot);
  q->flags |= IOSQE_CQE_SKIP_SUCCESS;
  q->user_data = ud;
}

std::span<const uint8_t> DirectRing::take(uint16_t bid, uint32_t len) {
  if (bid >= buf_count_ || offset_[bid] + len > buf_size_) return {};
  const uint8_t* p = bufs_ + size_t{bid} * buf_size_ + offset_[bid];
  offset_[bid] += len;
  return {p, len};
}

void DirectRing::release(uint16_t bid, bool kernel_keeps) {
  if (bid >= buf_count_ || kernel_keeps) return;
  offset_[bid] = 0;
  io_uring_buf_ring_add(br_, bufs_ + size_t{bid} * buf_size_, buf_size_, bid,
                        io_uring_buf_ring_mask(buf_count_), unpublished_++);
}

void DirectRing::publish() {
  if (unpublished_ == 0) return;
  io_uring_buf_ring_advance(br_, unpublished_);
  unpublished_ = 0;
}

}  // namespace c10m::loadclient
