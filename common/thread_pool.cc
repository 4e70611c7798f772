#include "common/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <fstream>
#include <string>

namespace kubemoe {
namespace {

// True on pool workers and on a caller while it runs its share of a loop: a ParallelFor made
// there runs inline (see the header).
thread_local bool t_inside_pool_task = false;

// How long an idle worker polls for the next loop before sleeping. Decode issues a loop every
// few tens of microseconds; waking a sleeping thread costs about as much.
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(50);

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

int CoresAllowedByQuota(std::string_view quota, std::string_view period) {
  auto parse = [](std::string_view text, int64_t* out) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
    return ec == std::errc() && end == text.data() + text.size() && *out > 0;
  };
  int64_t q = 0, p = 0;
  if (!parse(quota, &q) || !parse(period, &p)) return 0;  // "max", "-1" or garbage: no limit
  return static_cast<int>(std::min<int64_t>((q + p - 1) / p, 1 << 20));
}

int AvailableCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int cores = sched_getaffinity(0, sizeof set, &set) == 0
                  ? CPU_COUNT(&set)
                  : static_cast<int>(std::thread::hardware_concurrency());
  auto read = [](const char* path) {
    std::ifstream in(path);
    std::string text;
    std::getline(in, text);
    return text;
  };
  int quota_cores = 0;
  const std::string v2 = read("/sys/fs/cgroup/cpu.max");  // "<quota|max> <period>"
  if (const size_t space = v2.find(' '); space != std::string::npos) {
    quota_cores = CoresAllowedByQuota(std::string_view(v2).substr(0, space),
                                      std::string_view(v2).substr(space + 1));
  } else {
    quota_cores = CoresAllowedByQuota(read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
                                      read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"));
  }
  if (quota_cores > 0) cores = std::min(cores, quota_cores);
  return std::max(cores, 1);
}

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = AvailableCores();
  workers_.reserve(static_cast<size_t>(threads - 1));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  work_cv_.SignalAll();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t)>& task) {
  if (n <= 0) return;
  if (n == 1 || workers_.empty() || t_inside_pool_task) {
    // Nothing to share, or already inside a task: run here. A single index keeps the pool
    // available to what that index calls.
    const bool was_inside = t_inside_pool_task;
    if (n > 1) t_inside_pool_task = true;
    for (int64_t i = 0; i < n; ++i) task(i);
    t_inside_pool_task = was_inside;
    return;
  }
  MutexLock caller(&caller_mu_);
  {
    MutexLock lock(&mu_);
    task_ = &task;
    n_ = n;
    next_.store(0, std::memory_order_relaxed);
    busy_workers_ = static_cast<int>(workers_.size());
    ++generation_;
    published_generation_.store(generation_, std::memory_order_release);
  }
  work_cv_.SignalAll();
  t_inside_pool_task = true;
  RunIndices();
  t_inside_pool_task = false;
  // Every worker must have seen this loop before the next one may be published.
  MutexLock lock(&mu_);
  while (busy_workers_ > 0) done_cv_.Wait(&mu_);
}

void ThreadPool::ParallelRanges(int64_t total, int64_t align,
                                const std::function<void(int64_t, int64_t)>& task,
                                int chunks_per_thread) {
  if (total <= 0) return;
  align = std::max<int64_t>(align, 1);
  const int64_t units = (total + align - 1) / align;
  const int64_t chunks =
      std::min<int64_t>(units, static_cast<int64_t>(size()) * std::max(chunks_per_thread, 1));
  ParallelFor(chunks, [&](int64_t c) {
    const int64_t begin = std::min(total, units * c / chunks * align);
    const int64_t end = std::min(total, units * (c + 1) / chunks * align);
    if (begin < end) task(begin, end);
  });
}

void ThreadPool::RunIndices() {
  for (;;) {
    const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n_) return;
    (*task_)(i);
  }
}

void ThreadPool::WorkerLoop() {
  t_inside_pool_task = true;
  uint64_t seen = 0;
  for (;;) {
    const auto spin_until = std::chrono::steady_clock::now() + kSpinBeforeSleep;
    while (published_generation_.load(std::memory_order_acquire) == seen &&
           std::chrono::steady_clock::now() < spin_until) {
      for (int i = 0; i < 64; ++i) CpuRelax();
    }
    {
      MutexLock lock(&mu_);
      while (!stopping_ && generation_ == seen) work_cv_.Wait(&mu_);
      if (stopping_) return;
      seen = generation_;
    }
    RunIndices();
    MutexLock lock(&mu_);
    if (--busy_workers_ == 0) done_cv_.Signal();
  }
}

}  // namespace kubemoe
