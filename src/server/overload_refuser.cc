#include "server/overload_refuser.h"

#include <unistd.h>

#include "base/clock.h"
#include "sys/socket.h"

namespace c10m::server {

OverloadRefuser::OverloadRefuser(const core::ServerConfig& config,
                                 metrics::ThreadCounters* counters)
    : counters_(counters),
      pool_(core::kSessionBlockSize, config.pool, 1),
      small_pool_(core::kSessionSmallBlockSize, config.pool, 1),
      content_(core::make_pattern_source()) {
  env_.limits = config.limits;
  env_.content = content_.get();
  env_.pool = &pool_;
  env_.small_pool = &small_pool_;
  env_.counters = counters_;
  env_.read_chunk = config.readbuf;
}

void OverloadRefuser::refuse(int fd) {
  counters_->accept_total.add();
  const Nanos now = mono_now();
  core::Session s(env_, now);
  s.refuse_overloaded(now);
  iovec iov[4];
  const int cnt = s.gather(iov, 4);
  if (cnt > 0) {
    const ssize_t n = sys::writev_some(fd, iov, cnt);
    if (n > 0) s.on_sent(static_cast<size_t>(n), now);
  }
  ::close(fd);
}

}  // namespace c10m::server
