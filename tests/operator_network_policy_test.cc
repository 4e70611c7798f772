// spec.networkPolicy: parsing (defaults, the CRD's rules, pruning), the NetworkPolicy the
// operator builds from it, and the reconciler deleting that policy when the spec turns it off
// (against the fake API server).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "operator/api/reconcile.h"
#include "tests/operator_moemodel_fixture.h"
#include "operator/controller/controller.h"
#include "operator_reconciler_fixture.h"

namespace kubemoe::op {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::WaitUntil;

json Minimal() { return fixture::MinimalMoEModel(1); }
using fixture::ParseError;

const json* Find(const DesiredState& d, const std::string& kind) {
  for (const json& o : d.objects) {
    if (o["kind"] == kind) return &o;
  }
  return nullptr;
}

json PolicyOf(const json& object) {
  StatusOr<MoEModel> m = ParseMoEModel(object);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  if (!m.ok()) return nullptr;
  DesiredState d = *ComputeDesiredState(*m);
  const json* policy = Find(d, "NetworkPolicy");
  return policy ? *policy : json(nullptr);
}

const json kFromRouter = {{"podSelector",
                           {{"matchLabels",
                             {{"app.kubernetes.io/instance", "m"},
                              {"app.kubernetes.io/component", "router"}}}}}};

TEST(NetworkPolicySpecTest, DefaultsAdmitTheRouterToGrpcAndEveryPodToMetrics) {
  StatusOr<MoEModel> m = ParseMoEModel(Minimal());
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->spec.network_policy.enabled);
  const json policy = PolicyOf(Minimal());
  ASSERT_TRUE(policy.is_object());
  EXPECT_EQ(policy["apiVersion"], "networking.k8s.io/v1");
  EXPECT_EQ(policy["metadata"]["name"], "m-experts");
  EXPECT_EQ(policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
            "expert-shard");
  EXPECT_EQ(policy["spec"]["policyTypes"], json::array({"Ingress"}));
  const json& rules = policy["spec"]["ingress"];
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0]["from"], json::array({kFromRouter}));
  EXPECT_EQ(rules[0]["ports"], json::parse(R"([{"protocol": "TCP", "port": 50051}])"));
  EXPECT_EQ(rules[1]["from"], json::parse(R"([{"namespaceSelector": {},
      "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}])"));
  EXPECT_EQ(rules[1]["ports"], json::parse(R"([{"protocol": "TCP", "port": 9090}])"));
}

TEST(NetworkPolicySpecTest, NcclAdmitsRouterAndPeersOnEveryPort) {
  json j = Minimal();
  j["spec"]["experts"]["deviceType"] = "gpu";
  j["spec"]["transport"] = "nccl";
  const json rules = PolicyOf(j)["spec"]["ingress"];
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_FALSE(rules[0].contains("ports")) << "NCCL uses ephemeral ports";
  ASSERT_EQ(rules[0]["from"].size(), 2u);
  EXPECT_EQ(rules[0]["from"][0], kFromRouter);
  EXPECT_EQ(rules[0]["from"][1]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
            "expert-shard");
}

TEST(NetworkPolicySpecTest, MetricsFromIsCopiedPrunedAndEmptyMeansNoOne) {
  json j = Minimal();
  j["spec"]["networkPolicy"]["metricsFrom"] = json::parse(R"([
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
     "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["prom"]}]},
     "unknownField": 1},
    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}])");
  json rules = PolicyOf(j)["spec"]["ingress"];
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[1]["from"], json::parse(R"([
    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
     "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["prom"]}]}},
    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}])"));

  // An ingress rule without `from` would admit everyone: [] leaves the metrics rule out.
  j["spec"]["networkPolicy"]["metricsFrom"] = json::array();
  rules = PolicyOf(j)["spec"]["ingress"];
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0]["ports"][0]["port"], 50051);
}

TEST(NetworkPolicySpecTest, DisabledMeansNoPolicyAndItsDeletion) {
  json j = Minimal();
  j["spec"]["networkPolicy"]["enabled"] = false;
  StatusOr<MoEModel> m = ParseMoEModel(j);
  ASSERT_TRUE(m.ok());
  DesiredState d = *ComputeDesiredState(*m);
  EXPECT_EQ(Find(d, "NetworkPolicy"), nullptr);
  EXPECT_EQ(d.objects.size(), 6u);
  ASSERT_EQ(d.absent.size(), 1u);
  EXPECT_EQ(d.absent[0], (ChildRef{"networking.k8s.io/v1", "NetworkPolicy", "m-experts"}));
  EXPECT_TRUE(ComputeDesiredState(*ParseMoEModel(Minimal()))->absent.empty());
}

TEST(NetworkPolicySpecTest, ErrorsNameTheFieldPath) {
  auto with = [](const char* network_policy) {
    json j = Minimal();
    j["spec"]["networkPolicy"] = json::parse(network_policy);
    return j;
  };
  EXPECT_EQ(ParseError(with(R"({"enabled": "yes"})")),
            "spec.networkPolicy.enabled must be a boolean");
  EXPECT_EQ(ParseError(with(R"({"metricsFrom": {}})")), "spec.networkPolicy.metricsFrom must be a list");
  EXPECT_EQ(ParseError(with(R"({"metricsFrom": [{}]})")),
            "spec.networkPolicy.metricsFrom[0] must set podSelector, namespaceSelector or ipBlock");
  EXPECT_THAT(ParseError(with(R"({"metricsFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"},
                                                   "podSelector": {}}]})")),
              HasSubstr("ipBlock cannot be combined"));
  EXPECT_EQ(ParseError(with(R"({"metricsFrom": [{"ipBlock": {}}]})")),
            "spec.networkPolicy.metricsFrom[0].ipBlock.cidr is required");
  EXPECT_THAT(ParseError(with(R"({"metricsFrom": [{"podSelector": {"matchExpressions": [
                                    {"key": "a", "operator": "Near"}]}}]})")),
              HasSubstr("metricsFrom[0].podSelector.matchExpressions[0].operator must be In"));
  EXPECT_THAT(ParseError(with(R"({"metricsFrom": [{"podSelector": {"matchExpressions": [
                                    {"key": "a", "operator": "In"}]}}]})")),
              HasSubstr("In and NotIn need values"));
  EXPECT_THAT(ParseError(with(R"({"metricsFrom": [{"namespaceSelector": {"matchLabels": {"a": 1}}}]})")),
              HasSubstr("metricsFrom[0].namespaceSelector.matchLabels.a must be a string"));
  json many = with("{}");
  many["spec"]["networkPolicy"]["metricsFrom"] = json::array();
  for (int i = 0; i < 33; ++i) many["spec"]["networkPolicy"]["metricsFrom"].push_back(kFromRouter);
  EXPECT_THAT(ParseError(many), HasSubstr("more than 32 items"));
}

using NetworkPolicyReconcileTest = ReconcilerFixture;

// enabled: true creates the policy; false deletes it; a same-named policy the model does not
// control is left alone.
TEST_F(NetworkPolicyReconcileTest, DisablingDeletesOnlyTheModelsPolicy) {
  ASSERT_TRUE(WaitUntil([&] { return server_.client().Create(k8s::MoEModels(), "default", model_).ok(); }))
      << server_.Log();
  ControllerOptions options;
  options.namespace_ = "default";
  options.resync_period = std::chrono::seconds(0);
  options.watch_timeout = std::chrono::seconds(10);
  Controller controller(server_.client(), options, metrics_);
  controller.StartInformers();
  ASSERT_TRUE(controller.WaitForCacheSync(std::chrono::seconds(10))) << server_.Log();
  controller.StartWorkers();
  const std::string name = model_["metadata"]["name"];
  const std::string policy = name + "-experts";
  auto exists = [&] { return server_.client().Get(k8s::NetworkPolicies(), "default", policy).ok(); };
  ASSERT_TRUE(WaitUntil(exists, std::chrono::seconds(20))) << server_.Log();

  json patch = {{"spec", {{"networkPolicy", {{"enabled", false}}}}}};
  ASSERT_TRUE(server_.client().MergePatch(k8s::MoEModels(), "default", name, patch).ok());
  EXPECT_TRUE(WaitUntil([&] { return !exists(); }, std::chrono::seconds(20))) << server_.Log();

  // Someone else's policy of that name (no owner reference) survives reconciles.
  json foreign = {{"apiVersion", "networking.k8s.io/v1"},
                  {"kind", "NetworkPolicy"},
                  {"metadata",
                   {{"name", policy},
                    {"namespace", "default"},
                    {"labels", {{"app.kubernetes.io/managed-by", "kubemoe-operator"}}}}},
                  {"spec", {{"podSelector", json::object()}}}};
  ASSERT_TRUE(server_.client().Create(k8s::NetworkPolicies(), "default", foreign).ok());
  const double before = Successes(metrics_);
  controller.ResyncAll();
  ASSERT_TRUE(WaitUntil([&] { return Successes(metrics_) > before && controller.queue().Len() == 0; }));
  EXPECT_TRUE(exists());
  controller.Stop();
}

}  // namespace
}  // namespace kubemoe::op
