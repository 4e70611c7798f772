#include "operator/controller/leader_election.h"

#include <iostream>
#include <random>

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

  k8s::ApiResult<LeaseRecord> Get() override {
    auto got = client_.Get(k8s::Leases(), ns_, name_);
    if (!got.ok()) return got.error();
    return RecordFromJson(*got);
  }
  k8s::ApiResult<LeaseRecord> Create(const LeaseRecord& record) override {
    auto made = client_.Create(k8s::Leases(), ns_, ToJson(record));
    if (!made.ok()) return made.error();
    return RecordFromJson(*made);
  }
  k8s::ApiResult<LeaseRecord> Update(const LeaseRecord& record) override {
    auto put = client_.Update(k8s::Leases(), ns_, name_, ToJson(record));
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

bool LeaderElector::TryAcquireOrRenew() {
  auto now = clock_.Now();
  std::string wall = FormatRfc3339(clock_.WallNow(), /*micros=*/true);
  LeaseRecord desired;
  desired.holder_identity = config_.identity;
  desired.lease_duration_seconds = static_cast<int>(config_.lease_duration.count());
  desired.acquire_time = wall;
  desired.renew_time = wall;

  k8s::ApiResult<LeaseRecord> current = store_.Get();
  if (!current.ok()) {
    if (!current.error().IsNotFound()) {
      healthy_ = false;
      leading_ = false;
      return false;
    }
    healthy_ = true;
    k8s::ApiResult<LeaseRecord> made = store_.Create(desired);
    if (!made.ok()) {
      leading_ = false;
      return false;
    }
    observed_ = *made;
    have_observed_ = true;
    observed_at_ = now;
    leading_ = true;
    return true;
  }
  healthy_ = true;
  const LeaseRecord& rec = *current;
  // Expiry is measured from when *we* saw the record change, never from its renewTime.
  if (!have_observed_ || rec.holder_identity != observed_.holder_identity ||
      rec.renew_time != observed_.renew_time || rec.resource_version != observed_.resource_version) {
    observed_ = rec;
    have_observed_ = true;
    observed_at_ = now;
  }
  bool held_by_other = !rec.holder_identity.empty() && rec.holder_identity != config_.identity;
  auto duration = std::chrono::seconds(rec.lease_duration_seconds > 0 ? rec.lease_duration_seconds
                                                                      : config_.lease_duration.count());
  if (held_by_other && observed_at_ + duration > now) {
    leading_ = false;
    return false;
  }
  if (rec.holder_identity == config_.identity) {
    desired.acquire_time = rec.acquire_time;
    desired.lease_transitions = rec.lease_transitions;
  } else {
    desired.lease_transitions = rec.lease_transitions + 1;
  }
  desired.resource_version = rec.resource_version;
  k8s::ApiResult<LeaseRecord> updated = store_.Update(desired);
  if (!updated.ok()) {
    leading_ = false;
    return false;
  }
  observed_ = *updated;
  observed_at_ = now;
  leading_ = true;
  return true;
}

bool LeaderElector::Release() {
  if (!leading_.load() || observed_.holder_identity != config_.identity) return false;
  LeaseRecord released = observed_;
  released.holder_identity.clear();
  released.lease_duration_seconds = 1;
  released.renew_time = FormatRfc3339(clock_.WallNow(), /*micros=*/true);
  k8s::ApiResult<LeaseRecord> updated = store_.Update(released);
  leading_ = false;
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
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, d, [this] { return stopping_.load(); });
}

void LeaderElector::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
  cv_.notify_all();
}

bool LeaderElector::Run(const std::function<void()>& on_started,
                        const std::function<void()>& on_stopped) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(1.0, 1.2);
  auto retry = [&] {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        config_.retry_period * jitter(rng));
  };
  while (!stopping_.load()) {
    if (TryAcquireOrRenew()) break;
    Wait(retry());
  }
  if (stopping_.load()) return true;
  std::cerr << "leader election: " << config_.identity << " acquired " << store_.Describe() << "\n";
  on_started();
  auto last_renew = clock_.Now();
  bool lost = false;
  while (!stopping_.load()) {
    Wait(config_.retry_period);
    if (stopping_.load()) break;
    if (TryAcquireOrRenew()) {
      last_renew = clock_.Now();
    } else if (clock_.Now() - last_renew > config_.renew_deadline) {
      std::cerr << "leader election: " << config_.identity << " lost " << store_.Describe()
                << " (no renewal within " << config_.renew_deadline.count() << " s)\n";
      lost = true;
      break;
    } else {
      leading_ = true;  // still within the renew deadline: keep acting as leader
    }
  }
  if (!lost) Release();
  leading_ = false;
  on_stopped();
  return !lost;
}

}  // namespace kubemoe::op
