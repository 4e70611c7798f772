// Lease-based leader election (operator/controller/leader_election.h) against an in-memory lease
// store with optimistic concurrency: single attempts driven by a fake clock, and Run with the
// real clock against a store whose calls can be slow or stall.
#include "operator/controller/leader_election.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace kubemoe::op {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyTime = std::chrono::steady_clock::time_point;

// Behaves like the API server for one Lease: resourceVersion bumps on every write, writes with a
// stale resourceVersion fail with Conflict. Thread-safe; the public fields are for single-threaded
// tests (the Run tests use the accessors). Calls can be slowed down (SetDelay; slept in real time
// but never past the call's timeout) and Updates can stall until Unstall() or their timeout.
class FakeLeaseStore final : public LeaseStore {
 public:
  k8s::ApiResult<LeaseRecord> Get(milliseconds timeout) override {
    if (on_get) std::exchange(on_get, nullptr)();  // one-shot; outside the lock, it may re-enter
    std::unique_lock<std::mutex> lock(mu_);
    timeouts_.push_back(timeout);
    get_calls_.push_back(std::chrono::steady_clock::now());
    if (!Sleep(lock, timeout)) return TimedOut();
    ++gets;
    if (fail_next_get) {
      fail_next_get = false;
      return k8s::ApiError(500, k8s::ApiReason::kServerError, "boom");
    }
    if (!exists) return k8s::ApiError(404, k8s::ApiReason::kNotFound, "leases \"x\" not found");
    return record;
  }
  k8s::ApiResult<LeaseRecord> Create(const LeaseRecord& r, milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(mu_);
    timeouts_.push_back(timeout);
    if (!Sleep(lock, timeout)) return TimedOut();
    if (exists) return k8s::ApiError(409, k8s::ApiReason::kAlreadyExists, "exists");
    exists = true;
    return Write(r);
  }
  k8s::ApiResult<LeaseRecord> Update(const LeaseRecord& r, milliseconds timeout) override {
    if (before_update) before_update();
    std::unique_lock<std::mutex> lock(mu_);
    timeouts_.push_back(timeout);
    auto until = std::chrono::steady_clock::now() + timeout;
    if (!cv_.wait_until(lock, until, [this] { return !stalled_; })) return TimedOut();
    auto left = std::chrono::duration_cast<milliseconds>(until - std::chrono::steady_clock::now());
    if (!Sleep(lock, left)) return TimedOut();
    if (!exists) return k8s::ApiError(404, k8s::ApiReason::kNotFound, "gone");
    if (r.resource_version != record.resource_version) {
      return k8s::ApiError(409, k8s::ApiReason::kConflict, "the object has been modified");
    }
    return Write(r);
  }
  std::string Describe() const override { return "test/lease"; }

  // For the Run tests.
  void SetDelay(milliseconds d) {
    std::lock_guard<std::mutex> lock(mu_);
    delay_ = d;
  }
  void Stall() {
    std::lock_guard<std::mutex> lock(mu_);
    stalled_ = true;
  }
  void Unstall() {
    std::lock_guard<std::mutex> lock(mu_);
    stalled_ = false;
    cv_.notify_all();
  }
  // Another candidate writes the Lease behind our back.
  void Overwrite(const std::string& holder) {
    std::lock_guard<std::mutex> lock(mu_);
    LeaseRecord r = record;
    r.holder_identity = holder;
    Write(r);
  }
  LeaseRecord Record() {
    std::lock_guard<std::mutex> lock(mu_);
    return record;
  }
  int Writes() {
    std::lock_guard<std::mutex> lock(mu_);
    return writes;
  }
  std::vector<milliseconds> Timeouts() {
    std::lock_guard<std::mutex> lock(mu_);
    return timeouts_;
  }
  // When the last write landed, and when the Get of the attempt that made it was called (a bound
  // from above on when that attempt started).
  std::pair<SteadyTime, SteadyTime> LastWrite() {
    std::lock_guard<std::mutex> lock(mu_);
    return {last_write_, last_write_get_};
  }

  std::function<void()> on_get;
  std::function<void()> before_update;
  bool exists = false;
  bool fail_next_get = false;
  LeaseRecord record;
  int version = 0;
  int writes = 0;
  int gets = 0;

 private:
  LeaseRecord Write(const LeaseRecord& r) {
    record = r;
    record.resource_version = std::to_string(++version);
    ++writes;
    last_write_ = std::chrono::steady_clock::now();
    last_write_get_ = get_calls_.empty() ? last_write_ : get_calls_.back();
    return record;
  }
  // Sleeps the delay; false (after sleeping `timeout`) when the delay is longer.
  bool Sleep(std::unique_lock<std::mutex>& lock, milliseconds timeout) {
    if (delay_.count() == 0) return true;
    milliseconds d = delay_;
    lock.unlock();
    std::this_thread::sleep_for(std::min(d, timeout));
    lock.lock();
    return d <= timeout;
  }
  static k8s::ApiError TimedOut() { return k8s::ApiError::Transport("timed out"); }

  std::mutex mu_;
  std::condition_variable cv_;
  milliseconds delay_{0};
  bool stalled_ = false;
  std::vector<milliseconds> timeouts_;
  std::vector<SteadyTime> get_calls_;
  SteadyTime last_write_;
  SteadyTime last_write_get_;
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

// The leader's term starts when its attempt starts, not when the store answers: the Lease on the
// server is at most that old.
TEST(LeaderElectionTest, TermCountsFromBeforeTheRequests) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, Config("a"));
  const auto start = clock.Now();
  const std::string wall = FormatRfc3339(clock.WallNow(), /*micros=*/true);
  store.on_get = [&] { clock.Advance(seconds(3)); };  // a slow read
  ASSERT_TRUE(a.TryAcquireOrRenew());
  EXPECT_EQ(a.LeadingUntil(), start + seconds(10));
  EXPECT_EQ(store.record.renew_time, wall);
  clock.Advance(milliseconds(6900));  // 9.9 s after the start
  EXPECT_TRUE(a.IsLeader());
  clock.Advance(milliseconds(200));
  EXPECT_FALSE(a.IsLeader()) << "the term ends renew_deadline after the attempt started";
}

// A standby's expiry clock starts when its read returns: the record it saw may have been written
// at any time during the read, so counting from the read's start would let it take over while
// the leader is still inside its term.
TEST(LeaderElectionTest, StandbyCountsExpiryFromWhenItsReadReturned) {
  FakeClock clock;
  FakeLeaseStore store;
  LeaderElector a(store, clock, Config("a"));
  LeaderElector b(store, clock, Config("b"));
  ASSERT_TRUE(a.TryAcquireOrRenew());
  ASSERT_FALSE(b.TryAcquireOrRenew());
  // b's next read takes 6 s; near its end a renews, and then dies.
  store.on_get = [&] {
    clock.Advance(seconds(6));
    ASSERT_TRUE(a.TryAcquireOrRenew());
  };
  const auto read_start = clock.Now();
  ASSERT_FALSE(b.TryAcquireOrRenew());
  const auto renewed = read_start + seconds(6);
  clock.Advance(seconds(9));  // read_start + 15 s: a's term (renewed + 10 s) has not ended
  EXPECT_TRUE(a.IsLeader());
  EXPECT_FALSE(b.TryAcquireOrRenew()) << "b took over while a still leads";
  clock.Advance(renewed + seconds(15) - clock.Now() + milliseconds(1));
  EXPECT_FALSE(a.IsLeader());
  EXPECT_TRUE(b.TryAcquireOrRenew());
}

// Polls `condition` every 5 ms for up to 5 s.
template <typename F>
bool WaitFor(F condition) {
  auto until = std::chrono::steady_clock::now() + seconds(5);
  while (!condition() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  return condition();
}

// Short durations for the tests of Run, which waits in real time.
LeaderElectionConfig Short(const std::string& id) {
  LeaderElectionConfig c;
  c.identity = id;
  c.lease_duration = milliseconds(1500);
  c.renew_deadline = milliseconds(1000);
  c.retry_period = milliseconds(100);
  return c;
}

// Runs an elector's Run on a thread and records what its callbacks saw.
class Runner {
 public:
  Runner(LeaseStore& store, LeaderElectionConfig config)
      : elector_(store, RealClock(), std::move(config)) {}
  ~Runner() { Finish(); }

  // on_started blocks until ReleaseOnStarted() when `block` is set.
  void Start(bool block = false) {
    block_ = block;
    thread_ = std::thread([this] {
      clean_ = elector_.Run(
          [this] {
            started_ = true;
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait_for(lock, seconds(20), [this] { return !block_; });
            started_returned_ = true;
          },
          [this](bool lost) {
            std::lock_guard<std::mutex> lock(mu_);
            stopped_at_ = std::chrono::steady_clock::now();
            ++stopped_calls_;
            lost_ = lost;
            cv_.notify_all();
          });
    });
  }
  void ReleaseOnStarted() {
    std::lock_guard<std::mutex> lock(mu_);
    block_ = false;
    cv_.notify_all();
  }
  // Waits (bounded) for on_stopped; returns when it was called.
  std::optional<SteadyTime> WaitStopped(milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [this] { return stopped_calls_ > 0; })) return std::nullopt;
    return stopped_at_;
  }
  bool WaitLeading(milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (!elector_.IsLeader() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(milliseconds(5));
    }
    return elector_.IsLeader();
  }
  void Finish() {
    elector_.Stop();
    ReleaseOnStarted();
    if (thread_.joinable()) thread_.join();
  }

  LeaderElector& elector() { return elector_; }
  bool clean() const { return clean_; }
  bool lost() {
    std::lock_guard<std::mutex> lock(mu_);
    return lost_;
  }
  int stopped_calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped_calls_;
  }
  bool started() const { return started_; }
  bool started_returned() const { return started_returned_; }

 private:
  LeaderElector elector_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool block_ = false;     // guarded by mu_
  int stopped_calls_ = 0;  // guarded by mu_
  bool lost_ = false;      // guarded by mu_
  SteadyTime stopped_at_;  // guarded by mu_
  std::atomic<bool> started_{false};
  std::atomic<bool> started_returned_{false};
  std::atomic<bool> clean_{false};
};

// on_started may take long (the operator waits for its caches there); renewals must go on
// meanwhile, or the Lease expires under a working leader.
TEST(LeaderElectionRunTest, SlowOnStartedDoesNotStopRenewals) {
  FakeLeaseStore store;
  Runner a(store, Short("a"));
  a.Start(/*block=*/true);
  ASSERT_TRUE(a.WaitLeading(seconds(5)));
  ASSERT_TRUE(WaitFor([&] { return a.started(); }));
  int writes = store.Writes();
  // Twice the lease duration with on_started still running.
  auto until = std::chrono::steady_clock::now() + seconds(3);
  bool always_leader = true;
  while (std::chrono::steady_clock::now() < until) {
    always_leader = always_leader && a.elector().IsLeader();
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(always_leader);
  EXPECT_GE(store.Writes() - writes, 5) << "no renewals while on_started ran";
  EXPECT_EQ(a.stopped_calls(), 0);
  EXPECT_FALSE(a.started_returned());
  a.Finish();
  EXPECT_TRUE(a.clean());
  EXPECT_EQ(a.stopped_calls(), 1);
  EXPECT_FALSE(a.lost());
  EXPECT_EQ(store.Record().holder_identity, "") << "Stop releases the Lease";
}

// A renewal whose write never comes back must not keep the leader acting: it gives up when its
// term ends, strictly before another candidate (which starts counting no earlier than the last
// successful write landed) can see the Lease expire. Slow calls eat into the term too.
void ExpectStalledRenewalEndsLeadershipInTime(milliseconds delay) {
  FakeLeaseStore store;
  const LeaderElectionConfig config = Short("a");
  Runner a(store, config);
  a.Start();
  ASSERT_TRUE(a.WaitLeading(seconds(5)));
  store.SetDelay(delay);
  std::this_thread::sleep_for(milliseconds(1200));  // a few slow renewals
  ASSERT_TRUE(a.elector().IsLeader()) << "slow but timely renewals keep the lease";
  store.Stall();
  std::optional<SteadyTime> lost_at = a.WaitStopped(seconds(5));
  store.Unstall();
  ASSERT_TRUE(lost_at.has_value()) << "the leader did not give up while its renewal stalled";
  EXPECT_TRUE(a.lost());
  auto [written, attempt_get] = store.LastWrite();
  // Safety: gave up before the Lease could look expired to anyone.
  EXPECT_LT(*lost_at, written + config.lease_duration);
  EXPECT_LT(*lost_at, attempt_get + config.lease_duration);
  // The contract: about renew_deadline after the successful attempt started (which the store saw
  // a moment later; the slack covers a preemption in between).
  EXPECT_GE(*lost_at, attempt_get + config.renew_deadline - milliseconds(250));
  EXPECT_FALSE(a.elector().IsLeader());
  for (milliseconds t : store.Timeouts()) {
    EXPECT_LE(t, config.renew_deadline) << "a call may take at most the time left in the term";
  }
  a.Finish();
  EXPECT_FALSE(a.clean());
  EXPECT_EQ(a.stopped_calls(), 1);
}

TEST(LeaderElectionRunTest, StalledRenewalEndsLeadershipBeforeTheLeaseCanExpire) {
  ExpectStalledRenewalEndsLeadershipInTime(milliseconds(0));
}

TEST(LeaderElectionRunTest, StalledRenewalAfterSlowOnesEndsLeadershipInTime) {
  // A renewal (Get + Update) takes 300 ms; the next one, a retry period later, still fits the
  // 1000 ms term: 300 + 100 + 300 < 1000.
  ExpectStalledRenewalEndsLeadershipInTime(milliseconds(150));
}

// Seeing another holder ends leadership at the next renewal, without waiting for the term to end.
TEST(LeaderElectionRunTest, AnotherHolderEndsLeadershipAtOnce) {
  FakeLeaseStore store;
  LeaderElectionConfig config = Short("a");
  config.lease_duration = milliseconds(4000);
  config.renew_deadline = milliseconds(3000);
  Runner a(store, config);
  a.Start();
  ASSERT_TRUE(a.WaitLeading(seconds(5)));
  auto taken = std::chrono::steady_clock::now();
  store.Overwrite("b");
  std::optional<SteadyTime> lost_at = a.WaitStopped(seconds(5));
  ASSERT_TRUE(lost_at.has_value());
  EXPECT_TRUE(a.lost());
  EXPECT_LT(*lost_at - taken, milliseconds(1500)) << "kept acting until the term ran out";
  EXPECT_EQ(store.Record().holder_identity, "b");
}

// Stop waits for on_started to return before releasing the Lease, so no work starts after it.
TEST(LeaderElectionRunTest, StopReleasesOnlyAfterOnStartedReturned) {
  FakeLeaseStore store;
  Runner a(store, Short("a"));
  a.Start(/*block=*/true);
  ASSERT_TRUE(a.WaitLeading(seconds(5)));
  a.elector().Stop();
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(a.stopped_calls(), 0);
  EXPECT_EQ(store.Record().holder_identity, "a");
  a.ReleaseOnStarted();
  ASSERT_TRUE(a.WaitStopped(seconds(5)).has_value());
  a.Finish();
  EXPECT_TRUE(a.clean());
  EXPECT_FALSE(a.lost());
  EXPECT_EQ(store.Record().holder_identity, "");
}

}  // namespace
}  // namespace kubemoe::op
