// MoEModel parsing errors, status conditions across a rollout, and the Events of each transition.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "operator/api/reconcile.h"
#include "tests/operator_moemodel_fixture.h"

namespace kubemoe::op {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json Minimal() { return fixture::MinimalMoEModel(3); }
using fixture::ParseError;

TEST(ParseMoEModelTest, FillsDefaults) {
  StatusOr<MoEModel> m = ParseMoEModel(Minimal());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->metadata.generation, 3);
  EXPECT_EQ(m->spec.model.name, "m");
  EXPECT_EQ(m->spec.router.replicas, 1);
  EXPECT_EQ(m->spec.router.batching.max_batch_tokens, 8192);
  EXPECT_EQ(m->spec.experts.devices_per_shard, 1);
  EXPECT_EQ(m->spec.experts.placement, placement::Policy::kContiguous);
  EXPECT_EQ(m->spec.transport, Transport::kGrpc);
  EXPECT_EQ(m->spec.EffectiveTopK(), 4);
  EXPECT_EQ(m->spec.image.worker, "ghcr.io/kubemoe/kubemoe-worker:0.1.0");
}

TEST(ParseMoEModelTest, ErrorsNameTheFieldPath) {
  json j = Minimal();
  j["spec"]["experts"]["shards"] = 0;
  EXPECT_EQ(ParseError(j), "spec.experts.shards must be >= 1, got 0");
  j = Minimal();
  j["spec"]["experts"]["shards"] = "two";
  EXPECT_THAT(ParseError(j), HasSubstr("spec.experts.shards must be an integer"));
  j = Minimal();
  j["spec"]["model"].erase("moeLayers");
  EXPECT_EQ(ParseError(j), "spec.model.moeLayers is required");
  j = Minimal();
  j["spec"]["model"]["source"]["hostPath"] = {{"path", "/x"}};
  EXPECT_THAT(ParseError(j), HasSubstr("spec.model.source must set exactly one"));
  j = Minimal();
  j["spec"]["experts"]["shards"] = 17;
  EXPECT_THAT(ParseError(j), HasSubstr("must be <= spec.model.routedExperts (16)"));
  j = Minimal();
  j["spec"]["routing"]["deviceLimit"] = 3;
  EXPECT_THAT(ParseError(j), HasSubstr("spec.routing.deviceLimit (3) must be <= "));
  j = Minimal();
  j["spec"]["experts"]["shards"] = 8;
  j["spec"]["routing"]["deviceLimit"] = 1;  // 1 device x 2 experts < top-4
  EXPECT_THAT(ParseError(j), HasSubstr("must be >= topK (4)"));
  j["spec"]["routing"]["topK"] = 2;  // the override makes it feasible
  EXPECT_TRUE(ParseMoEModel(j).ok());
  j = Minimal();
  j["spec"]["transport"] = "nccl";
  EXPECT_EQ(ParseError(j), "spec.transport nccl requires spec.experts.deviceType gpu");
  j = Minimal();
  j["spec"]["experts"]["redundant"] = json::array({{{"expert", 16}}});
  EXPECT_THAT(ParseError(j), HasSubstr("spec.experts.redundant[0].expert must be <= 15"));
  j = Minimal();
  j["spec"]["experts"]["placement"] = "random";
  EXPECT_THAT(ParseError(j), HasSubstr("spec.experts.placement policy must be"));
  j = Minimal();
  j["apiVersion"] = "kubemoe.io/v1";
  EXPECT_THAT(ParseError(j), HasSubstr("apiVersion must be kubemoe.io/v1alpha1"));
  j = Minimal();
  j["metadata"].erase("name");
  EXPECT_EQ(ParseError(j), "metadata.name is required");
  j = Minimal();
  j["status"] = {{"conditions", {{{"status", "True"}}}}};
  EXPECT_EQ(ParseError(j), "status.conditions[0].type is required");
  j = Minimal();
  j["spec"]["resources"] = {{"requests", "true"}};  // found by moemodel_fuzz
  EXPECT_EQ(ParseError(j), "spec.resources.requests must be a map of resource quantities");
  j = Minimal();
  j["spec"]["router"]["resources"] = {{"limits", {{"cpu", "2"}, {"memory", "lots"}}}};
  EXPECT_THAT(ParseError(j), HasSubstr("spec.router.resources.limits.memory: invalid quantity \"lots\""));
  j = Minimal();
  j["spec"]["resources"] = {{"requests", {{"cpu", "1000m"}, {"memory", 1e9}}}};
  EXPECT_TRUE(ParseMoEModel(j).ok()) << "quantities in any suffix, or numbers";
  EXPECT_THAT(ParseError(json::array()), HasSubstr("must be a JSON object"));
}

// A StatefulSet / Deployment as the informer would see them.
json Workload(int64_t replicas, int64_t ready, int64_t updated, uint64_t version,
              const char* ready_field) {
  return {{"metadata", {{"generation", 5}}},
          {"spec",
           {{"replicas", replicas},
            {"template",
             {{"metadata",
               {{"annotations", {{"kubemoe.io/placement-version", std::to_string(version)}}}}}}}}},
          {"status",
           {{"observedGeneration", 5}, {ready_field, ready}, {"updatedReplicas", updated}}}};
}

class StatusFlowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = *ParseMoEModel(Minimal());
    desired_ = *ComputeDesiredState(model_);
  }
  // Computes the status at `now`, feeds it back as the model's status, returns the Events.
  std::vector<EventSpec> Step(const ObservedChildren& observed, const std::string& now) {
    status_ = ComputeStatus(model_, desired_, observed, now);
    MoEModelStatus next = *ParseMoEModelStatus(status_);
    std::vector<EventSpec> events = TransitionEvents(model_.status, next);
    model_.status = next;
    return events;
  }
  std::string Cond(const std::string& type, const std::string& field) {
    for (const json& c : status_["conditions"]) {
      if (c["type"] == type) return c[field].is_string() ? c[field].get<std::string>() : c[field].dump();
    }
    return "<none>";
  }
  MoEModel model_;
  DesiredState desired_;
  json status_;
};

TEST_F(StatusFlowTest, PendingThenProgressingThenReadyThenDegraded) {
  const uint64_t v = desired_.placement.version;
  EXPECT_EQ(Step({}, "T0"), (std::vector<EventSpec>{{"Normal", "Creating",
                                                     "creating the expert shards and the router"}}));
  EXPECT_EQ(status_["phase"], "Pending");
  EXPECT_EQ(status_["selector"], "app.kubernetes.io/instance=m,app.kubernetes.io/component=expert-shard");
  EXPECT_EQ(status_["routerEndpoint"], "m-router.ns.svc:8000");
  EXPECT_EQ(status_["placementVersion"], v);
  EXPECT_EQ(status_["observedGeneration"], 3);
  EXPECT_EQ(Cond("Ready", "observedGeneration"), "3");

  // Pods created, one shard loading: still progressing, Progressing keeps its T0 transition time.
  json sts = Workload(2, 1, 2, v, "readyReplicas");
  json dep = Workload(1, 1, 1, v, "availableReplicas");
  EXPECT_TRUE(Step({&sts, &dep}, "T1").empty());
  EXPECT_EQ(status_["phase"], "Progressing");
  EXPECT_EQ(status_["readyShards"], 1);
  EXPECT_EQ(Cond("Progressing", "reason"), "WaitingForReadiness");
  EXPECT_EQ(Cond("Progressing", "lastTransitionTime"), "T0");
  EXPECT_EQ(Cond("Ready", "lastTransitionTime"), "T0");

  sts = Workload(2, 2, 2, v, "readyReplicas");
  std::vector<EventSpec> ready = Step({&sts, &dep}, "T2");
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].type, "Normal");
  EXPECT_EQ(ready[0].reason, "Ready");
  EXPECT_EQ(status_["phase"], "Ready");
  EXPECT_EQ(Cond("Ready", "status"), "True");
  EXPECT_EQ(Cond("Ready", "lastTransitionTime"), "T2");
  EXPECT_EQ(Cond("Progressing", "status"), "False");
  EXPECT_EQ(Cond("Progressing", "lastTransitionTime"), "T2");
  EXPECT_EQ(Cond("Degraded", "lastTransitionTime"), "T0");  // False all along

  EXPECT_TRUE(Step({&sts, &dep}, "T3").empty());  // nothing changed: no events, same times
  EXPECT_EQ(Cond("Ready", "lastTransitionTime"), "T2");

  // A shard dies after the rollout had finished: Degraded, not Progressing.
  sts = Workload(2, 1, 2, v, "readyReplicas");
  std::vector<EventSpec> lost = Step({&sts, &dep}, "T4");
  EXPECT_EQ(status_["phase"], "Degraded");
  ASSERT_EQ(lost.size(), 2u);
  EXPECT_EQ(lost[0].type, "Warning");
  EXPECT_EQ(lost[0].reason, "ShardsUnavailable");
  EXPECT_EQ(lost[1].reason, "NotReady");
  EXPECT_EQ(Cond("Degraded", "lastTransitionTime"), "T4");

  sts = Workload(2, 2, 2, v, "readyReplicas");
  std::vector<EventSpec> back = Step({&sts, &dep}, "T5");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].reason, "Recovered");
  EXPECT_EQ(back[1].reason, "Ready");
}

TEST_F(StatusFlowTest, ScalingRollsOutANewPlacement) {
  const uint64_t v1 = desired_.placement.version;
  json sts = Workload(2, 2, 2, v1, "readyReplicas");
  json dep = Workload(1, 1, 1, v1, "availableReplicas");
  Step({&sts, &dep}, "T0");
  ASSERT_EQ(status_["phase"], "Ready");

  // kubectl scale moe/m --replicas=4: new generation, new placement.
  json object = Minimal();
  object["metadata"]["generation"] = 4;
  object["spec"]["experts"]["shards"] = 4;
  MoEModelStatus previous = model_.status;
  model_ = *ParseMoEModel(object);
  model_.status = previous;
  desired_ = *ComputeDesiredState(model_);
  const uint64_t v2 = desired_.placement.version;
  ASSERT_NE(v1, v2);
  // The informer still shows the old StatefulSet: Progressing, rolling out.
  std::vector<EventSpec> events = Step({&sts, &dep}, "T1");
  EXPECT_EQ(status_["phase"], "Progressing");
  EXPECT_EQ(status_["placementVersion"], v2);
  EXPECT_EQ(status_["shards"], 4);
  EXPECT_EQ(Cond("Progressing", "reason"), "RollingOut");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].reason, "PlacementChanged");
  EXPECT_THAT(events[0].message, HasSubstr(std::to_string(v1) + " -> " + std::to_string(v2)));
  EXPECT_EQ(events[1].reason, "RollingOut");
  EXPECT_EQ(events[2].reason, "NotReady");

  sts = Workload(4, 4, 4, v2, "readyReplicas");
  dep = Workload(1, 1, 1, v2, "availableReplicas");
  Step({&sts, &dep}, "T2");
  EXPECT_EQ(status_["phase"], "Ready");
  EXPECT_EQ(status_["readyShards"], 4);
}

TEST_F(StatusFlowTest, InvalidSpecIsDegradedAndKeepsLastPlacement) {
  const uint64_t v = desired_.placement.version;
  json sts = Workload(2, 2, 2, v, "readyReplicas");
  json dep = Workload(1, 1, 1, v, "availableReplicas");
  Step({&sts, &dep}, "T0");
  status_ = ComputeStatus(model_, DesiredState{}, {&sts, &dep}, "T1",
                          InvalidArgument("spec: cannot place experts: boom"));
  EXPECT_EQ(status_["phase"], "Degraded");
  EXPECT_EQ(status_["placementVersion"], v);
  EXPECT_EQ(Cond("Degraded", "reason"), "InvalidSpec");
  EXPECT_EQ(Cond("Degraded", "message"), "spec: cannot place experts: boom");
}

TEST(TransitionEventsTest, NothingWhenEqual) {
  MoEModelStatus s;
  s.placement_version = 7;
  s.conditions = {{"Ready", "True", "AllShardsReady", "ok", 1, "T"}};
  EXPECT_TRUE(TransitionEvents(s, s).empty());
}

}  // namespace
}  // namespace kubemoe::op
