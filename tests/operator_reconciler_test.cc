// The reconcile loop (operator/controller/reconciler.h, controller.h) against the fake API
// server: children are created with owner references, drift is repaired, and a resync of a
// converged model writes nothing (counted in the server's request log).
#include "operator/controller/reconciler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/metrics.h"
#include "operator/controller/controller.h"
#include "operator_reconciler_fixture.h"

namespace kubemoe::op {
namespace {

using nlohmann::json;
using testing::WaitUntil;

TEST(InvalidSpecStatusTest, DegradedAndKeepsTransitionTimes) {
  json first = InvalidSpecStatus(json::object(), 3, "spec.experts.shards must be >= 1", "T1");
  EXPECT_EQ(first["phase"], "Degraded");
  EXPECT_EQ(first["observedGeneration"], 3);
  ASSERT_EQ(first["conditions"].size(), 3u);
  EXPECT_EQ(first["conditions"][2]["type"], "Degraded");
  EXPECT_EQ(first["conditions"][2]["status"], "True");
  EXPECT_EQ(first["conditions"][2]["reason"], "InvalidSpec");
  EXPECT_EQ(first["conditions"][2]["lastTransitionTime"], "T1");
  // Same verdict later: the transition time stays, so the status (and the write) is stable.
  json again = InvalidSpecStatus(first, 3, "spec.experts.shards must be >= 1", "T2");
  EXPECT_EQ(again, first);
}

using ReconcilerTest = ReconcilerFixture;

TEST_F(ReconcilerTest, ConvergesRepairsDriftAndWritesNothingOnResync) {
  // The CRD becomes servable asynchronously on a real server; poll.
  ASSERT_TRUE(WaitUntil([&] { return server_.client().Create(k8s::MoEModels(), "default", model_).ok(); }))
      << server_.Log();
  ControllerOptions options;
  options.namespace_ = "default";
  options.workers = 2;
  options.resync_period = std::chrono::seconds(0);  // resyncs are triggered by hand below
  options.watch_timeout = std::chrono::seconds(10);
  Controller controller(server_.client(), options, metrics_);
  controller.StartInformers();
  ASSERT_TRUE(controller.WaitForCacheSync(std::chrono::seconds(10))) << server_.Log();
  controller.StartWorkers();

  const std::string name = model_["metadata"]["name"];
  k8s::ApiResult<json> sts = k8s::ApiError();
  ASSERT_TRUE(WaitUntil([&] {
    sts = server_.client().Get(k8s::StatefulSets(), "default", name + "-experts");
    auto m = server_.client().Get(k8s::MoEModels(), "default", name);
    return sts.ok() && m.ok() && m->contains("status") && (*m)["status"].contains("phase");
  }, std::chrono::seconds(20))) << server_.Log();
  ASSERT_TRUE((*sts)["metadata"].contains("ownerReferences"));
  EXPECT_EQ((*sts)["metadata"]["ownerReferences"][0]["kind"], "MoEModel");
  EXPECT_EQ((*sts)["metadata"]["ownerReferences"][0]["name"], name);
  for (const auto* r : {&k8s::ConfigMaps(), &k8s::Services(), &k8s::Deployments(), &k8s::PodDisruptionBudgets()}) {
    EXPECT_TRUE(server_.client().List(*r, "default").ok());
  }

  // Let the controller settle: no writes for a while.
  auto quiet = [&] {
    server_.ClearRequests();
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    return server_.CountWrites() == 0 && controller.queue().Len() == 0;
  };
  ASSERT_TRUE(WaitUntil(quiet, std::chrono::seconds(20))) << server_.Requests().dump();

  // A resync reconciles every model again; with nothing changed it must write nothing.
  server_.ClearRequests();
  double before = Successes(metrics_);
  controller.ResyncAll();
  ASSERT_TRUE(WaitUntil([&] { return Successes(metrics_) > before && controller.queue().Len() == 0; }))
      << "the resync pass did not run";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(server_.CountWrites(), 0) << server_.Requests().dump(1);

  // Drift: someone edits the StatefulSet; the operator puts its fields back (and that is a write).
  json patch = {{"spec", {{"replicas", 7}}}};
  ASSERT_TRUE(server_.client().MergePatch(k8s::StatefulSets(), "default", name + "-experts", patch).ok());
  int shards = model_["spec"]["experts"]["shards"];
  EXPECT_TRUE(WaitUntil([&] {
    auto live = server_.client().Get(k8s::StatefulSets(), "default", name + "-experts");
    return live.ok() && (*live)["spec"]["replicas"] == shards;
  })) << server_.Requests().dump(1);
  EXPECT_GT(server_.CountWrites("statefulsets"), 1) << "the repair is an apply of the StatefulSet";
  controller.Stop();
}

TEST_F(ReconcilerTest, ConflictOnStatusIsRequeuedAndConverges) {
  ASSERT_TRUE(WaitUntil([&] { return server_.client().Create(k8s::MoEModels(), "default", model_).ok(); }));
  // The first two status writes fail with 409 and one apply with 500.
  server_.AddFault({{"method", "PUT"}, {"path_regex", "/moemodels/.*/status"}, {"status", 409}, {"times", 2}});
  server_.AddFault({{"method", "PATCH"}, {"path_regex", "/statefulsets/"}, {"status", 500}, {"times", 1}});
  ControllerOptions options;
  options.namespace_ = "default";
  options.resync_period = std::chrono::seconds(0);
  options.queue.base_delay = std::chrono::milliseconds(20);
  Controller controller(server_.client(), options, metrics_);
  controller.StartInformers();
  ASSERT_TRUE(controller.WaitForCacheSync(std::chrono::seconds(10)));
  controller.StartWorkers();
  const std::string name = model_["metadata"]["name"];
  EXPECT_TRUE(WaitUntil([&] {
    auto m = server_.client().Get(k8s::MoEModels(), "default", name);
    return m.ok() && m->contains("status") && (*m)["status"].contains("phase");
  }, std::chrono::seconds(20))) << server_.Log();
  EXPECT_GE(metrics_.reconcile_errors->Value(), 2.0);
  controller.Stop();
}

}  // namespace
}  // namespace kubemoe::op
