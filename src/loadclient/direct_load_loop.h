#pragma once
// DirectLoadLoop: the load loop whose connections are io_uring direct descriptors
// (--io direct), so one process holds far more connections than its fd limit.
//
// Rings: a ring's direct-descriptor table is capped by RLIMIT_NOFILE, so the loop drives
// ceil(connections / limit) rings (DirectRing), each holding up to `limit` connections in
// fixed slots; connection i of the loop lives in ring i / limit, slot i % limit. The loop
// orders its connections active ones first, so the rings that carry the load are few
// (their sends leave in few enters) and get the large receive buffers; rings of idle
// connections get small ones. Each ring costs one process fd.
//
// Completions, not readiness: a connection's replies arrive by a multishot receive into
// its ring's provided buffers (nothing to read with a syscall); its requests leave as one
// non-blocking send (or sendmsg of its staged segments) per turn, all of a ring's sends in
// one io_uring_enter (they complete inside it, like a write would, -EAGAIN included); a
// queue the kernel refused waits for a one-shot POLLOUT. The loop sleeps in one
// epoll_pwait2 over its ring fds (a completion wakes it: the rings are not DEFER_TASKRUN)
// and reads every ring's completions from user space after it.
//
// Per connection: the Conn record only (the slot is its index); an idle connection owns no
// buffer, its only kernel request is its armed receive.
//
// Thread rule: the loop's thread only (LoadLoop's rule; the rings are SINGLE_ISSUER).
#include <sys/socket.h>

#include <memory>
#include <utility>
#include <vector>

#include "loadclient/direct_ring.h"
#include "loadclient/load_loop.h"

namespace c10m::loadclient {

class DirectLoadLoop final : public LoadLoop {
 public:
  DirectLoadLoop(const LoadConfig& config, const PayloadPattern& pattern,
                 std::vector<uint64_t> global_ids, double ramp_per_s);
  ~DirectLoadLoop() override;

 private:
  // What a completion is for: user_data = op << 56 | (gen & kGenMask) << 32 | index.
  enum Op : uint8_t { kStep = 1, kConnect, kRecv, kPollOut, kSend, kIgnore };
  static constexpr uint32_t kGenMask = 0xFFFFFF;
  // Conn::io_flags: what is in flight on the slot.
  static constexpr uint8_t kRecvArmed = 1;
  static constexpr uint8_t kPollArmed = 2;
  static constexpr uint8_t kConnectArmed = 4;

  struct Completion {
    uint64_t ud;
    int32_t res;
    uint32_t flags;
    uint32_t ring;
  };
  // A send of this turn (index = the send's user_data): a staged chain, or the queue.
  struct SendOp {
    uint32_t idx, gen, head;
    size_t want;
    bool queue;
    msghdr hdr;
    iovec iov[kMaxIov];
  };

  std::string setup_io() override;
  int begin_connect(Conn& c, uint32_t idx) override;
  void release_socket(Conn& c, uint32_t idx) override;
  void flush_staged() override;
  bool flush_conn(Conn& c, uint32_t idx) override;
  void write_large(Conn& c, uint32_t idx, const uint8_t* data, size_t len) override;
  void want_writable(Conn& c, uint32_t idx) override;
  void writable_done(Conn&, uint32_t) override {}
  void wait_and_handle(Nanos wake) override;
  bool io_pending() const override;
  void close_all() override;

  static uint64_t ud(Op op, uint32_t idx, uint32_t gen) {
    return uint64_t{op} << 56 | uint64_t{gen & kGenMask} << 32 | idx;
  }
  bool current(const Conn& c, uint64_t ud) const {
    return (c.gen & kGenMask) == ((ud >> 32) & kGenMask);
  }
  uint32_t ring_index(uint32_t idx) const { return idx / per_ring_; }
  uint32_t slot(uint32_t idx) const { return idx % per_ring_; }
  DirectRing& ring_of(uint32_t idx);
  void arm_recv(Conn& c, uint32_t idx);
  SendOp& next_send();
  void submit_dirty();
  void submit_and_reap_sends();
  void reap_all();
  void on_send_done(uint64_t ud, int32_t res);
  void handle(const Completion& e, Nanos now);
  void on_recv(Conn& c, uint32_t idx, const Completion& e, std::span<const uint8_t> bytes,
               Nanos now);

  std::vector<std::unique_ptr<DirectRing>> rings_;
  std::vector<uint8_t> ring_dirty_;  // requests queued since its last submit
  std::vector<uint32_t> dirty_rings_;
  uint32_t per_ring_ = 1;
  int ep_ = -1;
  int nodelay_ = 1;
  std::vector<Completion> completions_;  // reaped, not yet handled (in order)
  size_t handled_ = 0;
  std::unique_ptr<SendOp[]> sends_;
  uint32_t nsends_ = 0;                                  // sends prepared in this batch
  uint32_t sends_open_ = 0;                              // ... whose completion has not been seen
  std::vector<std::pair<uint32_t, uint32_t>> writable_;  // (idx, gen): POLLOUT fired
};

/// The loop's connection ids reordered: active ones first, each group in its order.
std::vector<uint64_t> actives_first(std::vector<uint64_t> ids, double active_frac);

}  // namespace c10m::loadclient
