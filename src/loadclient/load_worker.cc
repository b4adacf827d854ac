#include "loadclient/load_worker.h"

#include "loadclient/direct_load_loop.h"
#include "loadclient/epoll_load_loop.h"

namespace c10m::loadclient {

LoadWorker::LoadWorker(const LoadConfig& config, const PayloadPattern& pattern,
                       std::vector<uint64_t> global_ids, double ramp_per_s) {
  if (config.io == IoMode::kDirect)
    loop_ = std::make_unique<DirectLoadLoop>(config, pattern, std::move(global_ids), ramp_per_s);
  else
    loop_ = std::make_unique<EpollLoadLoop>(config, pattern, std::move(global_ids), ramp_per_s);
}

LoadWorker::~LoadWorker() = default;

std::string LoadWorker::run() { return loop_->run(); }
void LoadWorker::stop() { loop_->stop(); }
const WorkerCounters& LoadWorker::counters() const { return loop_->counters(); }
void LoadWorker::take_interval(HdrHistogram* into) { loop_->take_interval(into); }
const HdrHistogram& LoadWorker::measured() const { return loop_->measured(); }
std::string LoadWorker::first_connect_error() const { return loop_->first_connect_error(); }
size_t LoadWorker::conn_struct_bytes() { return sizeof(Conn); }

}  // namespace c10m::loadclient
