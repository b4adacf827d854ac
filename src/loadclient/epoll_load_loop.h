#pragma once
// EpollLoadLoop: the load loop over plain sockets (--io epoll and --io uring). Connections
// are non-blocking sockets in the process fd table (so a process holds at most its fd
// limit of them: use --procs, or --io direct), readiness comes from one epoll set.
//
// Syscalls: each connection writes what it staged in a turn with one write/writev; reads
// drain a readable socket (at most kReadBurst reads into a 256 KiB scratch buffer). With
// --io uring (io_batch.h) the same reads and writes are ring operations instead: the
// reads of one epoll batch in one io_uring_enter, the writes of one turn in another; every
// operation is non-blocking and completes inside that enter, so the loop's order and
// checks stay those of the syscall path.
//
// Thread rule: the loop's thread only (LoadLoop's rule).
#include <memory>
#include <utility>
#include <vector>

#include "loadclient/io_batch.h"
#include "loadclient/load_loop.h"

namespace c10m::loadclient {

class EpollLoadLoop final : public LoadLoop {
 public:
  EpollLoadLoop(const LoadConfig& config, const PayloadPattern& pattern,
                std::vector<uint64_t> global_ids, double ramp_per_s);
  ~EpollLoadLoop() override;

 private:
  std::string setup_io() override;
  int begin_connect(Conn& c, uint32_t idx) override;
  void release_socket(Conn& c, uint32_t idx) override;
  void flush_staged() override;
  bool flush_conn(Conn& c, uint32_t idx) override;
  void write_large(Conn& c, uint32_t idx, const uint8_t* data, size_t len) override;
  void want_writable(Conn& c, uint32_t idx) override;
  void writable_done(Conn& c, uint32_t idx) override;
  void wait_and_handle(Nanos wake) override;
  void close_all() override;

  void set_events(Conn& c, uint32_t idx, uint32_t events);
  void on_connect_event(Conn& c, uint32_t idx, Nanos now);
  void write_chain(Conn& c, uint32_t idx, uint32_t s);
  void flush_queue(Conn& c, uint32_t idx);
  void on_readable(Conn& c, uint32_t idx, uint8_t* buf, size_t cap);
  std::span<const IoBatch::Result> submit_batch();
  void submit_sends();
  void read_batch();

  int ep_ = -1;
  std::vector<uint8_t> rbuf_;
  // --io uring: the batcher, the connections of this epoll batch to read (idx, gen), the
  // read completions being handled, and the sends of this batch (tag = index).
  std::unique_ptr<IoBatch> io_;
  std::vector<std::pair<uint32_t, uint32_t>> ready_;
  std::vector<IoBatch::Result> reads_done_;
  struct SendOp {
    uint32_t idx, gen, head;  // head: the staged chain this send carries
    size_t want;
  };
  std::vector<SendOp> sends_;
};

}  // namespace c10m::loadclient
