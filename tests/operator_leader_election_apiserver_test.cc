// Two leader-election candidates, each with a client of its own (as two operator replicas have),
// against the fake API server (tests/k8s/fake_apiserver.py) while latency and stalls are injected
// into the Lease requests: at no instant may both act as leader. A candidate counts as leading,
// conservatively, whenever its elector says IsLeader() and from the start of on_started until
// on_stopped has returned; one that loses the Lease starts over under a new identity, as a
// restarted pod would.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "operator/controller/leader_election.h"
#include "operator/k8s/client.h"
#include "operator_fake_apiserver.h"

namespace kubemoe::op {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyTime = std::chrono::steady_clock::time_point;

struct Term {
  std::string identity;
  SteadyTime start;
  SteadyTime end = SteadyTime::max();  // max while still leading
};

class Candidate {
 public:
  Candidate(std::string name, const std::string& url, LeaderElectionConfig config)
      : name_(std::move(name)), config_(std::move(config)) {
    k8s::ClientConfig c;
    c.server = url;
    c.token = "test-token";
    auto client = k8s::Client::Create(c);
    if (client.ok()) client_ = std::move(*client);
    if (client_) store_ = MakeApiLeaseStore(*client_, "default", "le-test");
  }
  ~Candidate() { Finish(); }

  bool ok() const { return store_ != nullptr; }
  void Start() { thread_ = std::thread([this] { Loop(); }); }
  // Stops the current elector (it releases the Lease) and waits for the loop to end.
  void Finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      if (current_ != nullptr) current_->Stop();
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }

  bool IsLeader() {
    std::lock_guard<std::mutex> lock(mu_);
    return acting_ || (current_ != nullptr && current_->IsLeader());
  }
  std::vector<Term> Terms() {
    std::lock_guard<std::mutex> lock(mu_);
    return terms_;
  }
  int losses() const { return losses_; }

 private:
  void Loop() {
    for (int generation = 0;; ++generation) {
      LeaderElectionConfig config = config_;
      config.identity = name_ + "-" + std::to_string(generation);
      LeaderElector elector(*store_, RealClock(), config);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (done_) return;
        current_ = &elector;
        term_over_ = false;
      }
      bool clean = elector.Run([&] { OnStarted(config.identity); }, [&](bool) { OnStopped(); });
      if (!clean) ++losses_;
      std::lock_guard<std::mutex> lock(mu_);
      current_ = nullptr;
    }
  }

  // Like the operator's: marks the start, then "waits for caches" a while (renewals go on).
  void OnStarted(const std::string& identity) {
    std::unique_lock<std::mutex> lock(mu_);
    if (term_over_) return;  // lost before this thread got to run
    terms_.push_back({identity, std::chrono::steady_clock::now()});
    acting_ = true;
    cv_.wait_for(lock, milliseconds(700), [this] { return done_ || term_over_; });
  }
  void OnStopped() {
    std::lock_guard<std::mutex> lock(mu_);
    term_over_ = true;
    if (acting_) terms_.back().end = std::chrono::steady_clock::now();
    acting_ = false;
    cv_.notify_all();
  }

  const std::string name_;
  const LeaderElectionConfig config_;
  std::unique_ptr<k8s::Client> client_;
  std::unique_ptr<LeaseStore> store_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;                 // guarded by mu_
  LeaderElector* current_ = nullptr;  // guarded by mu_
  bool acting_ = false;               // guarded by mu_
  bool term_over_ = false;            // guarded by mu_
  std::vector<Term> terms_;           // guarded by mu_
  std::atomic<int> losses_{0};
};

// Samples both candidates every millisecond; counts instants at which both lead.
class Sampler {
 public:
  Sampler(Candidate& a, Candidate& b) : a_(a), b_(b), thread_([this] { Loop(); }) {}
  ~Sampler() { Finish(); }
  void Finish() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int both() const { return both_; }
  int samples() const { return samples_; }
  // Which candidate leads now: "a", "b", "" (none) or "ab".
  std::string Leader() {
    return std::string(a_.IsLeader() ? "a" : "") + (b_.IsLeader() ? "b" : "");
  }

 private:
  void Loop() {
    while (!done_) {
      if (a_.IsLeader() && b_.IsLeader()) ++both_;
      ++samples_;
      std::this_thread::sleep_for(milliseconds(1));
    }
  }
  Candidate& a_;
  Candidate& b_;
  std::atomic<bool> done_{false};
  std::atomic<int> both_{0};
  std::atomic<int> samples_{0};
  std::thread thread_;
};

bool WaitFor(const std::function<bool()>& condition, milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (!condition() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  return condition();
}

TEST(LeaderElectionApiServerTest, SlowAndStalledLeaseRequestsNeverMakeTwoLeaders) {
  testing::FakeApiServer server;
  KUBEMOE_REQUIRE_FAKE_APISERVER(server);
  LeaderElectionConfig config;
  config.lease_duration = seconds(3);
  config.renew_deadline = seconds(2);
  config.retry_period = milliseconds(500);
  Candidate a("a", server.url(), config);
  Candidate b("b", server.url(), config);
  ASSERT_TRUE(a.ok() && b.ok());
  Sampler sampler(a, b);
  const auto t0 = std::chrono::steady_clock::now();
  auto phase = [&](const char* what) {
    std::fprintf(stderr, "[%5.1fs] %s (leader: %s)\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), what,
                 sampler.Leader().c_str());
  };
  auto lease_fault = [&](const char* method, double delay_s, int times = -1) {
    nlohmann::json spec = {
        {"method", method}, {"path_regex", "/leases"}, {"delay_seconds", delay_s}};
    if (times > 0) spec["times"] = times;
    server.AddFault(spec);
  };

  a.Start();
  ASSERT_TRUE(WaitFor([&] { return sampler.Leader() == "a"; }, seconds(5)));
  b.Start();
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(sampler.Leader(), "a") << "b took the Lease from a working leader";

  // Slow: every Lease request takes 0.25 s; a renewal (GET + PUT) still fits the deadline.
  phase("slow Lease requests");
  lease_fault("*", 0.25);
  std::this_thread::sleep_for(seconds(4));
  EXPECT_EQ(sampler.Leader(), "a") << "slow but timely renewals keep the Lease";

  // Too slow: 1.2 s a request, a renewal no longer fits. Writes that the candidates gave up on
  // still land late on the server.
  server.ClearFaults();
  phase("too slow Lease requests");
  lease_fault("*", 1.2);
  std::this_thread::sleep_for(seconds(5));

  // Stalled: the next PUT (the leader's renewal) hangs 8 s.
  server.ClearFaults();
  phase("no faults");
  ASSERT_TRUE(WaitFor([&] { return sampler.Leader().size() == 1; }, seconds(10)));
  std::string before = sampler.Leader();
  phase("stalled renewal");
  lease_fault("PUT", 8.0, 1);
  EXPECT_TRUE(WaitFor([&] { return sampler.Leader().size() == 1 && sampler.Leader() != before; },
                      seconds(12)))
      << "no hand-over after the leader's renewal stalled";
  phase("handed over");
  std::this_thread::sleep_for(seconds(1));

  a.Finish();
  b.Finish();
  sampler.Finish();
  EXPECT_GT(sampler.samples(), 1000);
  EXPECT_EQ(sampler.both(), 0) << "both candidates led at the same time";
  // The same from the callbacks' side: no two terms of different candidates overlap.
  std::vector<Term> ta = a.Terms(), tb = b.Terms();
  for (const Term& x : ta) {
    for (const Term& y : tb) {
      EXPECT_TRUE(x.end < y.start || y.end < x.start)
          << x.identity << " and " << y.identity << " led at the same time";
    }
  }
  EXPECT_GE(ta.size() + tb.size(), 2u) << "the test never handed the Lease over";
  EXPECT_GE(a.losses() + b.losses(), 1);
}

}  // namespace
}  // namespace kubemoe::op
