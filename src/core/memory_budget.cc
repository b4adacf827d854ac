#include "core/memory_budget.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include "base/units.h"

namespace c10m::core {

const char* pressure_name(Pressure p) {
  switch (p) {
    case Pressure::kNone:
      return "none";
    case Pressure::kPause:
      return "pause";
    case Pressure::kShrink:
      return "shrink";
    case Pressure::kStopAccept:
      return "stop-accept";
    case Pressure::kShed:
      return "shed";
  }
  return "?";
}

std::string parse_budget_levels(const std::string& text, BudgetLevels* out) {
  uint32_t v[3] = {};
  size_t pos = 0;
  for (int i = 0; i < 3; ++i) {
    const size_t end = i < 2 ? text.find(',', pos) : text.size();
    if (end == std::string::npos) return "expected three percentages, e.g. 50,70,85";
    const char* b = text.data() + pos;
    const char* e = text.data() + end;
    auto [ptr, ec] = std::from_chars(b, e, v[i]);
    if (ec != std::errc() || ptr != e || v[i] < 1 || v[i] > 99)
      return fmt::format("'{}' is not a percentage 1..99", std::string(b, e));
    if (i > 0 && v[i] <= v[i - 1]) return "the percentages must increase (pause < shrink < stop)";
    pos = end + 1;
  }
  *out = BudgetLevels{v[0], v[1], v[2]};
  return "";
}

MemoryBudget::MemoryBudget(uint64_t limit, BudgetLevels levels) : limit_(limit), levels_(levels) {
  if (limit_ == 0) return;
  const uint32_t pct[3] = {levels.pause, levels.shrink, levels.stop_accept};
  for (int i = 0; i < 3; ++i) bounds_[i] = limit_ / 100 * pct[i] + limit_ % 100 * pct[i] / 100;
  bounds_[3] = limit_;
}

Pressure MemoryBudget::pressure_for(uint64_t used) const {
  if (limit_ == 0 || used < bounds_[0]) return Pressure::kNone;
  if (used < bounds_[1]) return Pressure::kPause;
  if (used < bounds_[2]) return Pressure::kShrink;
  if (used < bounds_[3]) return Pressure::kStopAccept;
  return Pressure::kShed;
}

uint64_t MemoryBudget::threshold(Pressure p) const {
  if (limit_ == 0 || p == Pressure::kNone) return 0;
  return bounds_[static_cast<int>(p) - 1];
}

BudgetAccount::BudgetAccount(MemoryBudget* budget, size_t chunk, metrics::ThreadCounters* counters)
    : budget_(budget), chunk_(chunk), counters_(counters) {
  refresh();
}

BudgetAccount::~BudgetAccount() {
  if (budget_ != nullptr && reserved_ != 0) budget_->reserve(-static_cast<int64_t>(reserved_));
  if (counters_ != nullptr && held_ != 0) counters_->memory_budget_bytes.sub(held_);
}

void BudgetAccount::rebalance() {
  size_t want = held_;
  if (chunk_ != 0) {
    want = (held_ + chunk_ - 1) / chunk_ * chunk_;
    if (want < reserved_) want += chunk_;  // shrinking: keep one chunk of headroom
  }
  if (want == reserved_) return;
  const int64_t delta = static_cast<int64_t>(want) - static_cast<int64_t>(reserved_);
  reserved_ = want;
  if (budget_ != nullptr) pressure_ = budget_->pressure_for(budget_->reserve(delta));
}

namespace {

uint64_t meminfo_kib(const char* key) {
  std::ifstream f("/proc/meminfo");
  std::string line;
  const size_t n = std::char_traits<char>::length(key);
  while (std::getline(f, line)) {
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') {
      std::istringstream in(line.substr(n + 1));
      uint64_t v = 0;
      in >> v;
      return v;
    }
  }
  return 0;
}

/// The cgroup v2 memory limit of this process minus what its cgroup uses; 0 if none.
uint64_t cgroup_room(std::string* where) {
  std::ifstream cg("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(cg, line)) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  if (path.empty()) return 0;
  const std::string dir = "/sys/fs/cgroup" + (path == "/" ? std::string() : path);
  std::ifstream mx(dir + "/memory.max");
  std::string max;
  if (!(mx >> max) || max == "max") return 0;
  uint64_t limit = 0;
  std::istringstream(max) >> limit;
  uint64_t current = 0;
  std::ifstream cur(dir + "/memory.current");
  cur >> current;
  *where = dir;
  return limit > current ? limit - current : 1;
}

}  // namespace

uint64_t default_memory_limit(uint32_t percent, uint32_t workers, std::string* how) {
  const uint64_t available = meminfo_kib("MemAvailable") * 1024;
  std::string cg;
  const uint64_t room = cgroup_room(&cg);
  uint64_t base = available;
  std::string from = fmt::format("MemAvailable {}", format_size(available));
  if (room != 0 && room < base) {
    base = room;
    from = fmt::format("cgroup {} room {}", cg, format_size(room));
  }
  if (workers == 0) workers = 1;
  const uint64_t limit = base / 100 * percent / workers;
  if (how != nullptr) {
    *how = workers > 1 ? fmt::format("{}% of {}, divided among {} workers", percent, from, workers)
                       : fmt::format("{}% of {}", percent, from);
  }
  return limit;
}

}  // namespace c10m::core
