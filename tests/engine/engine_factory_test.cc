// The engine factory's `--engine auto`, the server's default: uring where the kernel
// allows it, epoll otherwise, and the start-up line naming the choice and why. The decision
// from its inputs (choose_engine_from: io_uring available, kernel.io_uring_disabled, a
// refused probe, flags only epoll serves), then through the server binary: with no
// --engine flag, with --engine auto and under a supervisor it picks what this machine
// allows; with io_uring_setup refused by a seccomp filter (as a container runtime would)
// it falls back to epoll, says why, and serves.
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <string>
#include <vector>

#include "engine/engine.h"
#include "test_client.h"
#include "test_util.h"

namespace c10m::test {
namespace {

using engine::EngineKind;

constexpr const char* kRelease = "6.18.44-cloud-amd64";

EngineKind choose(const core::ServerConfig& c, const std::string& uring_error,
                  const std::string& disabled, std::string* why) {
  return engine::choose_engine_from(c, uring_error, disabled, kRelease, why);
}

TEST(EngineChoice, UringWhereTheKernelAllowsIt) {
  std::string why;
  EXPECT_EQ(choose({}, "", "0", &why), EngineKind::kUring);
  EXPECT_EQ(why, "io_uring available, kernel 6.18");
  EXPECT_EQ(engine::choose_engine_from({}, "", "", "7.0", &why), EngineKind::kUring);
  EXPECT_EQ(why, "io_uring available, kernel 7.0");
}

TEST(EngineChoice, EpollWhenTheSysctlDisablesIoUring) {
  const std::string refused = "io_uring is disabled for this process (...)";
  std::string why;
  EXPECT_EQ(choose({}, refused, "2", &why), EngineKind::kEpoll);
  EXPECT_EQ(why, "io_uring disabled by kernel.io_uring_disabled=2");
  EXPECT_EQ(choose({}, refused, "1", &why), EngineKind::kEpoll);
  EXPECT_EQ(why, "io_uring disabled by kernel.io_uring_disabled=1");
}

TEST(EngineChoice, EpollWhenTheProbeFailsForAnotherReason) {
  std::string why;
  EXPECT_EQ(choose({}, "io_uring is too old here: X", "0", &why), EngineKind::kEpoll);
  EXPECT_EQ(why, "io_uring unavailable, kernel 6.18: io_uring is too old here: X");
  // No sysctl (a kernel older than 6.6): the probe's reason.
  EXPECT_EQ(choose({}, "io_uring is not available: ENOSYS", "", &why), EngineKind::kEpoll);
  EXPECT_EQ(why, "io_uring unavailable, kernel 6.18: io_uring is not available: ENOSYS");
}

TEST(EngineChoice, FlagsThatOnlyEpollServesPickEpoll) {
  std::string why;
  core::ServerConfig c;
  c.fetch_send = core::FetchSend::kSendfile;
  EXPECT_EQ(choose(c, "", "0", &why), EngineKind::kEpoll);
  EXPECT_EQ(why, "--fetch-send sendfile needs epoll");
  c.fetch_send = core::FetchSend::kZerocopy;
  EXPECT_EQ(choose(c, "", "0", &why), EngineKind::kEpoll);
  EXPECT_EQ(why, "--fetch-send zerocopy needs epoll");
  c.fetch_send = core::FetchSend::kCopy;
  c.ingest_trunc = true;
  EXPECT_EQ(choose(c, "", "0", &why), EngineKind::kEpoll);
  EXPECT_EQ(why, "--ingest trunc needs epoll");
}

/// The start-up line auto gives on this machine ("engine uring (auto: io_uring available,
/// kernel " or "engine epoll (auto: ").
std::string expected_line_start() {
  return engine::engine_unavailable_reason(EngineKind::kUring).empty()
             ? "engine uring (auto: io_uring available, kernel "
             : "engine epoll (auto: ";
}

void expect_serves(ServerProcess& server) {
  TestClient c;
  ASSERT_EQ(c.connect(server.port()), 0);
  ASSERT_TRUE(c.write_all(cat({ping(), echo("auto")})));
  auto f = c.read_frame();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->type, 0x01);
  f = c.read_frame();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->type, 0x02);
  EXPECT_EQ(f->payload, Bytes({'a', 'u', 't', 'o'}));
}

class EngineAuto : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(EngineAuto, PicksWhatTheKernelAllowsAndSaysWhy) {
  ServerProcess server;
  std::vector<std::string> args = GetParam();
  args.insert(args.end(), {"--metrics-addr", "off"});
  ASSERT_TRUE(server.start(args)) << server.stderr_text();
  EXPECT_NE(server.stderr_text().find(expected_line_start()), std::string::npos)
      << server.stderr_text();
  expect_serves(server);
  expect_clean_exit(server);
}

INSTANTIATE_TEST_SUITE_P(Flags, EngineAuto,
                         ::testing::Values(std::vector<std::string>{},
                                           std::vector<std::string>{"--engine", "auto"},
                                           std::vector<std::string>{"--workers", "2"}),
                         [](const auto& info) {
                           return info.param.empty()            ? std::string("NoEngineFlag")
                                  : info.param[0] == "--engine" ? std::string("EngineAuto")
                                                                : std::string("TwoWorkers");
                         });

/// In the server's child: io_uring_setup fails with EPERM (a seccomp filter, as a container
/// runtime installs one).
void forbid_io_uring() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(std::size(filter)), filter};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
    _exit(126);
}

TEST(EngineAutoRefused, FallsBackToEpollAndSaysWhy) {
  ServerProcess server;
  server.set_child_setup(forbid_io_uring);
  ASSERT_TRUE(server.start({"--metrics-addr", "off"})) << server.stderr_text();
  const std::string err = server.stderr_text();
  // "unavailable, kernel X.Y: io_uring is disabled for this process (...)" here, or
  // "disabled by kernel.io_uring_disabled=N" where the sysctl is set too.
  EXPECT_NE(err.find("engine epoll (auto: io_uring "), std::string::npos) << err;
  EXPECT_TRUE(err.find("io_uring is disabled") != std::string::npos ||
              err.find("kernel.io_uring_disabled=") != std::string::npos)
      << err;
  expect_serves(server);
  expect_clean_exit(server);
}

}  // namespace
}  // namespace c10m::test
