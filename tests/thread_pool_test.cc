// ThreadPool: every index runs exactly once, nested loops run inline, concurrent callers take
// turns, and ranges cover [0, total) with aligned starts.
#include "common/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace kubemoe {
namespace {

TEST(ThreadPool, RunsEveryIndexOnce) {
  for (int threads : {1, 2, 3, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.ParallelFor(n, [&](int64_t i) { hits[static_cast<size_t>(i)]++; });
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "threads " << threads << " n " << n;
      }
    }
  }
}

TEST(ThreadPool, ZeroMeansTheAvailableCores) {
  ThreadPool pool(0);
  EXPECT_EQ(pool.size(), AvailableCores());
  EXPECT_GE(AvailableCores(), 1);
}

TEST(ThreadPool, CgroupQuotaCapsTheCores) {
  EXPECT_EQ(CoresAllowedByQuota("200000", "100000"), 2);
  EXPECT_EQ(CoresAllowedByQuota("150000", "100000"), 2);  // 1.5 CPUs: two threads, throttled
  EXPECT_EQ(CoresAllowedByQuota("50000\n", "100000\n"), 1);
  EXPECT_EQ(CoresAllowedByQuota("max", "100000"), 0);  // cgroup v2: no limit
  EXPECT_EQ(CoresAllowedByQuota("-1", "100000"), 0);   // cgroup v1: no limit
  EXPECT_EQ(CoresAllowedByQuota("", ""), 0);           // no such files
  EXPECT_EQ(CoresAllowedByQuota("12x", "100000"), 0);
  EXPECT_EQ(CoresAllowedByQuota("100000", "0"), 0);
}

TEST(ThreadPool, UsesMoreThanOneThreadWhenItHasThem) {
  ThreadPool pool(3);
  std::atomic<int> inside{0}, most{0};
  pool.ParallelFor(3, [&](int64_t) {
    const int now = ++inside;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
    // Hold the index until another thread has joined or a bounded wait ends.
    for (int i = 0; i < 2000 && most.load() < 2; ++i) std::this_thread::yield();
    --inside;
  });
  EXPECT_GE(most.load(), 2);
}

TEST(ThreadPool, NestedLoopsRunInlineAndComplete) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(8 * 16);
  pool.ParallelFor(8, [&](int64_t i) {
    const std::thread::id outer = std::this_thread::get_id();
    pool.ParallelFor(16, [&](int64_t j) {
      EXPECT_EQ(std::this_thread::get_id(), outer);  // inline on the task's own thread
      hits[static_cast<size_t>(i * 16 + j)]++;
    });
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ThreadPool, ASingleIndexLeavesThePoolToWhatItCalls) {
  ThreadPool pool(2);
  std::atomic<int> hits{0};
  pool.ParallelFor(1, [&](int64_t) { pool.ParallelFor(100, [&](int64_t) { hits++; }); });
  EXPECT_EQ(hits.load(), 100);
}

TEST(ThreadPool, ConcurrentCallersEachGetTheirWholeLoop) {
  ThreadPool pool(3);
  constexpr int kCallers = 4, kRounds = 50, kN = 64;
  std::vector<std::thread> callers;
  std::vector<std::atomic<int64_t>> sums(kCallers);
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int r = 0; r < kRounds; ++r) {
        pool.ParallelFor(kN, [&](int64_t i) { sums[static_cast<size_t>(c)] += i; });
      }
    });
  }
  for (std::thread& t : callers) t.join();
  for (auto& s : sums) EXPECT_EQ(s.load(), int64_t{kRounds} * (kN * (kN - 1) / 2));
}

TEST(ThreadPool, RangesCoverTheTotalWithAlignedStarts) {
  ThreadPool pool(3);
  for (int64_t total : {0, 1, 15, 16, 17, 100, 1408}) {
    for (int64_t align : {1, 16, 64}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(total));
      std::atomic<int> ranges{0};
      pool.ParallelRanges(
          total, align,
          [&](int64_t b, int64_t e) {
            EXPECT_EQ(b % align, 0);
            EXPECT_LT(b, e);
            ranges++;
            for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
          },
          /*chunks_per_thread=*/2);
      for (auto& h : hits) EXPECT_EQ(h.load(), 1) << total << " / " << align;
      EXPECT_LE(ranges.load(), 6);
    }
  }
}

}  // namespace
}  // namespace kubemoe
