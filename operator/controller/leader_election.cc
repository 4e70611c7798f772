#include "operator/controller/leader_election.h"

#include <algorithm>
#include <iostream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "operator/k8s/client.h"

namespace kubemoe::op {
namespace {

LeaseRecord RecordFromJson(const nlohmann::json& lease) {
  LeaseRecord r;
  const nlohmann::json spec = lease.value("spec", nlohmann::json::object());
  if (spec.is_object()) {
    r.holder_identity = spec.value("holderIdentity", "");
    r.lease_duration_seconds = spec.value("leaseDurationSeconds", 0);
    r.acquire_time = spec.value("acquireTime", "");
    r.renew_time = spec.value("renewTime", "");
    r.lease_transitions = spec.value("leaseTransitions", 0);
  }
  r.resource_version = lease.value("metadata", nlohmann::json::object()).value("resourceVersion", "");
  return r;
}

class ApiLeaseStore final : public LeaseStore {
 public:
  ApiLeaseStore(k8s::Client& client, std::string ns, std::string name)
      : client_(client), ns_(std::move(ns)), name_(std::move(name)) {}

  k8s::ApiResult<LeaseRecord> Get(std::chrono::milliseconds timeout) override {
    auto got = client_.Get(k8s::Leases(), ns_, name_, "", {.timeout = timeout});
    if (!got.ok()) return got.error();
    return RecordFromJson(*got);
  }
  k8s::ApiResult<LeaseRecord> Create(const LeaseRecord& record,
                                     std::chrono::milliseconds timeout) override {
    auto made = client_.Create(k8s::Leases(), ns_, ToJson(record), {.timeout = timeout});
    if (!made.ok()) return made.error();
    return RecordFromJson(*made);
  }
  k8s::ApiResult<LeaseRecord> Update(const LeaseRecord& record,
                                     std::chrono::milliseconds timeout) override {
    auto put = client_.Update(k8s::Leases(), ns_, name_, ToJson(record), "", {.timeout = timeout});
    if (!put.ok()) return put.error();
    return RecordFromJson(*put);
  }
  std::string Describe() const override { return ns_ + "/" + name_; }

 private:
  nlohmann::json ToJson(const LeaseRecord& r) const {
    nlohmann::json spec = {{"leaseDurationSeconds", r.lease_duration_seconds},
                           {"leaseTransitions", r.lease_transitions}};
    // An empty holder is written as absent, as client-go does on release.
    if (!r.holder_identity.empty()) spec["holderIdentity"] = r.holder_identity;
    if (!r.acquire_time.empty()) spec["acquireTime"] = r.acquire_time;
    if (!r.renew_time.empty()) spec["renewTime"] = r.renew_time;
    nlohmann::json meta = {{"name", name_}, {"namespace", ns_}};
    if (!r.resource_version.empty()) meta["resourceVersion"] = r.resource_version;
    return {{"apiVersion", "coordination.k8s.io/v1"}, {"kind", "Lease"}, {"metadata", meta},
            {"spec", spec}};
  }

  k8s::Client& client_;
  std::string ns_;
  std::string name_;
};

}  // namespace

std::unique_ptr<LeaseStore> MakeApiLeaseStore(k8s::Client& client, std::string ns, std::string name) {
  return std::make_unique<ApiLeaseStore>(client, std::move(ns), std::move(name));
}

LeaderElector::LeaderElector(LeaseStore& store, Clock& clock, LeaderElectionConfig config)
    : store_(store), clock_(clock), config_(std::move(config)) {}

bool LeaderElector::IsLeader() const { return leading_.load() && clock_.Now() < LeadingUntil(); }

std::chrono::steady_clock::time_point LeaderElector::LeadingUntil() const {
  return std::chrono::steady_clock::time_point(
      std::chrono::steady_clock::duration(leading_until_.load()));
}

std::chrono::milliseconds LeaderElector::TimeLeft(
    std::chrono::steady_clock::time_point deadline) const {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_.Now());
  return std::max(left, std::chrono::milliseconds(0));
}

bool LeaderElector::TryAcquireOrRenew() {
  return TryAcquireOrRenew(clock_.Now() + config_.renew_deadline);
}

bool LeaderElector::TryAcquireOrRenew(std::chrono::steady_clock::time_point deadline) {
  // Taken before any request: whatever this attempt writes is valid from no later than now.
  const auto start = clock_.Now();
  std::string wall = FormatRfc3339(clock_.WallNow(), /*micros=*/true);
  LeaseRecord desired;
  desired.holder_identity = config_.identity;
  // Rounded up: other candidates then wait at least lease_duration.
  const auto lease_seconds = std::chrono::ceil<std::chrono::seconds>(config_.lease_duration);
  desired.lease_duration_seconds = static_cast<int>(lease_seconds.count());
  desired.acquire_time = wall;
  desired.renew_time = wall;

  // A write that succeeded: this process leads until renew_deadline after `start`, unless that
  // has already passed (then the next attempt renews).
  auto won = [&](const LeaseRecord& written) {
    observed_ = written;
    have_observed_ = true;
    observed_at_ = clock_.Now();
    leading_until_ = (start + config_.renew_deadline).time_since_epoch().count();
    leading_ = clock_.Now() < start + config_.renew_deadline;
    return leading_.load();
  };

  if (TimeLeft(deadline).count() == 0) return false;
  k8s::ApiResult<LeaseRecord> current = store_.Get(TimeLeft(deadline));
  if (!current.ok()) {
    if (!current.error().IsNotFound()) {
      healthy_ = false;
      return false;
    }
    healthy_ = true;
    if (TimeLeft(deadline).count() == 0) return false;
    k8s::ApiResult<LeaseRecord> made = store_.Create(desired, TimeLeft(deadline));
    if (!made.ok()) return false;
    return won(*made);
  }
  healthy_ = true;
  const LeaseRecord& rec = *current;
  // Expiry is measured from when *we* saw the record change, never from its renewTime; and
  // from when the read returned, the latest the record can have been written.
  if (!have_observed_ || rec.holder_identity != observed_.holder_identity ||
      rec.renew_time != observed_.renew_time || rec.resource_version != observed_.resource_version) {
    observed_ = rec;
    have_observed_ = true;
    observed_at_ = clock_.Now();
  }
  bool held_by_other = !rec.holder_identity.empty() && rec.holder_identity != config_.identity;
  auto duration = rec.lease_duration_seconds > 0 ? std::chrono::seconds(rec.lease_duration_seconds)
                                                 : lease_seconds;
  if (held_by_other && observed_at_ + duration > clock_.Now()) {
    leading_ = false;  // someone else leads: whatever we thought, we do not
    return false;
  }
  if (rec.holder_identity == config_.identity) {
    desired.acquire_time = rec.acquire_time;
    desired.lease_transitions = rec.lease_transitions;
  } else {
    desired.lease_transitions = rec.lease_transitions + 1;
  }
  desired.resource_version = rec.resource_version;
  if (TimeLeft(deadline).count() == 0) return false;
  k8s::ApiResult<LeaseRecord> updated = store_.Update(desired, TimeLeft(deadline));
  if (!updated.ok()) return false;
  return won(*updated);
}

bool LeaderElector::Release() {
  if (!leading_.load() || observed_.holder_identity != config_.identity) return false;
  LeaseRecord released = observed_;
  released.holder_identity.clear();
  released.lease_duration_seconds = 1;
  released.renew_time = FormatRfc3339(clock_.WallNow(), /*micros=*/true);
  // Stop acting first: the release may land even when its answer does not.
  leading_ = false;
  k8s::ApiResult<LeaseRecord> updated = store_.Update(released, config_.renew_deadline);
  if (!updated.ok()) {
    std::cerr << "leader election: releasing " << store_.Describe() << " failed: "
              << updated.error().ToString() << "\n";
    return false;
  }
  observed_ = *updated;
  observed_at_ = clock_.Now();
  return true;
}

void LeaderElector::Wait(std::chrono::steady_clock::duration d) {
  const auto deadline = std::chrono::steady_clock::now() + d;
  MutexLock lock(&mu_);
  while (!stopping_.load() && cv_.WaitUntil(&mu_, deadline)) {
  }
}

void LeaderElector::Stop() {
  MutexLock lock(&mu_);
  stopping_ = true;
  cv_.SignalAll();
}

bool LeaderElector::RenewUntilStoppedOrLost() {
  while (true) {
    // Sleep a retry period, but wake at the end of the term rather than past it.
    Wait(std::min<std::chrono::steady_clock::duration>(config_.retry_period,
                                                       LeadingUntil() - clock_.Now()));
    if (stopping_.load()) return false;
    // The attempt gets only the time left in the current term; a success starts a new one.
    if (clock_.Now() < LeadingUntil() && TryAcquireOrRenew(LeadingUntil())) continue;
    if (!leading_.load() || clock_.Now() >= LeadingUntil()) return true;
  }
}

bool LeaderElector::Run(const std::function<void()>& on_started,
                        const std::function<void(bool lost)>& on_stopped) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(1.0, 1.2);
  auto retry = [&] {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        config_.retry_period * jitter(rng));
  };
  while (true) {
    if (stopping_.load()) return true;
    if (TryAcquireOrRenew()) break;
    Wait(retry());
  }
  std::cerr << "leader election: " << config_.identity << " acquired " << store_.Describe() << "\n";
  // On a thread of its own so that renewals go on while it works.
  std::thread started(on_started);
  bool lost = RenewUntilStoppedOrLost();
  if (lost) {
    leading_ = false;
    const std::string& holder = observed_.holder_identity;
    std::cerr << "leader election: " << config_.identity << " lost " << store_.Describe()
              << (!holder.empty() && holder != config_.identity
                      ? " (now held by " + holder + ")"
                      : " (no renewal within " + std::to_string(config_.renew_deadline.count()) +
                            " ms)")
              << "\n";
    on_stopped(true);  // before waiting for on_started: work must stop now
    started.join();
    return false;
  }
  started.join();
  Release();
  leading_ = false;
  on_stopped(false);
  return true;
}

}  // namespace kubemoe::op
