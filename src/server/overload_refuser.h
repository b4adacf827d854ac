#pragma once
// OverloadRefuser: answers an accepted connection the server cannot take with ERROR
// OVERLOADED and closes it, with the same bytes and counters as an engine's --max-conns
// refusal (it runs a core::Session for the one frame). The supervisor uses it for the
// connections that arrive while every worker is at capacity.
//
// Thread rule: one thread. Owns its buffer pools; `counters` is its single-writer block.
#include <memory>

#include "base/buffer_pool.h"
#include "base/noncopyable.h"
#include "core/content_source.h"
#include "core/server_config.h"
#include "core/session.h"
#include "metrics/counters.h"

namespace c10m::server {

class OverloadRefuser : NonCopyable {
 public:
  OverloadRefuser(const core::ServerConfig& config, metrics::ThreadCounters* counters);
  /// Counts the accept, writes ERROR OVERLOADED (a fresh socket's send buffer takes the
  /// small frame in one write), closes `fd`.
  void refuse(int fd);

 private:
  metrics::ThreadCounters* counters_;
  BufferPool pool_;
  BufferPool small_pool_;
  std::unique_ptr<core::ContentSource> content_;
  core::SessionEnv env_;
};

}  // namespace c10m::server
