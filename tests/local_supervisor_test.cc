// `kubemoe up`'s supervisor with real child processes (/bin/sh): restarts with backoff and says
// how a process ended, gives up on a crash loop, stops the cluster when a process that must not
// restart exits, and stops everything on request. Backoffs are shortened so the test is quick;
// every wait is bounded.
#include "local/supervisor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "tests/temp_dir.h"

namespace kubemoe::local {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

SupervisedProcess Shell(const std::string& name, const std::string& script,
                        const std::string& dir, bool restart = true) {
  return SupervisedProcess{ProcessSpec{name, {"-c", script}, {}}, "/bin/sh",
                           dir + "/" + name + ".log", restart};
}

// Polls until the supervisor gives up (returns its reason) or `limit` passes ("" then).
std::string PollUntilStopped(Supervisor& s, std::chrono::seconds limit) {
  const auto until = Clock::now() + limit;
  std::string why;
  while (Clock::now() < until) {
    if (!s.Poll(&why)) return why;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return "";
}

TEST(Supervisor, RestartsWithBackoffThenGivesUpOnACrashLoop) {
  TempDir dir;
  std::ostringstream log;
  Supervisor s(log, dir.path() + "/processes.json");
  s.initial_backoff = std::chrono::milliseconds(10);
  s.max_restarts = 3;
  ASSERT_TRUE(s.Start(Shell("worker-0", "exit 3", dir.path())).ok());
  const std::string why = PollUntilStopped(s, std::chrono::seconds(20));
  EXPECT_THAT(why, HasSubstr("worker-0 keeps dying (4 exits in a row, the last with exit code 3)"));
  EXPECT_THAT(log.str(), HasSubstr("worker-0 (pid "));
  EXPECT_THAT(log.str(), HasSubstr("exited with exit code 3; restarting in 0.01 s (restart 1"));
  EXPECT_THAT(log.str(), HasSubstr("restarting in 0.04 s (restart 3 of at most 3)"));
}

TEST(Supervisor, AProcessThatMustNotRestartStopsTheCluster) {
  TempDir dir;
  std::ostringstream log;
  Supervisor s(log, "");
  ASSERT_TRUE(s.Start(Shell("worker-0", "sleep 30", dir.path())).ok());
  ASSERT_TRUE(s.Start(Shell("router", "kill -9 $$", dir.path(), /*restart=*/false)).ok());
  const std::string why = PollUntilStopped(s, std::chrono::seconds(20));
  EXPECT_THAT(why, HasSubstr("router (pid "));
  EXPECT_THAT(why, HasSubstr("exited with killed by signal 9"));
  s.StopAll(std::chrono::seconds(10));
  EXPECT_EQ(s.pid("worker-0"), -1);
}

TEST(Supervisor, KilledWorkerIsRestartedAndItsNewPidRecorded) {
  TempDir dir;
  std::ostringstream log;
  Supervisor s(log, dir.path() + "/processes.json");
  s.initial_backoff = std::chrono::milliseconds(10);
  ASSERT_TRUE(s.Start(Shell("worker-1", "sleep 30", dir.path())).ok());
  const pid_t first = s.pid("worker-1");
  ASSERT_GT(first, 0);
  ::kill(first, SIGKILL);
  const auto until = Clock::now() + std::chrono::seconds(20);
  std::string why;
  while (Clock::now() < until && (s.pid("worker-1") == first || s.pid("worker-1") <= 0)) {
    ASSERT_TRUE(s.Poll(&why)) << why;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GT(s.pid("worker-1"), 0);
  EXPECT_NE(s.pid("worker-1"), first);
  EXPECT_THAT(log.str(), HasSubstr("exited with killed by signal 9 (Killed)"));
  s.StopAll();
  EXPECT_EQ(s.pid("worker-1"), -1);
}

TEST(Supervisor, DescribesExits) {
  EXPECT_EQ(DescribeExit(3 << 8), "exit code 3");
}

}  // namespace
}  // namespace kubemoe::local
