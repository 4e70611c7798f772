// A mutex, its scoped lock and a condition variable that clang's thread-safety analysis
// understands (libstdc++'s std::mutex carries no annotations, so members guarded by a
// std::mutex could not be checked). Thin wrappers: the same cost and semantics as std::mutex,
// std::lock_guard and std::condition_variable.
//
// Waiting: write the predicate as a loop in the function that holds the lock, so the analysis
// sees the guarded reads under the lock (a lambda predicate would be analysed on its own):
//   MutexLock lock(&mu_);
//   while (queue_.empty() && !stopping_) cv_.Wait(&mu_);
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "common/thread_annotations.h"

namespace kubemoe {

class KUBEMOE_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() KUBEMOE_ACQUIRE() { mu_.lock(); }
  void Unlock() KUBEMOE_RELEASE() { mu_.unlock(); }
  // Tells the analysis the caller holds the lock where it cannot see it (use sparingly).
  void AssertHeld() KUBEMOE_ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` for the enclosing scope.
class KUBEMOE_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) KUBEMOE_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() KUBEMOE_RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// A condition variable (Abseil style: each wait names the mutex, so the analysis can check that
// the caller holds it). The mutex is released while blocked and held again on return. Wakeups may
// be spurious: wait in a loop.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void Wait(Mutex* mu) KUBEMOE_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // Returns false when `deadline` passed (the caller rechecks its condition either way).
  template <typename Clock, typename Duration>
  bool WaitUntil(Mutex* mu, const std::chrono::time_point<Clock, Duration>& deadline)
      KUBEMOE_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    bool timed_out = cv_.wait_until(lock, deadline) == std::cv_status::timeout;
    lock.release();
    return !timed_out;
  }
  // Returns false when `timeout` elapsed.
  template <typename Rep, typename Period>
  bool WaitFor(Mutex* mu, const std::chrono::duration<Rep, Period>& timeout) KUBEMOE_REQUIRES(mu) {
    return WaitUntil(mu, std::chrono::steady_clock::now() + timeout);
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace kubemoe
