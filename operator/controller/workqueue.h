// A de-duplicating, rate-limited work queue of object keys ("namespace/name"), with the
// semantics controllers rely on (as in client-go's workqueue):
//   - a key waiting in the queue is held once however often it is added;
//   - a key being processed (between Get and Done) is never handed to a second worker; if it is
//     added meanwhile it is queued again when Done is called, so no change is lost;
//   - AddRateLimited delays a key by max(per-key exponential backoff, global token bucket):
//     the n-th consecutive failure waits base_delay * 2^(n-1), capped at max_delay; the bucket
//     admits `qps` keys per second with bursts of `burst`; Forget resets the key's backoff.
// Time comes from an injectable Clock; delayed keys become ready when Get/TryGet see the clock
// pass their due time. Thread-safe.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "common/metrics.h"
#include "common/mutex.h"
#include "operator/controller/clock.h"

namespace kubemoe::op {

struct WorkQueueOptions {
  std::chrono::milliseconds base_delay{5};
  std::chrono::milliseconds max_delay{60000};
  double qps = 10.0;
  int burst = 100;
};

// Optional metrics the queue keeps up to date (nullptr = not kept).
struct WorkQueueMetrics {
  metrics::Gauge* depth = nullptr;      // keys ready to be handed out
  metrics::Counter* adds = nullptr;     // Add calls that queued a key
  metrics::Counter* retries = nullptr;  // AddRateLimited calls
};

class WorkQueue {
 public:
  using Duration = std::chrono::steady_clock::duration;

  explicit WorkQueue(Clock& clock, WorkQueueOptions options = {}, WorkQueueMetrics metrics = {});
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `key` now (no-op when it is already waiting, or after ShutDown).
  void Add(const std::string& key);
  // Queues `key` once `delay` has passed on the clock; an earlier pending due time wins.
  void AddAfter(const std::string& key, Duration delay);
  // Queues `key` after its backoff (see the top of this file) and counts a failure for it.
  void AddRateLimited(const std::string& key);
  // Clears the failure count of `key` (call after it was processed successfully).
  void Forget(const std::string& key);
  // Consecutive AddRateLimited calls for `key` since the last Forget.
  int NumRequeues(const std::string& key) const;
  // The delay AddRateLimited would use for `key` right now, without reserving anything.
  Duration NextBackoff(const std::string& key) const;

  // The next ready key, marking it as processing; nullopt when none is ready.
  std::optional<std::string> TryGet();
  // Blocks until a key is ready; nullopt once ShutDown was called (keys still queued are not
  // handed out, so workers stop promptly). The caller must call Done(key) when finished.
  std::optional<std::string> Get();
  // Ends processing of `key`; it is queued again if it was added while being processed.
  void Done(const std::string& key);

  // Wakes every Get; later adds are ignored.
  void ShutDown();
  bool shutting_down() const;
  // Keys ready now (not counting delayed or processing ones).
  size_t Len() const;
  // Keys waiting for a due time.
  size_t DelayedLen() const;

 private:
  void AddLocked(const std::string& key) KUBEMOE_REQUIRES(mu_);
  void PromoteDueLocked() KUBEMOE_REQUIRES(mu_);
  std::optional<std::string> PopLocked() KUBEMOE_REQUIRES(mu_);
  void UpdateDepthLocked() KUBEMOE_REQUIRES(mu_);

  Clock& clock_;
  const WorkQueueOptions options_;
  const WorkQueueMetrics metrics_;

  mutable Mutex mu_;
  CondVar cv_;
  std::deque<std::string> queue_ KUBEMOE_GUARDED_BY(mu_);  // ready, in order
  std::set<std::string> dirty_ KUBEMOE_GUARDED_BY(mu_);  // need processing
  std::set<std::string> processing_ KUBEMOE_GUARDED_BY(mu_);  // handed out
  std::map<std::string, std::chrono::steady_clock::time_point> delayed_ KUBEMOE_GUARDED_BY(mu_);
  std::map<std::string, int> failures_ KUBEMOE_GUARDED_BY(mu_);
  double tokens_ KUBEMOE_GUARDED_BY(mu_);  // token bucket
  std::chrono::steady_clock::time_point tokens_at_ KUBEMOE_GUARDED_BY(mu_);
  bool shutting_down_ KUBEMOE_GUARDED_BY(mu_) = false;
};

}  // namespace kubemoe::op
