// Golden-file tests of ComputeDesiredState for the sample MoEModels in manifests/samples/.
//
// Every desired object must equal tests/data/operator/golden/<sample>/<kind>-<name>.json (kind in
// lower case), and no golden file may be left over. After an intended change, regenerate with
//   KUBEMOE_UPDATE_GOLDEN=1 build-X/tests/operator_desired_state_test
// and review the diff of tests/data/operator/golden/ before committing it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "local/yaml_json.h"
#include "operator/api/reconcile.h"
#include "routing/device_limited.h"

namespace kubemoe::op {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

json LoadSample(const std::string& file) {
  const fs::path path = fs::path(KUBEMOE_SOURCE_DIR) / "manifests" / "samples" / file;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  StatusOr<json> parsed = local::YamlToJson(text.str(), path.string());
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  json object = parsed.ok() ? *parsed : json::object();
  // What the API server adds; fixed so the golden files are stable.
  object["metadata"]["namespace"] = "models";
  object["metadata"]["uid"] = "00000000-0000-4000-8000-000000000001";
  object["metadata"]["generation"] = 1;
  return object;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class GoldenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenTest, DesiredObjectsMatchGoldenFiles) {
  const std::string sample = GetParam();
  StatusOr<MoEModel> model = ParseMoEModel(LoadSample(sample + ".yaml"));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  StatusOr<DesiredState> desired = ComputeDesiredState(*model);
  ASSERT_TRUE(desired.ok()) << desired.status().ToString();
  ASSERT_EQ(desired->objects.size(), 7u);

  const fs::path dir = fs::path(KUBEMOE_SOURCE_DIR) / "tests/data/operator/golden" / sample;
  const char* update_env = std::getenv("KUBEMOE_UPDATE_GOLDEN");
  const bool update = update_env != nullptr && std::string(update_env) == "1";
  if (update) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  std::set<std::string> expected_files;
  for (const json& object : desired->objects) {
    std::string kind = object["kind"];
    for (char& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string file = kind + "-" + object["metadata"]["name"].get<std::string>() + ".json";
    expected_files.insert(file);
    if (update) {
      std::ofstream(dir / file) << object.dump(2) << "\n";
      continue;
    }
    ASSERT_TRUE(fs::exists(dir / file)) << "missing golden file " << (dir / file)
                                        << " (run with KUBEMOE_UPDATE_GOLDEN=1)";
    json golden = json::parse(ReadFile(dir / file));
    EXPECT_EQ(object, golden) << "differs from " << (dir / file)
                              << "; diff:\n" << json::diff(golden, object).dump(2);
  }
  for (const auto& entry : fs::directory_iterator(dir)) {
    EXPECT_TRUE(expected_files.count(entry.path().filename().string()))
        << "stale golden file " << entry.path();
  }
}

INSTANTIATE_TEST_SUITE_P(Samples, GoldenTest,
                         ::testing::Values("tiny-cpu", "deepseek-v2-lite", "deepseek-v2"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name) if (c == '-') c = '_';
                           return name;
                         });

const json* Find(const DesiredState& d, const std::string& kind) {
  for (const json& o : d.objects) {
    if (o["kind"] == kind) return &o;
  }
  return nullptr;
}

// Properties the golden files must have, checked independently of their bytes.
TEST(DesiredStateTest, TinyObjectsHaveTheContractedShape) {
  StatusOr<MoEModel> model = ParseMoEModel(LoadSample("tiny-cpu.yaml"));
  ASSERT_TRUE(model.ok());
  DesiredState d = *ComputeDesiredState(*model);
  for (const json& o : d.objects) {
    const json& owner = o["metadata"]["ownerReferences"][0];
    EXPECT_EQ(owner["kind"], "MoEModel");
    EXPECT_EQ(owner["uid"], "00000000-0000-4000-8000-000000000001");
    EXPECT_EQ(owner["controller"], true);
    EXPECT_EQ(owner["blockOwnerDeletion"], true);
    EXPECT_EQ(o["metadata"]["labels"]["app.kubernetes.io/managed-by"], "kubemoe-operator");
    EXPECT_EQ(o["metadata"]["labels"]["app.kubernetes.io/instance"], "tiny");
    EXPECT_EQ(o["metadata"]["namespace"], "models");
  }
  const json& sts = *Find(d, "StatefulSet");
  EXPECT_EQ(sts["spec"]["replicas"], 2);
  const json& worker = sts["spec"]["template"]["spec"]["containers"][0];
  EXPECT_FALSE(worker["resources"]["limits"].contains("nvidia.com/gpu"));  // CPU sample
  for (const char* kind : {"StatefulSet", "Deployment"}) {  // neither calls the API server
    EXPECT_EQ((*Find(d, kind))["spec"]["template"]["spec"]["automountServiceAccountToken"], false);
  }
  EXPECT_EQ(sts["spec"]["template"]["metadata"]["annotations"]["kubemoe.io/placement-version"],
            std::to_string(d.placement.version));
  const json& cm = *Find(d, "ConfigMap");
  StatusOr<placement::Placement> from_cm =
      placement::ParsePlacementYaml(cm["data"]["placement.yaml"].get<std::string>(), "cm");
  ASSERT_TRUE(from_cm.ok()) << from_cm.status().ToString();
  EXPECT_EQ(from_cm->version, d.placement.version);
  EXPECT_EQ(placement::ExpertsOnDevice(*from_cm, 1, 1).front(), 8);
}

TEST(DesiredStateTest, GpuSampleRequestsOneGpuPerDevice) {
  StatusOr<MoEModel> model = ParseMoEModel(LoadSample("deepseek-v2-lite.yaml"));
  ASSERT_TRUE(model.ok());
  DesiredState d = *ComputeDesiredState(*model);
  const json& worker = (*Find(d, "StatefulSet"))["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(worker["resources"]["limits"]["nvidia.com/gpu"], "8");
  EXPECT_EQ(worker["readinessProbe"]["grpc"]["port"], kWorkerGrpcPort);
  EXPECT_EQ(worker["volumeMounts"][0]["readOnly"], true);
}

TEST(DesiredStateTest, ScalingChangesPlacementVersionAndWorkloads) {
  json object = LoadSample("deepseek-v2.yaml");
  DesiredState before = *ComputeDesiredState(*ParseMoEModel(object));
  object["spec"]["experts"]["shards"] = 4;  // what `kubectl scale moe/deepseek-v2 --replicas=4` writes
  object["spec"]["experts"]["devicesPerShard"] = 2;
  DesiredState after = *ComputeDesiredState(*ParseMoEModel(object));
  EXPECT_NE(before.placement.version, after.placement.version);
  EXPECT_EQ((*Find(after, "StatefulSet"))["spec"]["replicas"], 4);
  EXPECT_NE((*Find(after, "ConfigMap"))["data"], (*Find(before, "ConfigMap"))["data"]);
  EXPECT_EQ((*Find(after, "Deployment"))["spec"]["template"]["metadata"]["annotations"]
                ["kubemoe.io/placement-version"],
            std::to_string(after.placement.version));
  // Same spec again: same bytes (pure).
  DesiredState again = *ComputeDesiredState(*ParseMoEModel(object));
  EXPECT_EQ(again.objects, after.objects);
}

TEST(DesiredStateTest, TlsMountsTheSecretAndProbesWorkersOverHttp) {
  json object = LoadSample("tiny-cpu.yaml");
  object["spec"]["tls"] = {{"secretName", "tiny-tls"}};
  StatusOr<MoEModel> model = ParseMoEModel(object);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  DesiredState d = *ComputeDesiredState(*model);
  for (const auto& [kind, flag] : {std::pair<std::string, std::string>{"StatefulSet", "--tls-dir"},
                                   {"Deployment", "--expert-tls-dir"}}) {
    const json& pod = (*Find(d, kind))["spec"]["template"]["spec"];
    const json& c = pod["containers"][0];
    EXPECT_THAT(c["args"].dump(), HasSubstr("\"" + flag + "=/etc/kubemoe/tls\"")) << kind;
    EXPECT_THAT(pod["volumes"].dump(), HasSubstr(R"({"name":"tls","secret":{"secretName":"tiny-tls"}})"));
    EXPECT_THAT(c["volumeMounts"].dump(),
                HasSubstr(R"({"mountPath":"/etc/kubemoe/tls","name":"tls","readOnly":true})"));
  }
  // A kubelet gRPC probe has no client certificate: the TLS worker is probed over HTTP.
  const json& worker = (*Find(d, "StatefulSet"))["spec"]["template"]["spec"]["containers"][0];
  for (const char* probe : {"startupProbe", "readinessProbe", "livenessProbe"}) {
    EXPECT_FALSE(worker[probe].contains("grpc")) << probe;
    EXPECT_EQ(worker[probe]["httpGet"]["port"], "metrics") << probe;
  }
  EXPECT_EQ(worker["readinessProbe"]["httpGet"]["path"], "/readyz");

  object["spec"]["tls"] = json::object();
  EXPECT_THAT(ParseMoEModel(object).status().message(), HasSubstr("spec.tls.secretName must be set"));
  object["spec"]["tls"] = {{"secretName", 7}};
  EXPECT_THAT(ParseMoEModel(object).status().message(), HasSubstr("spec.tls.secretName must be a string"));
  object = LoadSample("deepseek-v2-lite.yaml");
  object["spec"]["transport"] = "nccl";
  object["spec"]["tls"] = {{"secretName", "x"}};
  EXPECT_THAT(ParseMoEModel(object).status().message(), HasSubstr("transport grpc only"));
}

TEST(DesiredStateTest, InfeasiblePlacementIsAnError) {
  json object = LoadSample("tiny-cpu.yaml");
  object["spec"]["experts"]["shards"] = 16;  // 16 devices, 1 expert each
  object["spec"]["routing"]["deviceLimit"] = 3;  // 3 x 1 < top-4
  StatusOr<MoEModel> model = ParseMoEModel(object);
  EXPECT_THAT(model.status().message(), HasSubstr("spec.routing.deviceLimit (3)"));
}

// 4 experts on 4 single-device shards, expert 0 replicated on all 4 ({0} {0,1} {0,2} {0,3}),
// top-3, deviceLimit `m`.
json ExpertZeroEverywhere(int32_t m) {
  json object = LoadSample("tiny-cpu.yaml");
  object["spec"]["model"]["routedExperts"] = 4;
  object["spec"]["model"]["moeLayers"] = 1;
  object["spec"]["model"]["expertsPerToken"] = 3;
  object["spec"]["experts"]["shards"] = 4;
  object["spec"]["experts"]["redundant"] = json::array({{{"expert", 0}, {"replicas", 4}}});
  object["spec"]["routing"]["deviceLimit"] = m;
  return object;
}

std::string ConditionField(const json& status, const std::string& type, const std::string& field) {
  for (const json& c : status["conditions"]) {
    if (c["type"] == type) return c[field].get<std::string>();
  }
  return "<none>";
}

TEST(DesiredStateTest, DeviceLimitFeasibilityAgreesWithTheRouter) {
  // M = 2 is infeasible (devices {0, 1} host only experts 0 and 1): the spec check rejects it,
  // and so would the router. M = 3 is feasible: accepted by the spec check, the placement and the
  // router's own check on the placement the operator computes.
  EXPECT_FALSE(ParseMoEModel(ExpertZeroEverywhere(2)).ok());
  StatusOr<MoEModel> model = ParseMoEModel(ExpertZeroEverywhere(3));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  StatusOr<DesiredState> desired = ComputeDesiredState(*model);
  ASSERT_TRUE(desired.ok()) << desired.status().ToString();
  EXPECT_EQ(desired->objects.size(), 7u);
  const routing::DevicePlacement view{desired->placement.num_devices(),
                                      placement::ExpertDevices(desired->placement, 0)};
  EXPECT_TRUE(routing::ValidateDeviceLimit(view, 4, 3, 3).ok());
  EXPECT_FALSE(routing::ValidateDeviceLimit(view, 4, 3, 2).ok());

  // The placement check is the authoritative one: even for a model whose deviceLimit did not go
  // through ParseMoEModel's pre-check, an infeasible limit yields no objects and an InvalidSpec
  // status instead of a Ready router that would refuse to start.
  model->spec.routing.device_limit = 2;
  StatusOr<DesiredState> infeasible = ComputeDesiredState(*model);
  ASSERT_FALSE(infeasible.ok());
  EXPECT_THAT(infeasible.status().message(),
              HasSubstr("deviceLimit 2 is infeasible for topK 3 in MoE layer 0"));
  const json status =
      ComputeStatus(*model, DesiredState{}, ObservedChildren{}, "T0", infeasible.status());
  EXPECT_EQ(status["phase"], "Degraded");
  EXPECT_EQ(ConditionField(status, "Ready", "status"), "False");
  EXPECT_EQ(ConditionField(status, "Ready", "reason"), "InvalidSpec");
  EXPECT_EQ(ConditionField(status, "Degraded", "reason"), "InvalidSpec");
  EXPECT_THAT(ConditionField(status, "Degraded", "message"), HasSubstr("MoE layer 0"));
}

}  // namespace
}  // namespace kubemoe::op
