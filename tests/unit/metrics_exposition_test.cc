// The Prometheus exposition: format, labels, cumulative histogram buckets, sums across
// counter blocks, gauges of dead workers.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>

#include "metrics/exposition.h"
#include "metrics/heap_counter_slots.h"

namespace c10m::metrics {
namespace {

/// "name{labels}" -> value, for every sample line; and the TYPE of each family.
struct Parsed {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::map<std::string, int> help_count;
};

Parsed parse(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::string line;
  std::string last_family;
  while (std::getline(in, line)) {
    EXPECT_FALSE(line.empty()) << "empty line in exposition";
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      ++p.help_count[name];
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream ls(line.substr(7));
      std::string name, type;
      ls >> name >> type;
      EXPECT_EQ(p.types.count(name), 0u) << "TYPE twice for " << name;
      p.types[name] = type;
      last_family = name;
      continue;
    }
    const size_t sp = line.rfind(' ');
    const std::string key = line.substr(0, sp);
    const std::string name = key.substr(0, key.find('{'));
    // Every sample belongs to the family declared just above it.
    EXPECT_TRUE(name == last_family || name.rfind(last_family + "_", 0) == 0)
        << name << " after TYPE " << last_family;
    EXPECT_EQ(p.samples.count(key), 0u) << "duplicate series " << key;
    p.samples[key] = std::stod(line.substr(sp + 1));
  }
  return p;
}

TEST(MetricsExposition, SumsEverySlotAndNamesEverySeries) {
  HeapCounterSlots slots(3);
  for (size_t i = 0; i < 3; ++i) {
    ThreadCounters* c = slots.slot(i);
    c->conns_opened.add(10);
    c->conns_closed.add(4);
    c->accept_total.add(11);
    c->accept_errors[static_cast<size_t>(AcceptError::kEmfile)].add(2);
    c->accept_errors[static_cast<size_t>(AcceptError::kOther)].add(1);
    c->bytes_in.add(1000);
    c->bytes_out.add(2000 + i);
    c->frames[1].add(5);           // PING
    c->frames[6].add(1);           // FETCH
    c->protocol_errors[1].add(1);  // FRAME_TOO_LARGE
    c->protocol_errors[6].add(2);  // OVERLOADED
    c->overloaded_total.add(2);
    c->truncated_frames.add(1);
    c->timeouts[static_cast<size_t>(TimeoutKind::kWrite)].add(3);
    c->write_queue_drops.add(3);
    c->write_queue_bytes.add(100);
    c->drain_forced.add(1);
  }
  const std::string text = render_metrics(slots);
  const Parsed p = parse(text);
  EXPECT_EQ(p.samples.at("c10m_conns_open"), 18);
  EXPECT_EQ(p.types.at("c10m_conns_open"), "gauge");
  EXPECT_EQ(p.samples.at("c10m_conns_opened_total"), 30);
  EXPECT_EQ(p.samples.at("c10m_accept_total"), 33);
  EXPECT_EQ(p.types.at("c10m_accept_total"), "counter");
  EXPECT_EQ(p.samples.at("c10m_accept_errors_total{reason=\"EMFILE\"}"), 6);
  EXPECT_EQ(p.samples.at("c10m_accept_errors_total{reason=\"ENFILE\"}"), 0);
  EXPECT_EQ(p.samples.at("c10m_accept_errors_total{reason=\"ENOMEM\"}"), 0);
  EXPECT_EQ(p.samples.at("c10m_accept_errors_total{reason=\"other\"}"), 3);
  EXPECT_EQ(p.samples.at("c10m_bytes_in_total"), 3000);
  EXPECT_EQ(p.samples.at("c10m_bytes_out_total"), 6003);
  EXPECT_EQ(p.samples.at("c10m_frames_total{type=\"PING\"}"), 15);
  EXPECT_EQ(p.samples.at("c10m_frames_total{type=\"ECHO\"}"), 0);
  EXPECT_EQ(p.samples.at("c10m_frames_total{type=\"FETCH\"}"), 3);
  EXPECT_EQ(p.samples.at("c10m_protocol_errors_total{code=\"FRAME_TOO_LARGE\"}"), 3);
  EXPECT_EQ(p.samples.at("c10m_protocol_errors_total{code=\"BAD_STREAM\"}"), 0);
  EXPECT_EQ(p.samples.at("c10m_protocol_errors_total{code=\"OVERLOADED\"}"), 6);
  EXPECT_EQ(p.samples.at("c10m_overloaded_total"), 6);
  EXPECT_EQ(p.samples.at("c10m_truncated_frames_total"), 3);
  EXPECT_EQ(p.samples.at("c10m_timeouts_total{kind=\"idle\"}"), 0);
  EXPECT_EQ(p.samples.at("c10m_timeouts_total{kind=\"frame\"}"), 0);
  EXPECT_EQ(p.samples.at("c10m_timeouts_total{kind=\"write\"}"), 9);
  EXPECT_EQ(p.samples.at("c10m_write_queue_drops_total"), 9);
  EXPECT_EQ(p.samples.at("c10m_write_queue_bytes"), 300);
  EXPECT_EQ(p.samples.at("c10m_drain_forced_total"), 3);
  EXPECT_EQ(p.samples.at("c10m_worker_processes"), 1);
  EXPECT_GE(p.samples.at("c10m_threads"), 1);
  EXPECT_GT(p.samples.at("c10m_allocator_bytes_in_use"), 0);
  // One process: the standard unlabeled process_* series.
  for (const char* name : {"process_resident_memory_bytes", "process_virtual_memory_bytes",
                           "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds"}) {
    ASSERT_EQ(p.samples.count(name), 1u) << name;
  }
  EXPECT_GT(p.samples.at("process_resident_memory_bytes"), 0);
  EXPECT_GT(p.samples.at("process_open_fds"), 0);
  EXPECT_GT(p.samples.at("process_start_time_seconds"), 1.6e9);
  EXPECT_EQ(p.types.at("process_cpu_seconds_total"), "counter");
  // Every family has exactly one HELP.
  for (const auto& [name, type] : p.types) EXPECT_EQ(p.help_count.at(name), 1) << name;
  // Naming: counters end in _total, everything is c10m_ or process_.
  for (const auto& [name, type] : p.types) {
    EXPECT_TRUE(name.rfind("c10m_", 0) == 0 || name.rfind("process_", 0) == 0) << name;
    if (type == "counter") {
      EXPECT_TRUE(name.ends_with("_total")) << name;
    }
  }
}

TEST(MetricsExposition, HistogramBucketsAreCumulative) {
  HeapCounterSlots slots(2);
  slots.slot(0)->observe_service(5'000);    // 5 us   -> le 1e-05
  slots.slot(0)->observe_service(200'000);  // 200 us -> le 0.00025
  slots.slot(1)->observe_service(200'000);
  slots.slot(1)->observe_service(3'000'000'000);  // 3 s    -> +Inf only
  const Parsed p = parse(render_metrics(slots));
  EXPECT_EQ(p.types.at("c10m_frame_service_seconds"), "histogram");
  const std::string b = "c10m_frame_service_seconds_bucket{le=\"";
  EXPECT_EQ(p.samples.at(b + "1e-05\"}"), 1);
  EXPECT_EQ(p.samples.at(b + "5e-05\"}"), 1);
  EXPECT_EQ(p.samples.at(b + "0.0001\"}"), 1);
  EXPECT_EQ(p.samples.at(b + "0.00025\"}"), 3);
  EXPECT_EQ(p.samples.at(b + "0.1\"}"), 3);
  EXPECT_EQ(p.samples.at(b + "1\"}"), 3);
  EXPECT_EQ(p.samples.at(b + "+Inf\"}"), 4);
  EXPECT_EQ(p.samples.at("c10m_frame_service_seconds_count"), 4);
  EXPECT_NEAR(p.samples.at("c10m_frame_service_seconds_sum"), 3.000405, 1e-9);
  // Monotonic in le order as written.
  double prev = -1;
  size_t buckets = 0;
  std::istringstream in(render_metrics(slots));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(b, 0) != 0) continue;
    const double v = std::stod(line.substr(line.rfind(' ') + 1));
    EXPECT_GE(v, prev) << line;
    prev = v;
    ++buckets;
  }
  EXPECT_EQ(buckets, kServiceBucketCount);
}

TEST(MetricsExposition, ConnsOpenSumsAcrossBlocksOpenedInOneClosedInAnother) {
  // The thread engine may count the open on the acceptor's block and the close on the
  // connection thread's block: only the sum is meaningful.
  HeapCounterSlots slots(2);
  slots.slot(0)->conns_opened.add(5);
  slots.slot(1)->conns_closed.add(3);
  CounterTotals t;
  slots.collect(&t);
  EXPECT_EQ(t.conns_open(), 2u);
  slots.slot(1)->conns_closed.add(2);
  slots.collect(&t);
  EXPECT_EQ(t.conns_open(), 0u);
}

TEST(MetricsExposition, DeadWorkerGaugesAreLeftOutButCountersStay) {
  ThreadCounters dead;
  dead.conns_opened.add(7);
  dead.conns_closed.add(2);
  dead.bytes_in.add(50);
  dead.write_queue_bytes.add(9);
  ThreadCounters live;
  live.conns_opened.add(1);
  CounterTotals t;
  t.add(dead, /*live=*/false);
  t.add(live, /*live=*/true);
  EXPECT_EQ(t.conns_open(), 1u);
  EXPECT_EQ(t.write_queue_bytes(), 0u);
  EXPECT_EQ(t.conns_opened, 8u);
  EXPECT_EQ(t.bytes_in, 50u);
}

TEST(MetricsExposition, SeveralProcessesGetPidLabels) {
  Scrape s;
  s.worker_processes = 2;
  ProcessStats a;
  a.pid = 100;
  a.resident_bytes = 1;
  a.threads = 3;
  ProcessStats b;
  b.pid = 200;
  b.resident_bytes = 2;
  b.threads = 4;
  s.processes = {a, b};
  std::string out;
  render_prometheus(s, &out);
  const Parsed p = parse(out);
  EXPECT_EQ(p.samples.at("process_resident_memory_bytes{pid=\"100\"}"), 1);
  EXPECT_EQ(p.samples.at("process_resident_memory_bytes{pid=\"200\"}"), 2);
  EXPECT_EQ(p.samples.count("process_resident_memory_bytes"), 0u);
  EXPECT_EQ(p.samples.at("c10m_threads"), 7);
  EXPECT_EQ(p.samples.at("c10m_worker_processes"), 2);
}

TEST(MetricsExposition, CounterAddIsSingleWriterAndExact) {
  Counter c;
  for (int i = 0; i < 1000; ++i) c.add();
  c.sub(10);
  EXPECT_EQ(c.load(), 990u);
}

TEST(MetricsExposition, ProcessStatsOfSelf) {
  ProcessStats ps;
  ASSERT_TRUE(read_process_stats(getpid(), &ps));
  EXPECT_GT(ps.resident_bytes, 0u);
  EXPECT_GE(ps.virtual_bytes, ps.resident_bytes);
  EXPECT_GE(ps.threads, 1u);
  EXPECT_GE(ps.open_fds, 3u);  // stdin, stdout, stderr at least
  EXPECT_GT(ps.max_fds, ps.open_fds);
  EXPECT_FALSE(read_process_stats(0x7ffffff0, &ps));
}

}  // namespace
}  // namespace c10m::metrics
