#include "loadclient/load_stats.h"

#include <algorithm>
#include <cerrno>
#include <nlohmann/json.hpp>

#include "proto/frame.h"

namespace c10m::loadclient {

const char* connect_fail_name(ConnectFail kind) {
  switch (kind) {
    case ConnectFail::kFdLimit:
      return "emfile";
    case ConnectFail::kPortsExhausted:
      return "eaddrnotavail";
    case ConnectFail::kRefused:
      return "econnrefused";
    case ConnectFail::kTimeout:
      return "timeout";
    default:
      return "other";
  }
}

const char* connect_fail_hint(ConnectFail kind) {
  switch (kind) {
    case ConnectFail::kFdLimit:
      return "fd limit reached: use --io direct (connections as io_uring direct descriptors, "
             "outside the fd table) or --procs (each process has its own fd table)";
    case ConnectFail::kPortsExhausted:
      return "ephemeral ports exhausted: add --srcips (e.g. 127.0.0.2-127.0.0.60) or widen "
             "net.ipv4.ip_local_port_range";
    case ConnectFail::kRefused:
      return "connection refused: is the server running on --addr, or is its listen backlog full "
             "(net.core.somaxconn)? try a lower --ramp";
    case ConnectFail::kTimeout:
      return "connect timed out: the server is not accepting fast enough; lower --ramp or raise "
             "--connect-timeout";
    default:
      return "connect failed";
  }
}

ConnectFail classify_connect_errno(int err) {
  switch (err) {
    case EMFILE:
    case ENFILE:
      return ConnectFail::kFdLimit;
    case EADDRNOTAVAIL:
    case EADDRINUSE:
      return ConnectFail::kPortsExhausted;
    case ECONNREFUSED:
      return ConnectFail::kRefused;
    case ETIMEDOUT:
      return ConnectFail::kTimeout;
    default:
      return ConnectFail::kOther;
  }
}

void Totals::add(const WorkerCounters& w) {
#define C10M_X(name) name += w.name.load();
  C10M_LOADCLIENT_COUNTERS(C10M_X)
#undef C10M_X
  for (size_t i = 0; i < kConnectFailKinds; ++i) connect_fail[i] += w.connect_fail[i].load();
  for (size_t i = 0; i < 8; ++i) error_frames[i] += w.error_frames[i].load();
  connect_phase_ns = std::max(connect_phase_ns, w.connect_phase_ns.load());
}

void Totals::add(const Totals& t) {
#define C10M_X(name) name += t.name;
  C10M_LOADCLIENT_COUNTERS(C10M_X)
#undef C10M_X
  for (size_t i = 0; i < kConnectFailKinds; ++i) connect_fail[i] += t.connect_fail[i];
  for (size_t i = 0; i < 8; ++i) error_frames[i] += t.error_frames[i];
  connect_phase_ns = std::max(connect_phase_ns, t.connect_phase_ns);
}

uint64_t Totals::connect_failures() const {
  uint64_t n = 0;
  for (uint64_t v : connect_fail) n += v;
  return n;
}

uint64_t Totals::error_frame_count() const {
  uint64_t n = 0;
  for (uint64_t v : error_frames) n += v;
  return n;
}

uint64_t Totals::errors() const {
  return connect_failures() + error_frame_count() + unexpected_closes + unanswered;
}

static const char* error_frame_key(size_t i) {
  return i >= 1 && i <= 6 ? proto::error_code_name(static_cast<proto::ErrorCode>(i)) : "OTHER";
}

nlohmann::json Totals::to_json() const {
  nlohmann::json j;
#define C10M_X(name) j[#name] = name;
  C10M_LOADCLIENT_COUNTERS(C10M_X)
#undef C10M_X
  auto& cf = j["connect_failures"] = nlohmann::json::object();
  for (size_t i = 0; i < kConnectFailKinds; ++i)
    cf[connect_fail_name(static_cast<ConnectFail>(i))] = connect_fail[i];
  auto& ef = j["error_frames"] = nlohmann::json::object();
  for (size_t i = 1; i < 8; ++i) ef[error_frame_key(i)] = error_frames[i];
  j["connect_phase_ns"] = connect_phase_ns;
  j["errors"] = errors();
  return j;
}

Totals Totals::from_json(const nlohmann::json& j) {
  Totals t;
#define C10M_X(name) t.name = j.at(#name).get<uint64_t>();
  C10M_LOADCLIENT_COUNTERS(C10M_X)
#undef C10M_X
  for (size_t i = 0; i < kConnectFailKinds; ++i)
    t.connect_fail[i] =
        j.at("connect_failures").at(connect_fail_name(static_cast<ConnectFail>(i))).get<uint64_t>();
  for (size_t i = 1; i < 8; ++i)
    t.error_frames[i] = j.at("error_frames").at(error_frame_key(i)).get<uint64_t>();
  t.connect_phase_ns = j.at("connect_phase_ns").get<uint64_t>();
  return t;
}

}  // namespace c10m::loadclient
