// Work queue semantics (operator/controller/workqueue.h), driven by a fake clock.
#include "operator/controller/workqueue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

namespace kubemoe::op {
namespace {

using std::chrono::milliseconds;

TEST(WorkQueueTest, DeduplicatesWaitingKeys) {
  FakeClock clock;
  WorkQueue q(clock);
  q.Add("ns/a");
  q.Add("ns/b");
  q.Add("ns/a");
  EXPECT_EQ(q.Len(), 2u);
  EXPECT_EQ(q.TryGet(), "ns/a");
  EXPECT_EQ(q.TryGet(), "ns/b");
  EXPECT_EQ(q.TryGet(), std::nullopt);
}

TEST(WorkQueueTest, KeyInProcessingIsNotHandedOutTwiceAndIsRequeuedAfterDone) {
  FakeClock clock;
  WorkQueue q(clock);
  q.Add("k");
  ASSERT_EQ(q.TryGet(), "k");
  q.Add("k");  // changed while a worker holds it
  EXPECT_EQ(q.TryGet(), std::nullopt) << "a second worker must not get k while it is processed";
  q.Add("k");
  q.Done("k");
  EXPECT_EQ(q.TryGet(), "k") << "the add during processing must not be lost";
  q.Done("k");
  EXPECT_EQ(q.TryGet(), std::nullopt) << "two adds during processing give one more pass";
}

TEST(WorkQueueTest, PerItemExponentialBackoffAndForget) {
  FakeClock clock;
  WorkQueueOptions options;
  options.base_delay = milliseconds(10);
  options.max_delay = milliseconds(50);
  options.qps = 1000;
  options.burst = 1000;
  WorkQueue q(clock, options);
  const milliseconds expected[] = {milliseconds(10), milliseconds(20), milliseconds(40),
                                   milliseconds(50), milliseconds(50)};
  for (milliseconds delay : expected) {
    EXPECT_EQ(std::chrono::duration_cast<milliseconds>(q.NextBackoff("k")), delay);
    q.AddRateLimited("k");
    clock.Advance(delay - milliseconds(1));
    EXPECT_EQ(q.TryGet(), std::nullopt) << "ready before its backoff of " << delay.count() << " ms";
    clock.Advance(milliseconds(1));
    ASSERT_EQ(q.TryGet(), "k");
    q.Done("k");
  }
  EXPECT_EQ(q.NumRequeues("k"), 5);
  q.Forget("k");
  EXPECT_EQ(q.NumRequeues("k"), 0);
  EXPECT_EQ(std::chrono::duration_cast<milliseconds>(q.NextBackoff("k")), milliseconds(10));
}

TEST(WorkQueueTest, GlobalTokenBucketSpacesRetriesOfDifferentKeys) {
  FakeClock clock;
  WorkQueueOptions options;
  options.base_delay = milliseconds(1);
  options.qps = 10;   // one token per 100 ms
  options.burst = 2;
  WorkQueue q(clock, options);
  for (const char* key : {"a", "b", "c", "d"}) q.AddRateLimited(key);
  clock.Advance(milliseconds(1));
  // The burst of 2 goes at once; c waits 100 ms and d 200 ms for tokens.
  std::set<std::string> got;
  while (auto k = q.TryGet()) got.insert(*k);
  EXPECT_EQ(got, (std::set<std::string>{"a", "b"}));
  clock.Advance(milliseconds(99));
  EXPECT_EQ(q.TryGet(), "c");
  EXPECT_EQ(q.TryGet(), std::nullopt);
  clock.Advance(milliseconds(100));
  EXPECT_EQ(q.TryGet(), "d");
}

TEST(WorkQueueTest, AddAfterKeepsEarliestDueTime) {
  FakeClock clock;
  WorkQueue q(clock);
  q.AddAfter("k", milliseconds(500));
  q.AddAfter("k", milliseconds(100));
  EXPECT_EQ(q.DelayedLen(), 1u);
  clock.Advance(milliseconds(100));
  EXPECT_EQ(q.TryGet(), "k");
  q.Done("k");
  clock.Advance(milliseconds(500));
  EXPECT_EQ(q.TryGet(), std::nullopt);
}

TEST(WorkQueueTest, ShutDownWakesBlockedGetAndStopsAdds) {
  FakeClock clock;
  WorkQueue q(clock);
  std::atomic<bool> returned{false};
  std::thread worker([&] {
    EXPECT_EQ(q.Get(), std::nullopt);
    returned = true;
  });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(returned.load());
  q.ShutDown();
  worker.join();
  EXPECT_TRUE(returned.load());
  q.Add("late");
  EXPECT_EQ(q.Len(), 0u);
}

TEST(WorkQueueTest, ConcurrentWorkersNeverHoldTheSameKey) {
  WorkQueue q(RealClock());
  std::atomic<int> holding{0};
  std::atomic<int> max_holding{0};
  std::atomic<int> passes{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (auto key = q.Get()) {
        int now = ++holding;
        max_holding = std::max(max_holding.load(), now);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        --holding;
        ++passes;
        q.Done(*key);
      }
    });
  }
  for (int i = 0; i < 300; ++i) {
    q.Add("same");
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  std::this_thread::sleep_for(milliseconds(50));
  q.ShutDown();
  for (auto& t : workers) t.join();
  EXPECT_EQ(max_holding.load(), 1);
  EXPECT_GT(passes.load(), 1);
}

}  // namespace
}  // namespace kubemoe::op
