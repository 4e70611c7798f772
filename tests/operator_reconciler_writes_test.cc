// The reconciler's writes against the fake API server (which, like kube-apiserver, stores the
// quantities of built-in kinds in canonical form): a model whose resources are written
// non-canonically ("1000m", "1024Mi") converges and then costs no writes over several resyncs;
// and the reconciler never writes into an informer cache, so a watch event that arrives after
// the reconciler's own write cannot move the cache back to an older object.
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/metrics.h"
#include "operator/controller/controller.h"
#include "operator/controller/reconciler.h"
#include "operator_reconciler_fixture.h"

namespace kubemoe::op {
namespace {

using nlohmann::json;
using testing::WaitUntil;

int64_t RvOf(const json& object) {
  return std::stoll(object["metadata"].value("resourceVersion", "0"));
}

class NoEvents final : public EventRecorder {
 public:
  void Record(const json&, const EventSpec&) override {}
};

class ReconcilerWritesTest : public ReconcilerFixture {
 protected:
  void CreateModel() {
    ASSERT_TRUE(WaitUntil([&] { return server_.client().Create(k8s::MoEModels(), "default", model_).ok(); }))
        << server_.Log();
  }
};

TEST_F(ReconcilerWritesTest, NonCanonicalQuantitiesCauseNoWritesOnResync) {
  // Equal values written the way users write them; the server keeps "1", "1Gi", "2Gi", "512Mi".
  model_["spec"]["resources"] = {{"requests", {{"cpu", "1000m"}, {"memory", "1024Mi"}}},
                                 {"limits", {{"cpu", 2}, {"memory", "2048Mi"}}}};
  model_["spec"]["router"]["resources"] = {{"requests", {{"cpu", "0.5"}, {"memory", "0.5Gi"}}}};
  CreateModel();
  ControllerOptions options;
  options.namespace_ = "default";
  options.resync_period = std::chrono::seconds(0);  // resyncs are triggered by hand below
  Controller controller(server_.client(), options, metrics_);
  controller.StartInformers();
  ASSERT_TRUE(controller.WaitForCacheSync(std::chrono::seconds(10))) << server_.Log();
  controller.StartWorkers();

  const std::string name = model_["metadata"]["name"];
  ASSERT_TRUE(WaitUntil([&] {
    auto m = server_.client().Get(k8s::MoEModels(), "default", name);
    return m.ok() && m->contains("status") && (*m)["status"].contains("phase");
  }, std::chrono::seconds(20))) << server_.Log();
  auto sts = server_.client().Get(k8s::StatefulSets(), "default", name + "-experts");
  ASSERT_TRUE(sts.ok());
  EXPECT_EQ((*sts)["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"], "1Gi")
      << "the fake API server stores quantities canonically, as kube-apiserver does";
  auto quiet = [&] {
    server_.ClearRequests();
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    return server_.CountWrites() == 0 && controller.queue().Len() == 0;
  };
  ASSERT_TRUE(WaitUntil(quiet, std::chrono::seconds(20))) << server_.Requests().dump(1);

  server_.ClearRequests();
  for (int resync = 0; resync < 3; ++resync) {
    double before = Successes(metrics_);
    controller.ResyncAll();
    ASSERT_TRUE(WaitUntil([&] { return Successes(metrics_) > before && controller.queue().Len() == 0; }))
        << "resync " << resync << " did not run";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(server_.CountWrites(), 0) << "writes over 3 resyncs of a converged model:\n"
                                      << server_.Requests().dump(1);
  controller.Stop();
}

TEST_F(ReconcilerWritesTest, MalformedQuantityIsReportedOnTheModel) {
  model_["spec"]["resources"]["requests"]["cpu"] = "lots";
  CreateModel();
  ControllerOptions options;
  options.namespace_ = "default";
  options.resync_period = std::chrono::seconds(0);
  Controller controller(server_.client(), options, metrics_);
  controller.StartInformers();
  ASSERT_TRUE(controller.WaitForCacheSync(std::chrono::seconds(10))) << server_.Log();
  controller.StartWorkers();
  const std::string name = model_["metadata"]["name"];
  std::string message;
  EXPECT_TRUE(WaitUntil([&] {
    auto m = server_.client().Get(k8s::MoEModels(), "default", name);
    if (!m.ok() || !m->contains("status")) return false;
    for (const json& c : (*m)["status"].value("conditions", json::array())) {
      if (c.value("type", "") == "Degraded" && c.value("reason", "") == "InvalidSpec") {
        message = c.value("message", "");
        return true;
      }
    }
    return false;
  }, std::chrono::seconds(20))) << "no InvalidSpec condition; requests:\n" << server_.Requests().dump(1);
  EXPECT_NE(message.find("spec.resources.requests.cpu: invalid quantity \"lots\""), std::string::npos)
      << message;
  EXPECT_EQ(server_.CountWrites("statefulsets"), 0) << "nothing is applied from a spec that does not parse";
  controller.Stop();
}

TEST_F(ReconcilerWritesTest, LateWatchEventNeverMovesTheCacheBackwards) {
  CreateModel();
  // Informers of our own, so the test can read the StatefulSet cache and watch it change.
  std::mutex mu;
  std::vector<int64_t> seen;  // the cached StatefulSet's resourceVersion, in the order it held them
  const std::string name = model_["metadata"]["name"];
  const std::string sts_key = "default/" + name + "-experts";
  auto options = [&](const k8s::Resource& r) {
    InformerOptions o;
    o.resource = r;
    o.namespace_ = "default";
    o.watch_timeout = std::chrono::seconds(30);
    return o;
  };
  Informer models(server_.client(), options(k8s::MoEModels()), [](const json&) {});
  Informer sts(server_.client(), options(k8s::StatefulSets()), [&](const json& object) {
    if (Informer::KeyOf(object) != sts_key) return;
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(RvOf(object));
  });
  std::vector<std::unique_ptr<Informer>> others;
  ReconcilerCaches caches{&models, {{"StatefulSet", &sts}}};
  for (const k8s::Resource* r : {&k8s::ConfigMaps(), &k8s::Services(), &k8s::Deployments(),
                                 &k8s::PodDisruptionBudgets(), &k8s::NetworkPolicies()}) {
    others.push_back(std::make_unique<Informer>(server_.client(), options(*r), [](const json&) {}));
    caches.owned[r->kind] = others.back().get();
  }
  models.Start();
  sts.Start();
  for (auto& i : others) i->Start();
  ASSERT_TRUE(models.WaitForSync(std::chrono::seconds(10)) && sts.WaitForSync(std::chrono::seconds(10)));
  for (auto& i : others) ASSERT_TRUE(i->WaitForSync(std::chrono::seconds(10)));
  NoEvents events;
  Reconciler reconciler(server_.client(), caches, events, RealClock());
  const std::string key = "default/" + name;
  ASSERT_TRUE(WaitUntil([&] { return models.Get(key) != nullptr; }));
  ASSERT_EQ(reconciler.Reconcile(key).outcome, ReconcileResult::Outcome::kOk);

  // Drift (rv A), seen by the cache.
  auto drifted = server_.client().MergePatch(k8s::StatefulSets(), "default", name + "-experts",
                                             json{{"spec", {{"replicas", 7}}}});
  ASSERT_TRUE(drifted.ok());
  const int64_t a = RvOf(*drifted);
  ASSERT_TRUE(WaitUntil([&] { ObjectPtr o = sts.Get(sts_key); return o && RvOf(*o) == a; }));

  // Hold the StatefulSet watch back: its next watch request waits 3 s in the server, then
  // replays everything since A.
  server_.AddFault({{"method", "GET"}, {"path_regex", "/statefulsets$"}, {"query_regex", "watch=true"},
                    {"delay_seconds", 3.0}, {"times", 1}});
  server_.ClearRequests();
  server_.AddFault({{"drop_watches", true}});
  ASSERT_TRUE(WaitUntil([&] {
    for (const json& r : server_.Requests()) {
      if (r.value("path", "").find("/statefulsets") != std::string::npos &&
          r.value("query", "").find("watch=true") != std::string::npos) {
        return true;
      }
    }
    return false;
  })) << "the StatefulSet informer did not reconnect";

  // Someone else changes the StatefulSet (rv B) and then the reconciler repairs it (rv C), while
  // the informer has seen neither.
  auto other = server_.client().MergePatch(k8s::StatefulSets(), "default", name + "-experts",
                                           json{{"metadata", {{"labels", {{"touched", "yes"}}}}}});
  ASSERT_TRUE(other.ok());
  const int64_t b = RvOf(*other);
  ReconcileResult r = reconciler.Reconcile(key);
  ASSERT_EQ(r.outcome, ReconcileResult::Outcome::kOk) << r.message;
  ASSERT_GE(r.writes, 1) << "the drift is repaired with an apply";
  auto repaired = server_.client().Get(k8s::StatefulSets(), "default", name + "-experts");
  ASSERT_TRUE(repaired.ok());
  const int64_t c = RvOf(*repaired);
  ASSERT_LT(a, b);
  ASSERT_LT(b, c);
  {
    std::lock_guard<std::mutex> lock(mu);
    seen.clear();
    seen.push_back(a);
    seen.push_back(RvOf(*sts.Get(sts_key)));  // right after the reconciler's write
  }
  // Until the watch itself delivers the repair (the cache may hold it earlier).
  ASSERT_TRUE(WaitUntil([&] {
    std::lock_guard<std::mutex> lock(mu);
    return seen.size() > 2 && seen.back() == c;
  })) << "the watch never delivered the repair";
  std::lock_guard<std::mutex> lock(mu);
  std::string order;
  for (int64_t rv : seen) order += " " + std::to_string(rv);
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_LE(seen[i - 1], seen[i]) << "the StatefulSet cache went back from " << seen[i - 1]
                                    << " to " << seen[i] << "; resourceVersions it held:" << order;
  }
  models.Stop();
  sts.Stop();
  for (auto& i : others) i->Stop();
}

}  // namespace
}  // namespace kubemoe::op
