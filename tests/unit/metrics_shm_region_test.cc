// The shared-memory counter region: several real processes write their own worker's
// slots; one reader sums them all.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "metrics/exposition.h"
#include "metrics/shm_counter_region.h"

namespace c10m::metrics {
namespace {

/// Runs `fn` in a child process; returns its exit status (0 = fn returned true).
template <typename F>
int in_child(F fn) {
  const pid_t pid = fork();
  if (pid == 0) _exit(fn() ? 0 : 1);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

TEST(MetricsShmRegion, TwoProcessesSumThroughAnAnonymousRegion) {
  std::string error;
  auto region = ShmCounterRegion::create_anonymous("c10m-test", 2, 3, &error);
  ASSERT_NE(region, nullptr) << error;

  // This process is worker 0; a forked child is worker 1 (inherits the MAP_SHARED map).
  CounterSlots* mine = region->attach_worker(0);
  mine->slot(0)->bytes_in.add(100);
  mine->slot(2)->frames[1].add(7);
  mine->slot(1)->conns_opened.add(4);

  int done_pipe[2];  // child -> parent: counters written
  int exit_pipe[2];  // parent -> child: gauges read, exit now
  ASSERT_EQ(pipe(done_pipe), 0);
  ASSERT_EQ(pipe(exit_pipe), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(done_pipe[0]);
    close(exit_pipe[1]);
    CounterSlots* w = region->attach_worker(1);
    for (size_t s = 0; s < w->capacity(); ++s) {
      w->slot(s)->bytes_in.add(1000);
      w->slot(s)->frames[1].add(1);
      w->slot(s)->conns_opened.add(2);
    }
    w->slot(0)->observe_service(1'000'000);
    // Tell the parent we are done, then stay alive until it has read our gauges.
    char c = 'x';
    if (write(done_pipe[1], &c, 1) != 1) _exit(2);
    if (read(exit_pipe[0], &c, 1) < 0) _exit(3);
    _exit(0);
  }
  // Only the child keeps these ends: a child that dies early gives EOF, not a hang.
  close(done_pipe[1]);
  close(exit_pipe[0]);
  char c;
  ASSERT_EQ(read(done_pipe[0], &c, 1), 1);

  CounterTotals t;
  region->collect(&t);
  EXPECT_EQ(t.bytes_in, 100u + 3 * 1000u);
  EXPECT_EQ(t.frames[1], 7u + 3u);
  EXPECT_EQ(t.conns_open(), 4u + 6u);  // both alive
  EXPECT_EQ(t.service_count, 1u);
  EXPECT_EQ(region->worker_processes(), 2u);
  EXPECT_EQ(region->worker_pid(1), child);
  const auto pids = region->processes();
  EXPECT_EQ(pids.size(), 2u);

  // The exposition labels process_* by pid when several processes report.
  const std::string text = render_metrics(*region);
  EXPECT_NE(text.find("c10m_worker_processes 2\n"), std::string::npos);
  EXPECT_NE(text.find("process_resident_memory_bytes{pid=\"" + std::to_string(child) + "\"}"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("c10m_bytes_in_total 3100\n"), std::string::npos);

  // Let the child exit; its counters stay, its gauges go.
  ASSERT_EQ(write(exit_pipe[1], &c, 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  region->collect(&t);
  EXPECT_EQ(t.bytes_in, 3100u);
  EXPECT_EQ(t.conns_opened, 10u);
  EXPECT_EQ(t.conns_open(), 4u);  // worker 1 is dead: its connections died with it
  EXPECT_EQ(region->worker_processes(), 1u);
  for (int fd : {done_pipe[0], exit_pipe[1]}) close(fd);
}

TEST(MetricsShmRegion, ExecedWorkerOpensByPathAndRestartKeepsCountersMonotonic) {
  const std::string path = "/dev/shm/c10m-test-" + std::to_string(getpid());
  std::string error;
  auto region = ShmCounterRegion::create_file(path, 2, 1, &error);
  ASSERT_NE(region, nullptr) << error;

  // A child that maps the region by path, as an exec'ed worker would.
  auto worker = [&path](uint64_t opened, uint64_t closed) {
    std::string err;
    auto r = ShmCounterRegion::open_file(path, &err);
    if (r == nullptr) return false;
    r->release_path();
    ThreadCounters* c = r->attach_worker(1)->slot(0);
    c->conns_opened.add(opened);
    c->conns_closed.add(closed);
    c->bytes_out.add(10);
    return true;
  };
  EXPECT_EQ(in_child([&] { return worker(5, 1); }), 0);
  CounterTotals t;
  region->collect(&t);
  EXPECT_EQ(t.bytes_out, 10u);
  EXPECT_EQ(t.conns_opened, 5u);
  EXPECT_EQ(t.conns_open(), 0u);  // exited with 4 open: the kernel closed them

  // A replacement worker 1 attaches: counters keep counting up, gauges restart at 0.
  EXPECT_EQ(in_child([&] { return worker(2, 0); }), 0);
  region->collect(&t);
  EXPECT_EQ(t.bytes_out, 20u);
  EXPECT_EQ(t.conns_opened, 7u);
  EXPECT_EQ(region->block(1, 0)->conns_closed.load(), 5u);  // 5 (set at attach) + 0
  region.reset();
  EXPECT_NE(access(path.c_str(), F_OK), 0) << "creator unlinks the file";
}

TEST(MetricsShmRegion, OpenRejectsForeignFiles) {
  const std::string path = "/dev/shm/c10m-test-bad-" + std::to_string(getpid());
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  const std::string junk(4096, 'z');
  fwrite(junk.data(), 1, junk.size(), f);
  fclose(f);
  std::string error;
  EXPECT_EQ(ShmCounterRegion::open_file(path, &error), nullptr);
  EXPECT_NE(error.find("magic"), std::string::npos) << error;
  unlink(path.c_str());
  EXPECT_EQ(ShmCounterRegion::open_file(path, &error), nullptr);
}

TEST(MetricsShmRegion, LayoutIsCacheLineAligned) {
  std::string error;
  auto region = ShmCounterRegion::create_anonymous("c10m-test", 3, 5, &error);
  ASSERT_NE(region, nullptr) << error;
  for (size_t w = 0; w < 3; ++w) {
    for (size_t s = 0; s < 5; ++s) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(region->block(w, s)) % 64, 0u);
    }
  }
  EXPECT_EQ(reinterpret_cast<uintptr_t>(region->block(1, 0)) -
                reinterpret_cast<uintptr_t>(region->block(0, 0)),
            5 * sizeof(ThreadCounters));
  EXPECT_EQ(ShmCounterRegion::create_anonymous("c10m-test", 0, 1, &error), nullptr);
}

}  // namespace
}  // namespace c10m::metrics
