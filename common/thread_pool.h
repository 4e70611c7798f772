// The one pool of compute threads a forward pass runs on: `ParallelFor` splits a loop over the
// pool's workers and the calling thread, and returns when every index is done.
//
//   ThreadPool pool(4);  // 3 workers + the caller
//   pool.ParallelFor(n_heads, [&](int64_t h) { AttendHead(h); });
//
// Contracts:
// - One loop at a time: concurrent callers (a worker's compute threads) take turns.
// - A ParallelFor called from inside a task runs its loop inline on that thread, so nested code
//   (an expert that splits its rows) stays correct without oversubscribing the cores.
// - Indices are handed out dynamically (an atomic counter), so uneven tasks balance; a task must
//   not depend on which thread runs it. Results are independent of the thread count as long as
//   each index writes its own outputs.
// - Idle workers sleep on a condition variable after a short spin: on a shared machine a
//   spinning pool steals the cores it would wait for.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string_view>
#include <thread>
#include <vector>

#include "common/mutex.h"

namespace kubemoe {

// The cores this process may use, at least 1: the CPUs it may run on (sched_getaffinity), capped
// by its cgroup's CPU quota where one is set (a Kubernetes CPU limit is a quota, not a CPU set:
// a pod limited to 4 CPUs on a 64-core node must not start 64 threads). The quota is read from
// /sys/fs/cgroup/cpu.max (cgroup v2), else cpu.cfs_quota_us / cpu.cfs_period_us (v1).
int AvailableCores();

// The whole cores a CFS quota allows, rounded up: quota / period, e.g. ("150000", "100000") -> 2.
// 0 when there is no limit ("max" or "-1") or the text is not a quota.
int CoresAllowedByQuota(std::string_view quota, std::string_view period);

class ThreadPool {
 public:
  // `threads` >= 1 counts the caller: threads - 1 workers are started. 0 means AvailableCores().
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs task(i) for every i in [0, n) and returns when all are done.
  void ParallelFor(int64_t n, const std::function<void(int64_t)>& task);

  // Splits [0, total) into at most size() * chunks_per_thread ranges whose starts are multiples
  // of `align` (the last one ends at total) and runs task(begin, end) on each.
  void ParallelRanges(int64_t total, int64_t align,
                      const std::function<void(int64_t begin, int64_t end)>& task,
                      int chunks_per_thread = 1);

 private:
  void WorkerLoop();
  // Takes indices of the current job until none is left.
  void RunIndices();

  Mutex caller_mu_;  // one ParallelFor at a time
  Mutex mu_;
  CondVar work_cv_;
  CondVar done_cv_;
  uint64_t generation_ KUBEMOE_GUARDED_BY(mu_) = 0;
  bool stopping_ KUBEMOE_GUARDED_BY(mu_) = false;
  int busy_workers_ KUBEMOE_GUARDED_BY(mu_) = 0;
  // The current job; written before generation_ is bumped under mu_, read by workers after.
  const std::function<void(int64_t)>* task_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<uint64_t> published_generation_{0};
  std::vector<std::thread> workers_;
};

}  // namespace kubemoe
