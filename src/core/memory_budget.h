#pragma once
// The memory budget: what every connection of a process holds in pooled blocks (queued
// output, held input, partial frames), summed, against --memory-limit, and the overload
// level that sets the actions an engine takes (docs/PROTOCOL.md "Memory budget and
// overload"). One MemoryBudget per process: with worker processes each gets its share of
// the box's budget, so the bound composes (per box = the sum of the shares).
//
// Accounting is per thread (BudgetAccount) and touches the shared atomic only when a
// thread's holdings cross a whole `chunk` (epoll loops: 1 MiB), so the hot path stays a
// local add. The budget's `used()` is the sum of the threads' reservations: it runs ahead
// of the bytes actually held by less than one chunk per thread.
//
// What an engine must do (the epoll, thread and uring engines do; a new engine must too):
//  1. Give each thread a BudgetAccount and put it in SessionEnv::account: sessions charge
//     and credit it for every block they take and return.
//  2. Call account.refresh() once per loop turn (or per wakeup), and act on
//     account.pressure(): at kStopAccept stop accepting until it falls below; at kShed
//     close the connections holding the most (Session::shed, largest memory_held()
//     first) until the budget is below shed_resume(). Sessions apply kPause and kShrink
//     themselves.
//  3. Count kStopAccept in ThreadCounters::overload_actions (the session counts the rest).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/noncopyable.h"
#include "metrics/counters.h"

namespace c10m::core {

/// Overload levels in the order their actions begin.
enum class Pressure : uint8_t {
  kNone,
  kPause,       // connections holding more than the pressure queue are neither read nor fed
  kShrink,      // and new connections get the pressure queue for their whole life
  kStopAccept,  // and no connection is accepted
  kShed,        // and the connections holding the most are closed (ERROR OVERLOADED or RST)
};
const char* pressure_name(Pressure p);

/// Where the levels begin, in percent of the limit (kShed: 100).
struct BudgetLevels {
  uint32_t pause = 50;
  uint32_t shrink = 70;
  uint32_t stop_accept = 85;
};
/// Parses "50,70,85" (strictly increasing, each 1..99). Returns "" or a message.
std::string parse_budget_levels(const std::string& text, BudgetLevels* out);

/// A process's budget. Any thread.
class MemoryBudget : NonCopyable {
 public:
  /// `limit` 0: no limit (accounting and gauges only, pressure stays kNone).
  explicit MemoryBudget(uint64_t limit, BudgetLevels levels = {});

  uint64_t limit() const { return limit_; }
  const BudgetLevels& levels() const { return levels_; }
  /// Bytes reserved by all accounts (>= the bytes held, by < one chunk per thread).
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  Pressure pressure() const { return pressure_for(used()); }
  Pressure pressure_for(uint64_t used) const;
  /// Bytes at which `p` begins (kShed: the limit). 0 when there is no limit.
  uint64_t threshold(Pressure p) const;
  /// Shedding stops once used() is at or below this (95% of the limit).
  uint64_t shed_resume() const { return limit_ - limit_ / 20; }

  /// Adds `delta` (may be negative) to the reserved total; returns the new total.
  uint64_t reserve(int64_t delta) {
    return used_.fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed) +
           static_cast<uint64_t>(delta);
  }

 private:
  const uint64_t limit_;
  const BudgetLevels levels_;
  uint64_t bounds_[4] = {};  // where kPause, kShrink, kStopAccept, kShed begin
  std::atomic<uint64_t> used_{0};
};

/// One thread's account against a MemoryBudget. Single thread. Holdings are reserved from
/// the budget in whole chunks: the shared atomic moves only when they cross a chunk (with
/// chunk 0, on every charge: the thread engine, one account per connection thread).
/// Also keeps ThreadCounters::memory_budget_bytes (this thread's held bytes) up to date.
class BudgetAccount : NonCopyable {
 public:
  static constexpr size_t kLoopChunk = 1 << 20;

  BudgetAccount(MemoryBudget* budget, size_t chunk, metrics::ThreadCounters* counters);
  ~BudgetAccount();  // returns what it still reserves

  void charge(size_t n) {
    held_ += n;
    if (counters_ != nullptr) counters_->memory_budget_bytes.add(n);
    if (held_ > reserved_) rebalance();
  }
  void credit(size_t n) {
    held_ -= n;
    if (counters_ != nullptr) counters_->memory_budget_bytes.sub(n);
    if (reserved_ - held_ > 2 * chunk_) rebalance();
  }
  size_t held() const { return held_; }
  /// The level as of the last reservation change or refresh().
  Pressure pressure() const { return pressure_; }
  /// Re-reads the budget's level (other threads may have moved it). Engines: each turn.
  void refresh() { pressure_ = budget_ == nullptr ? Pressure::kNone : budget_->pressure(); }
  MemoryBudget* budget() const { return budget_; }

 private:
  void rebalance();

  MemoryBudget* budget_;
  const size_t chunk_;
  metrics::ThreadCounters* counters_;
  size_t held_ = 0;
  size_t reserved_ = 0;
  Pressure pressure_ = Pressure::kNone;
};

/// The budget a process gets by default: `percent` of the memory this process may use
/// (MemAvailable, or the cgroup v2 limit minus what the cgroup already uses when that is
/// lower), divided by `workers`. `how` (optional) says where the figure came from.
uint64_t default_memory_limit(uint32_t percent, uint32_t workers, std::string* how);

}  // namespace c10m::core
