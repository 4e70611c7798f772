// Lease-based leader election (operator/controller/leader_election.h) against an in-memory lease
// store with optimistic concurrency, driven by a fake clock.
#include "operator/controller/leader_election.h"

#include <gtest/gtest.h>

#include <functional>

namespace kubemoe::op {
namespace {

using std::chrono::seconds;

// Behaves like the API server for one Lease: resourceVersion bumps on every write, writes with a
// stale resourceVersion fail with Conflict.
class FakeLeaseStore final : public LeaseStore {
 public:
  k8s::ApiResult<LeaseRecord> Get() override {
    ++gets;
    if (fail_next_get) {
      fail_next_get = false;
      return k8s::ApiError(500, k8s::ApiReason::kServerError, "boom");
    }
    if (!exists) return k8s::ApiError(404, k8s::ApiReason::kNotFound, "leases \"x\" not found");
    return record;
  }
  k8s::ApiResult<LeaseRecord> Create(const LeaseRecord& r) override {
    if (exists) return k8s::ApiError(409, k8s::ApiReason::kAlreadyExists, "exists");
    exists = true;
    record = r;
    record.resource_version = std::to_string(++version);
    ++writes;
    return record;
  }
  k8s::ApiResult<LeaseRecord> Update(const LeaseRecord& r) override {
    if (before_update) before_update();
    if (!exists) return k8s::ApiError(404, k8s::ApiReason::kNotFound, "gone");
    if (r.resource_version != record.resource_version) {
      return k8s::ApiError(409, k8s::ApiReason::kConflict, "the object has been modified");
    }
    record = r;
    record.resource_version = std::to_string(++version);
    ++writes;
    return record;
  }
  std::string Describe() const override { return "test/lease"; }

  std::function<void()> before_update;
  bool exists = false;
  bool fail_next_get = false;
  LeaseRecord record;
  int version = 0;
  int writes = 0;
  int gets = 0;
};

LeaderElectionConfig Config(const std::string& id) {
  LeaderElectionConfig c;
  c.identity = id;
  return c;  // 15 s / 10 s / 2 s
}

TEST(LeaderElectionTest, FirstCandidateCreatesLeaseSecondStandsBy) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, Config("a"));
  LeaderElector b(store, clock, Config("b"));
  EXPECT_TRUE(a.TryAcquireOrRenew());
  EXPECT_TRUE(a.IsLeader());
  EXPECT_EQ(store.record.holder_identity, "a");
  EXPECT_EQ(store.record.lease_duration_seconds, 15);
  EXPECT_EQ(store.record.lease_transitions, 0);
  EXPECT_FALSE(store.record.acquire_time.empty());
  int writes = store.writes;
  EXPECT_FALSE(b.TryAcquireOrRenew());
  EXPECT_FALSE(b.IsLeader());
  EXPECT_TRUE(b.Healthy());
  EXPECT_EQ(store.writes, writes) << "a standby must not write while the lease is held";
}

TEST(LeaderElectionTest, RenewKeepsAcquireTimeAndBumpsRenewTime) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, Config("a"));
  ASSERT_TRUE(a.TryAcquireOrRenew());
  LeaseRecord first = store.record;
  clock.Advance(seconds(2));
  ASSERT_TRUE(a.TryAcquireOrRenew());
  EXPECT_EQ(store.record.acquire_time, first.acquire_time);
  EXPECT_NE(store.record.renew_time, first.renew_time);
  EXPECT_EQ(store.record.lease_transitions, 0);
}

TEST(LeaderElectionTest, StandbyTakesOverOnlyAfterExpiryMeasuredOnItsOwnClock) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, Config("a"));
  LeaderElector b(store, clock, Config("b"));
  ASSERT_TRUE(a.TryAcquireOrRenew());
  ASSERT_FALSE(b.TryAcquireOrRenew());  // b first sees the record now
  // a dies (no more renewals). Just before 15 s from b's first sighting: still held.
  clock.Advance(seconds(14));
  EXPECT_FALSE(b.TryAcquireOrRenew());
  clock.Advance(seconds(2));
  EXPECT_TRUE(b.TryAcquireOrRenew());
  EXPECT_EQ(store.record.holder_identity, "b");
  EXPECT_EQ(store.record.lease_transitions, 1);
  // a comes back: it sees b's fresh record and stands by.
  EXPECT_FALSE(a.TryAcquireOrRenew());
  EXPECT_FALSE(a.IsLeader());
}

TEST(LeaderElectionTest, RenewalsByHolderResetStandbyExpiry) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, Config("a"));
  LeaderElector b(store, clock, Config("b"));
  ASSERT_TRUE(a.TryAcquireOrRenew());
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(b.TryAcquireOrRenew()) << "round " << i;
    clock.Advance(seconds(2));
    ASSERT_TRUE(a.TryAcquireOrRenew());
  }
  EXPECT_EQ(store.record.holder_identity, "a");
}

TEST(LeaderElectionTest, RacingTakeoverLosesOnConflict) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, Config("a"));
  LeaderElector b(store, clock, Config("b"));
  ASSERT_TRUE(a.TryAcquireOrRenew());
  ASSERT_FALSE(b.TryAcquireOrRenew());
  clock.Advance(seconds(16));  // a looks expired to b
  // Between b's read and b's write, a renews: b's write carries a stale resourceVersion.
  store.before_update = [&] {
    store.before_update = nullptr;
    ASSERT_TRUE(a.TryAcquireOrRenew());
  };
  EXPECT_FALSE(b.TryAcquireOrRenew());
  EXPECT_FALSE(b.IsLeader());
  EXPECT_TRUE(a.IsLeader());
  EXPECT_EQ(store.record.holder_identity, "a");
  EXPECT_EQ(store.record.lease_transitions, 0);
}

TEST(LeaderElectionTest, ReleaseLetsStandbyAcquireAtOnce) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, Config("a"));
  LeaderElector b(store, clock, Config("b"));
  ASSERT_TRUE(a.TryAcquireOrRenew());
  ASSERT_FALSE(b.TryAcquireOrRenew());
  ASSERT_TRUE(a.Release());
  EXPECT_EQ(store.record.holder_identity, "");
  EXPECT_FALSE(a.IsLeader());
  EXPECT_TRUE(b.TryAcquireOrRenew()) << "a released lease is free without waiting for expiry";
  EXPECT_EQ(store.record.lease_transitions, 1);
}

TEST(LeaderElectionTest, UnreachableStoreIsUnhealthy) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, Config("a"));
  store.fail_next_get = true;
  EXPECT_FALSE(a.TryAcquireOrRenew());
  EXPECT_FALSE(a.Healthy());
  EXPECT_TRUE(a.TryAcquireOrRenew());
  EXPECT_TRUE(a.Healthy());
}

}  // namespace
}  // namespace kubemoe::op
