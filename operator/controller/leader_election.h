// Leader election with a coordination.k8s.io/v1 Lease, following client-go's algorithm:
//   - a candidate takes the Lease when it is unheld or when its holder has not renewed it for
//     leaseDurationSeconds, judged by the candidate's own clock from the moment its read of the
//     changed record *returned* (clocks of different machines are never compared);
//   - the leader counts its term from the moment a successful renewal attempt *started* (the
//     Lease on the server cannot be newer than that), and gives up renew_deadline after it:
//     every Lease request gets only the time left until then as its timeout, never the client's
//     general one. Since renew_deadline < lease_duration, the leader has stopped before any other
//     candidate can see the Lease expire;
//   - every write carries the resourceVersion it read, so two candidates racing for the same
//     Lease cannot both win (the loser gets 409 Conflict);
//   - on graceful shutdown the leader releases the Lease (holder cleared) so a standby takes over
//     at once instead of waiting for expiry.
//
// Threads (Run): the campaign and the renewals run on the caller's thread; on_started runs on a
// thread of its own, so renewals go on while it works (e.g. waits for caches to sync). When
// leadership is lost, on_stopped(true) is called at once, without waiting for on_started: the
// caller is expected to stop all work there, normally by exiting the process, as client-go's
// users do.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/mutex.h"
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
// in tests. Every call must come back within its `timeout` (positive), failing when the store has
// not answered by then: the leader's giving up on time rests on it.
class LeaseStore {
 public:
  virtual ~LeaseStore() = default;
  virtual k8s::ApiResult<LeaseRecord> Get(std::chrono::milliseconds timeout) = 0;
  // Creates the Lease; AlreadyExists if it exists.
  virtual k8s::ApiResult<LeaseRecord> Create(const LeaseRecord& record,
                                             std::chrono::milliseconds timeout) = 0;
  // Replaces the Lease if its resourceVersion is still record.resource_version; Conflict if not.
  virtual k8s::ApiResult<LeaseRecord> Update(const LeaseRecord& record,
                                             std::chrono::milliseconds timeout) = 0;
  // "namespace/name", for messages.
  virtual std::string Describe() const = 0;
};

// The Lease through the API server; each call's timeout becomes its HTTP request timeout.
std::unique_ptr<LeaseStore> MakeApiLeaseStore(k8s::Client& client, std::string ns, std::string name);

struct LeaderElectionConfig {
  std::string identity;  // unique per process, e.g. hostname + "_" + random
  // Written to the Lease in whole seconds, rounded up (others then wait at least this long).
  std::chrono::milliseconds lease_duration{15000};
  // The term after the start of a successful renewal. The next renewal starts a retry period
  // after that one ended, so a leader keeps the Lease while a renewal (GET + PUT) takes less
  // than (renew_deadline - retry_period) / 2.
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
};

class LeaderElector {
 public:
  // REQUIRES: lease_duration > renew_deadline > retry_period > 0.
  LeaderElector(LeaseStore& store, Clock& clock, LeaderElectionConfig config);

  // One attempt to acquire or renew (client-go's tryAcquireOrRenew); its store calls together
  // end by `deadline` (clock time; default: renew_deadline from now). Returns true when this
  // process holds the Lease afterwards and may act on it until LeadingUntil(), which is
  // renew_deadline after this attempt started. Seeing another holder ends leadership at once;
  // a failed call leaves it to run out at LeadingUntil().
  bool TryAcquireOrRenew();
  bool TryAcquireOrRenew(std::chrono::steady_clock::time_point deadline);

  // Campaigns until leading, then starts on_started on a thread of its own and renews every
  // retry period until Stop or until LeadingUntil() passes without a renewal (or another holder
  // is seen). On loss: calls on_stopped(true) at once, then waits for on_started to return. On
  // Stop: waits for on_started to return (it must, promptly, once the caller stops), releases
  // the Lease, calls on_stopped(false). Blocks; waits use real time, so use the real clock.
  // Returns true when it stopped because Stop was called, false when leadership was lost.
  bool Run(const std::function<void()>& on_started,
           const std::function<void(bool lost)>& on_stopped);
  // Makes Run return (releasing the Lease when held). Thread-safe.
  void Stop();
  // Clears the holder if this process holds the Lease (what Run does on Stop); the write gets
  // renew_deadline as its timeout.
  bool Release();

  // True from a successful attempt until leadership is lost or LeadingUntil() passes, whichever
  // is first; so it turns false on time even while a renewal is still waiting for the store.
  bool IsLeader() const;
  // When the current term runs out unless renewed: renew_deadline after the start of the last
  // successful attempt.
  std::chrono::steady_clock::time_point LeadingUntil() const;
  // True when the last attempt got an answer from the store (holding the Lease or not).
  bool Healthy() const { return healthy_.load(); }
  const LeaderElectionConfig& config() const { return config_; }

 private:
  // Renews until Stop (returns false) or loss (returns true).
  bool RenewUntilStoppedOrLost();
  // Time left until `deadline` by the elector's clock; zero when it has passed.
  std::chrono::milliseconds TimeLeft(std::chrono::steady_clock::time_point deadline) const;
  void Wait(std::chrono::steady_clock::duration d);

  LeaseStore& store_;
  Clock& clock_;
  const LeaderElectionConfig config_;
  std::atomic<bool> leading_{false};
  // LeadingUntil(), as clock ticks since the steady epoch (an atomic: IsLeader reads it anywhere).
  std::atomic<std::chrono::steady_clock::rep> leading_until_{0};
  std::atomic<bool> healthy_{false};
  std::atomic<bool> stopping_{false};
  Mutex mu_;    // only for waiting on cv_ (stopping_ is an atomic)
  CondVar cv_;  // wakes Wait on Stop
  // What this process last saw and when (its own clock); touched by the campaign thread only.
  LeaseRecord observed_;
  bool have_observed_ = false;
  std::chrono::steady_clock::time_point observed_at_;
};

}  // namespace kubemoe::op
