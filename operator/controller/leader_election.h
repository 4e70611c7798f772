// Leader election with a coordination.k8s.io/v1 Lease, following client-go's algorithm:
//   - a candidate takes the Lease when it is unheld or when its holder has not renewed it for
//     leaseDurationSeconds, judged by the candidate's own clock from the moment it last saw the
//     record change (clocks of different machines are never compared);
//   - the leader renews every retry period and steps down when it has not renewed for the
//     renew deadline;
//   - every write carries the resourceVersion it read, so two candidates racing for the same
//     Lease cannot both win (the loser gets 409 Conflict);
//   - on graceful shutdown the leader releases the Lease (holder cleared) so a standby takes over
//     at once instead of waiting for expiry.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "operator/controller/clock.h"
#include "operator/k8s/api_error.h"

namespace kubemoe::k8s {
class Client;
}

namespace kubemoe::op {

// The Lease spec fields leader election uses, and the object's resourceVersion.
struct LeaseRecord {
  std::string holder_identity;
  int lease_duration_seconds = 0;
  std::string acquire_time;  // RFC 3339 MicroTime
  std::string renew_time;
  int lease_transitions = 0;
  std::string resource_version;

  bool operator==(const LeaseRecord&) const = default;
};

// Where the Lease lives. Implementations: the API server (MakeApiLeaseStore) and in-memory fakes
// in tests.
class LeaseStore {
 public:
  virtual ~LeaseStore() = default;
  virtual k8s::ApiResult<LeaseRecord> Get() = 0;
  // Creates the Lease; AlreadyExists if it exists.
  virtual k8s::ApiResult<LeaseRecord> Create(const LeaseRecord& record) = 0;
  // Replaces the Lease if its resourceVersion is still record.resource_version; Conflict if not.
  virtual k8s::ApiResult<LeaseRecord> Update(const LeaseRecord& record) = 0;
  // "namespace/name", for messages.
  virtual std::string Describe() const = 0;
};

std::unique_ptr<LeaseStore> MakeApiLeaseStore(k8s::Client& client, std::string ns, std::string name);

struct LeaderElectionConfig {
  std::string identity;  // unique per process, e.g. hostname + "_" + random
  std::chrono::seconds lease_duration{15};
  std::chrono::seconds renew_deadline{10};
  std::chrono::seconds retry_period{2};
};

class LeaderElector {
 public:
  // REQUIRES: lease_duration > renew_deadline > retry_period > 0.
  LeaderElector(LeaseStore& store, Clock& clock, LeaderElectionConfig config);

  // One attempt to acquire or renew (client-go's tryAcquireOrRenew). Returns true when this
  // process holds the Lease afterwards.
  bool TryAcquireOrRenew();

  // Campaigns until leading, calls on_started, renews until `Stop` or a missed renew deadline,
  // then calls on_stopped (after releasing the Lease on Stop). Blocks; waits use real time.
  // Returns true when it stopped because Stop was called, false when leadership was lost.
  bool Run(const std::function<void()>& on_started, const std::function<void()>& on_stopped);
  // Makes Run return (releasing the Lease when held). Thread-safe.
  void Stop();
  // Clears the holder if this process holds the Lease (what Run does on Stop).
  bool Release();

  bool IsLeader() const { return leading_.load(); }
  // True when the last attempt got an answer from the store (holding the Lease or not).
  bool Healthy() const { return healthy_.load(); }
  const LeaderElectionConfig& config() const { return config_; }

 private:
  void Wait(std::chrono::steady_clock::duration d);

  LeaseStore& store_;
  Clock& clock_;
  const LeaderElectionConfig config_;
  std::atomic<bool> leading_{false};
  std::atomic<bool> healthy_{false};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  // What this process last saw and when (its own clock); touched by the campaign thread only.
  LeaseRecord observed_;
  bool have_observed_ = false;
  std::chrono::steady_clock::time_point observed_at_;
};

}  // namespace kubemoe::op
