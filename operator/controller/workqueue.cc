#include "operator/controller/workqueue.h"

#include <algorithm>
#include <cmath>

namespace kubemoe::op {

using std::chrono::steady_clock;

WorkQueue::WorkQueue(Clock& clock, WorkQueueOptions options, WorkQueueMetrics metrics)
    : clock_(clock), options_(options), metrics_(metrics),
      tokens_(static_cast<double>(std::max(options.burst, 1))), tokens_at_(clock.Now()) {}

void WorkQueue::UpdateDepthLocked() {
  if (metrics_.depth != nullptr) metrics_.depth->Set(static_cast<double>(queue_.size()));
}

void WorkQueue::AddLocked(const std::string& key) {
  if (shutting_down_ || dirty_.count(key) > 0) return;
  dirty_.insert(key);
  if (metrics_.adds != nullptr) metrics_.adds->Inc();
  if (processing_.count(key) > 0) return;  // Done() queues it again
  queue_.push_back(key);
  UpdateDepthLocked();
  cv_.Signal();
}

void WorkQueue::Add(const std::string& key) {
  MutexLock lock(&mu_);
  AddLocked(key);
}

void WorkQueue::AddAfter(const std::string& key, Duration delay) {
  MutexLock lock(&mu_);
  if (shutting_down_) return;
  if (delay <= Duration::zero()) {
    AddLocked(key);
    return;
  }
  auto due = clock_.Now() + delay;
  auto it = delayed_.find(key);
  if (it == delayed_.end()) {
    delayed_.emplace(key, due);
  } else {
    it->second = std::min(it->second, due);
  }
  cv_.SignalAll();  // a sleeping Get may need an earlier wake-up
}

WorkQueue::Duration WorkQueue::NextBackoff(const std::string& key) const {
  MutexLock lock(&mu_);
  auto it = failures_.find(key);
  int failures = it == failures_.end() ? 0 : it->second;
  double delay_s = std::chrono::duration<double>(options_.base_delay).count() *
                   std::pow(2.0, std::min(failures, 62));
  delay_s = std::min(delay_s, std::chrono::duration<double>(options_.max_delay).count());
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(delay_s));
}

void WorkQueue::AddRateLimited(const std::string& key) {
  Duration item_delay = NextBackoff(key);
  MutexLock lock(&mu_);
  if (shutting_down_) return;
  ++failures_[key];
  if (metrics_.retries != nullptr) metrics_.retries->Inc();
  // Token bucket: refill, then reserve one token; a negative balance is a wait.
  auto now = clock_.Now();
  double elapsed = std::chrono::duration<double>(now - tokens_at_).count();
  tokens_ = std::min(static_cast<double>(std::max(options_.burst, 1)), tokens_ + elapsed * options_.qps);
  tokens_at_ = now;
  tokens_ -= 1.0;
  Duration bucket_delay = Duration::zero();
  if (tokens_ < 0 && options_.qps > 0) {
    bucket_delay = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(-tokens_ / options_.qps));
  }
  Duration delay = std::max(item_delay, bucket_delay);
  auto due = now + delay;
  auto it = delayed_.find(key);
  if (it == delayed_.end()) {
    delayed_.emplace(key, due);
  } else {
    it->second = std::min(it->second, due);
  }
  cv_.SignalAll();
}

void WorkQueue::Forget(const std::string& key) {
  MutexLock lock(&mu_);
  failures_.erase(key);
}

int WorkQueue::NumRequeues(const std::string& key) const {
  MutexLock lock(&mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

void WorkQueue::PromoteDueLocked() {
  auto now = clock_.Now();
  for (auto it = delayed_.begin(); it != delayed_.end();) {
    if (it->second <= now) {
      std::string key = it->first;
      it = delayed_.erase(it);
      AddLocked(key);
    } else {
      ++it;
    }
  }
}

std::optional<std::string> WorkQueue::PopLocked() {
  if (queue_.empty()) return std::nullopt;
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  processing_.insert(key);
  dirty_.erase(key);
  UpdateDepthLocked();
  return key;
}

std::optional<std::string> WorkQueue::TryGet() {
  MutexLock lock(&mu_);
  PromoteDueLocked();
  return PopLocked();
}

std::optional<std::string> WorkQueue::Get() {
  MutexLock lock(&mu_);
  while (true) {
    if (shutting_down_) return std::nullopt;
    PromoteDueLocked();
    if (!queue_.empty()) return PopLocked();
    // Sleep until the earliest due time (capped, so a stepped test clock is noticed too).
    auto wait = std::chrono::milliseconds(100);
    if (!delayed_.empty()) {
      auto earliest = delayed_.begin()->second;
      for (const auto& [key, due] : delayed_) earliest = std::min(earliest, due);
      auto until = std::chrono::duration_cast<std::chrono::milliseconds>(earliest - clock_.Now());
      wait = std::clamp(until, std::chrono::milliseconds(1), wait);
    }
    cv_.WaitFor(&mu_, wait);
  }
}

void WorkQueue::Done(const std::string& key) {
  MutexLock lock(&mu_);
  processing_.erase(key);
  if (dirty_.count(key) > 0) {
    queue_.push_back(key);
    UpdateDepthLocked();
    cv_.Signal();
  }
}

void WorkQueue::ShutDown() {
  MutexLock lock(&mu_);
  shutting_down_ = true;
  cv_.SignalAll();
}

bool WorkQueue::shutting_down() const {
  MutexLock lock(&mu_);
  return shutting_down_;
}

size_t WorkQueue::Len() const {
  MutexLock lock(&mu_);
  return queue_.size();
}

size_t WorkQueue::DelayedLen() const {
  MutexLock lock(&mu_);
  return delayed_.size();
}

}  // namespace kubemoe::op
