// libFuzzer target over the io_uring engine's completion handling: a UringLoop runs against
// a model of the kernel (a UringIo) that issues what the loop submits and completes it in
// an order, and with results, chosen by the input: connections accepted into a small
// direct-descriptor table (or -ENFILE when it is full), multishot receives that deliver
// bytes through the real provided-buffer ring (whole or incremental buffers), run it dry
// (-ENOBUFS), end without IORING_CQE_F_MORE (as on a full CQ), see EOF or a reset; sends
// that complete in part, fail, or (zero-copy) release their bytes in a second completion;
// cancellations (-ECANCELED, or -ENOENT when the request already ended); time that fires
// every timeout; the drain and its deadlines. As a worker process (chosen by the input):
// a small capacity at which the process pauses (every accept cancelled, the gate told) and
// resumes, and kicks (the multishot poll on the kick eventfd) that re-issue the accepts.
//
// Checked: the loop never touches a freed connection (ASan), never changes bytes the
// kernel may still read (a send's bytes are as submitted until its last completion), each
// connection's output is a well-formed frame stream, and at the end, after a drain, every
// connection and direct descriptor is gone, every receive buffer is back in the ring and
// nothing the loop asked for is still in flight.
#include <fuzzer/FuzzedDataProvider.h>
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "core/content_source.h"
#include "engine/uring/uring_buffer_ring.h"
#include "engine/uring/uring_io.h"
#include "engine/uring/uring_loop.h"
#include "output_checker.h"

namespace {

using namespace c10m;
using namespace c10m::engine;
using fuzz::OutputChecker;

constexpr uint32_t kSlots = 6;

/// What the kernel does with the loop's requests; the fuzz input picks which in-flight
/// request completes next and how.
class KernelModel final : public UringIo {
 public:
  enum class Kind { kAccept, kPoll, kRecv, kSend, kCancel, kCancelSlot, kSockopt, kClose };
  struct Op {
    Kind kind = Kind::kPoll;
    uint64_t ud = 0;
    bool multishot = false;
    uint64_t arg = 0;               // slot, or the cancel target
    std::vector<iovec> iov;         // send: what the kernel will read
    std::vector<uint8_t> snapshot;  // send: those bytes as submitted
    bool zerocopy = false;
    bool awaiting_notif = false;  // zero-copy: result posted, notification not yet
  };

  explicit KernelModel(UringBufferRing* bufs) : bufs_(bufs) {}
  static Op make(Kind kind, uint64_t ud, bool multishot = false, uint64_t arg = 0) {
    Op op;
    op.kind = kind;
    op.ud = ud;
    op.multishot = multishot;
    op.arg = arg;
    return op;
  }

  // --- UringIo: queued in order, issued at submit_and_wait ---
  void accept(int, bool multishot, uint64_t ud) override {
    queue_.push_back(make(Kind::kAccept, ud, multishot));
  }
  void poll_in(int, uint64_t ud) override { queue_.push_back(make(Kind::kPoll, ud)); }
  void poll_in_multishot(int, uint64_t ud) override {
    queue_.push_back(make(Kind::kPoll, ud, true));
  }
  void recv_multishot(uint32_t slot, uint16_t group, uint64_t ud) override {
    FUZZ_CHECK(group == 0);
    queue_.push_back(make(Kind::kRecv, ud, true, slot));
  }
  void send(uint32_t slot, const iovec* iov, int cnt, bool zerocopy, uint64_t ud) override {
    FUZZ_CHECK(cnt >= 1 && cnt <= kUringMaxSendIov);
    FUZZ_CHECK(!zerocopy || cnt == 1);
    Op op = make(Kind::kSend, ud, false, slot);
    op.iov.assign(iov, iov + cnt);
    op.zerocopy = zerocopy;
    for (const iovec& v : op.iov) {
      FUZZ_CHECK(v.iov_len > 0);
      const auto* p = static_cast<const uint8_t*>(v.iov_base);
      op.snapshot.insert(op.snapshot.end(), p, p + v.iov_len);
    }
    queue_.push_back(std::move(op));
  }
  void cancel(uint64_t target, uint64_t ud) override {
    queue_.push_back(make(Kind::kCancel, ud, false, target));
  }
  void cancel_slot(uint32_t slot, uint64_t ud) override {
    queue_.push_back(make(Kind::kCancelSlot, ud, false, slot));
  }
  void linger_reset(uint32_t slot, uint64_t ud) override {
    queue_.push_back(make(Kind::kSockopt, ud, false, slot));
  }
  void set_rcvlowat(uint32_t slot, const int* bytes, uint64_t ud) override {
    FUZZ_CHECK(*bytes >= 1);
    queue_.push_back(make(Kind::kSockopt, ud, false, slot));
  }
  void close_slot(uint32_t slot, uint64_t ud) override {
    queue_.push_back(make(Kind::kClose, ud, false, slot));
  }
  int submit_and_wait(Nanos) override {
    for (Op& op : queue_) issue(std::move(op));
    queue_.clear();
    return 0;
  }
  int reap(UringCqe* out, int max) override {
    int n = 0;
    while (n < max && !cq_.empty()) {
      out[n++] = cq_.front();
      cq_.pop_front();
    }
    return n;
  }

  // --- completions the input chooses ---
  std::vector<Op> inflight;

  /// An accept completes: a fresh slot, or -ENFILE (ends it) when the table is full.
  void complete_accept(size_t i, bool more) {
    uint32_t slot = kSlots;
    for (uint32_t s = 0; s < kSlots; ++s) {
      if (!table_[s]) {
        slot = s;
        break;
      }
    }
    if (slot == kSlots) {
      complete_final(i, -ENFILE);
      return;
    }
    table_[slot] = true;
    peers_[slot] = OutputChecker{};
    if (inflight[i].multishot && more) {
      post(inflight[i].ud, static_cast<int32_t>(slot), kCqeMore);
    } else {
      complete_final(i, static_cast<int32_t>(slot));
    }
  }

  /// A receive gets `data` (at most what the head buffer holds), or -ENOBUFS when the ring
  /// is empty.
  void complete_recv_data(size_t i, const std::vector<uint8_t>& data, bool more) {
    io_uring_buf_ring* br = bufs_->ring();
    const uint16_t tail = io_uring_smp_load_acquire(&br->tail);
    if (tail == head_) {
      complete_final(i, -ENOBUFS);
      return;
    }
    io_uring_buf& b = br->bufs[head_ & (bufs_->count() - 1)];
    const uint32_t len = std::min<uint32_t>(static_cast<uint32_t>(data.size()), b.len);
    FUZZ_CHECK(len > 0);
    std::memcpy(reinterpret_cast<void*>(b.addr), data.data(), len);
    uint32_t flags = kCqeBuffer | (static_cast<uint32_t>(b.bid) << kCqeBufferShift);
    if (bufs_->incremental() && len < b.len) {
      b.addr += len;
      b.len -= len;
      flags |= kCqeBufMore;
    } else {
      ++head_;
    }
    if (more) {
      post(inflight[i].ud, static_cast<int32_t>(len), flags | kCqeMore);
    } else {
      post(inflight[i].ud, static_cast<int32_t>(len), flags);
      erase(i);
    }
  }

  /// A completion of multishot request i that keeps it in flight.
  void post_more(size_t i, int32_t res) { post(inflight[i].ud, res, kCqeMore); }

  /// The last completion of request i, with `res` (EOF 0, -ECONNRESET, -EPIPE, ...).
  void complete_final(size_t i, int32_t res) {
    post(inflight[i].ud, res, 0);
    erase(i);
  }

  /// The kernel takes `k` (1..all) bytes of send i; the peer reads them.
  void complete_send(size_t i, size_t k) {
    Op& op = inflight[i];
    check_unchanged(op);
    k = std::clamp<size_t>(k, 1, op.snapshot.size());
    peers_[op.arg].take({op.snapshot.data(), k});
    if (op.zerocopy) {
      post(op.ud, static_cast<int32_t>(k), kCqeMore);
      op.awaiting_notif = true;
    } else {
      complete_final(i, static_cast<int32_t>(k));
    }
  }
  void complete_notif(size_t i) {
    check_unchanged(inflight[i]);
    post(inflight[i].ud, 0, kCqeNotif);
    erase(i);
  }

  bool any_slot_used() const {
    return std::any_of(std::begin(table_), std::end(table_), [](bool b) { return b; });
  }
  uint32_t buffers_in_ring() const {
    return static_cast<uint16_t>(io_uring_smp_load_acquire(&bufs_->ring()->tail) - head_);
  }

 private:
  void post(uint64_t ud, int32_t res, uint32_t flags) { cq_.push_back({ud, res, flags}); }
  void erase(size_t i) { inflight.erase(inflight.begin() + static_cast<long>(i)); }

  void issue(Op&& op) {
    switch (op.kind) {
      case Kind::kAccept:
      case Kind::kPoll:
        inflight.push_back(std::move(op));
        return;
      case Kind::kRecv:
      case Kind::kSend:
        // The loop never names a slot it closed (or never had).
        FUZZ_CHECK(op.arg < kSlots && table_[op.arg]);
        inflight.push_back(std::move(op));
        return;
      case Kind::kCancel: {  // completes at once, as the kernel's inline issue does
        int32_t res = -ENOENT;
        for (size_t i = 0; i < inflight.size(); ++i) {
          if (inflight[i].ud == op.arg && !inflight[i].awaiting_notif) {
            complete_final(i, -ECANCELED);
            res = 0;
            break;
          }
        }
        post(op.ud, res, 0);
        return;
      }
      case Kind::kCancelSlot: {
        FUZZ_CHECK(op.arg < kSlots && table_[op.arg]);
        int32_t n = 0;
        for (size_t i = 0; i < inflight.size();) {
          const Op& o = inflight[i];
          if ((o.kind == Kind::kRecv || o.kind == Kind::kSend) && o.arg == op.arg &&
              !o.awaiting_notif) {
            complete_final(i, -ECANCELED);
            ++n;
          } else {
            ++i;
          }
        }
        post(op.ud, n, 0);
        return;
      }
      case Kind::kSockopt:
        FUZZ_CHECK(op.arg < kSlots && table_[op.arg]);
        post(op.ud, 0, 0);
        return;
      case Kind::kClose:
        FUZZ_CHECK(op.arg < kSlots && table_[op.arg]);
        post(op.ud, 0, 0);
        table_[op.arg] = false;
        return;
    }
  }
  void check_unchanged(const Op& op) {
    size_t off = 0;
    for (const iovec& v : op.iov) {
      FUZZ_CHECK(std::memcmp(v.iov_base, op.snapshot.data() + off, v.iov_len) == 0);
      off += v.iov_len;
    }
  }

  UringBufferRing* bufs_;
  uint16_t head_ = 0;  // the kernel's private head of the buffer ring
  bool table_[kSlots] = {};
  OutputChecker peers_[kSlots];
  std::deque<UringCqe> cq_;
  std::vector<Op> queue_;
};

/// The worker board's view: whether the process accepts.
class FakeGate final : public AcceptGate {
 public:
  void set_accepting(bool accepting) override {
    FUZZ_CHECK(accepting != accepting_);  // told only of changes
    accepting_ = accepting;
  }
  bool accepting_ = true;
};

constexpr size_t kWriteQueues[] = {0, 16, 1000, 70000};
constexpr Nanos kTimeouts[] = {0, 1 * kSecond, 10 * kSecond};
constexpr uint32_t kBufferSizes[] = {1, 7, 64, 4096};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto content = core::make_pattern_source();
  FuzzedDataProvider fdp(data, size);

  core::ServerConfig config;
  config.limits.max_frame = 65535;
  config.limits.write_queue = fdp.PickValueInArray(kWriteQueues);
  config.limits.idle_timeout = fdp.PickValueInArray(kTimeouts);
  config.limits.frame_timeout = fdp.PickValueInArray(kTimeouts);
  config.limits.write_timeout = fdp.PickValueInArray(kTimeouts);
  config.drain_timeout = 2 * kSecond;  // a FETCH may be endless: the drain must force it
  config.max_conns = fdp.ConsumeIntegralInRange<uint64_t>(0, 4);
  config.pool = fdp.ConsumeBool();
  // Shared across runs (as across loops) so the engine's throttled log lines stay quiet.
  static UringShared shared;
  shared.config = &config;
  shared.content = content.get();
  FUZZ_CHECK(shared.open.load() == 0);
  // Worker mode: pause at 1..kSlots connections (0: a single process).
  static const int kick_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  FakeGate gate;
  WorkerShare& worker = shared.worker;
  worker.pause_at = fdp.ConsumeIntegralInRange<uint64_t>(0, kSlots);
  worker.resume_below =
      worker.pause_at == 0 ? 0 : fdp.ConsumeIntegralInRange<uint64_t>(1, worker.pause_at);
  worker.shared_listener = worker.pause_at != 0;
  worker.kick_fd = worker.pause_at != 0 ? kick_fd : -1;
  worker.gate = worker.pause_at != 0 ? &gate : nullptr;
  worker.paused.store(false);
  metrics::ThreadCounters counters;

  UringBufferRing bufs(fdp.ConsumeIntegralInRange<uint32_t>(1, 4),
                       fdp.PickValueInArray(kBufferSizes), fdp.ConsumeBool());
  FUZZ_CHECK(bufs.error().empty());
  KernelModel kernel(&bufs);
  const uint32_t headroom = fdp.ConsumeIntegralInRange<uint32_t>(1, kSlots + 1);
  const size_t zerocopy_min = fdp.ConsumeBool() ? 0 : 16;
  bool drained = false;
  {
    UringLoop loop(&shared, &kernel, &bufs, /*listen_fd=*/-1, kSlots, headroom, zerocopy_min,
                   &counters);
    Nanos now = mono_now();
    UringCqe cqes[64];
    auto turn = [&](bool wind_down) {
      loop.turn_begin(now);
      if (loop.done()) return false;
      kernel.submit_and_wait(0);
      // Completions: chosen by the input, or (winding down) the kernel answers everything
      // the way a closing peer would.
      const int steps = wind_down ? 1 : fdp.ConsumeIntegralInRange<int>(0, 6);
      for (int s = 0; s < steps && !kernel.inflight.empty(); ++s) {
        if (wind_down) {
          for (size_t i = kernel.inflight.size(); i-- > 0;) {
            const auto& op = kernel.inflight[i];
            switch (op.kind) {
              case KernelModel::Kind::kRecv:
                kernel.complete_final(i, 0);  // EOF
                break;
              case KernelModel::Kind::kSend:
                if (op.awaiting_notif) {
                  kernel.complete_notif(i);
                } else {
                  kernel.complete_send(i, SIZE_MAX);
                }
                break;
              case KernelModel::Kind::kPoll:
                if (op.multishot) break;  // the kick poll: cancelled by the drain
                kernel.complete_final(i, POLLIN);
                drained = true;
                break;
              case KernelModel::Kind::kAccept:
                kernel.complete_final(i, -EINVAL);  // listener shut down
                break;
              default:
                break;
            }
          }
          break;
        }
        const size_t i = fdp.ConsumeIntegralInRange<size_t>(0, kernel.inflight.size() - 1);
        const auto& op = kernel.inflight[i];
        switch (op.kind) {
          case KernelModel::Kind::kAccept:
            if (fdp.ConsumeIntegralInRange<int>(0, 7) == 0) {
              kernel.complete_final(i, fdp.ConsumeBool() ? -ECONNABORTED : -ENOMEM);
            } else {
              kernel.complete_accept(i, fdp.ConsumeIntegralInRange<int>(0, 5) != 0);
            }
            break;
          case KernelModel::Kind::kPoll:
            if (op.multishot) {  // a kick (or, rarely, the poll ends as on a full CQ)
              if (fdp.ConsumeIntegralInRange<int>(0, 7) == 0) {
                kernel.complete_final(i, POLLIN);
              } else {
                kernel.post_more(i, POLLIN);
              }
            } else if (fdp.ConsumeIntegralInRange<int>(0, 7) == 0) {
              kernel.complete_final(i, POLLIN);
              drained = true;
            }
            break;
          case KernelModel::Kind::kRecv:
            switch (fdp.ConsumeIntegralInRange<int>(0, 15)) {
              case 0:
                kernel.complete_final(i, 0);  // EOF
                break;
              case 1:
                kernel.complete_final(i, -ECONNRESET);
                break;
              case 2:
                kernel.complete_final(i, -ENOBUFS);
                break;
              default: {
                std::vector<uint8_t> in =
                    fdp.ConsumeBytes<uint8_t>(fdp.ConsumeIntegralInRange<size_t>(1, 300));
                if (in.empty()) in.push_back(0x01);
                kernel.complete_recv_data(i, in, fdp.ConsumeIntegralInRange<int>(0, 5) != 0);
              }
            }
            break;
          case KernelModel::Kind::kSend:
            if (op.awaiting_notif) {
              kernel.complete_notif(i);
            } else if (fdp.ConsumeIntegralInRange<int>(0, 15) == 0) {
              kernel.complete_final(i, fdp.ConsumeBool() ? -EPIPE : -ECONNRESET);
            } else {
              kernel.complete_send(i, fdp.ConsumeIntegralInRange<size_t>(1, 70000));
            }
            break;
          default:
            break;
        }
      }
      now += wind_down ? 500 * kMillisecond
                       : fdp.PickValueInArray({Nanos{0}, kMillisecond, 20 * kMillisecond,
                                               600 * kMillisecond, 3 * kSecond});
      for (;;) {
        const int n = kernel.reap(cqes, 64);
        for (int k = 0; k < n; ++k) loop.handle(cqes[k], now);
        bufs.publish();
        if (n == 0) break;
      }
      loop.turn_end(now);
      // The gate follows the pause; a paused process has no accept left to arm.
      if (worker.pause_at != 0) FUZZ_CHECK(gate.accepting_ == !worker.paused.load());
      return true;
    };

    loop.start();
    while (fdp.remaining_bytes() > 0 && turn(false)) {
    }
    // Wind down: drain, peers close and read everything, deadlines pass.
    for (int t = 0; t < 400 && turn(true); ++t) {
    }
    FUZZ_CHECK(drained);
    FUZZ_CHECK(loop.done());
    FUZZ_CHECK(loop.live() == 0);
    FUZZ_CHECK(loop.free_slots() == kSlots);
    FUZZ_CHECK(!kernel.any_slot_used());
    FUZZ_CHECK(bufs.anomalies() == 0);
    FUZZ_CHECK(kernel.buffers_in_ring() == bufs.count());
    for (const auto& op : kernel.inflight)  // only loop-level requests may remain
      FUZZ_CHECK(op.kind == KernelModel::Kind::kAccept || op.kind == KernelModel::Kind::kPoll);
    FUZZ_CHECK(shared.open.load() == 0);
  }
  FUZZ_CHECK(counters.write_queue_bytes.load() == 0);
  return 0;
}
