// `kubemoe up`'s plan against the operator's pods: the local processes get the pod templates'
// arguments, changed only where local/local_plan.h says (paths, ports, shard index) and extended
// only by the flags it lists, so the local cluster and the operator cannot drift apart.
#include "local/local_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "local/yaml_json.h"

namespace kubemoe::local {
namespace {

using ::testing::HasSubstr;

std::string ReadSample(const std::string& name) {
  std::ifstream in(std::string(KUBEMOE_SOURCE_DIR) + "/manifests/samples/" + name);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Flag(const std::string& arg) { return arg.substr(0, arg.find('=')); }

// Every pod argument appears unchanged unless substituted; the extra ones are the listed flags.
void ExpectFaithful(const std::vector<std::string>& pod, const std::vector<std::string>& local) {
  ASSERT_GE(local.size(), pod.size());
  for (size_t i = 0; i < pod.size(); ++i) {
    EXPECT_EQ(Flag(local[i]), Flag(pod[i]));
    if (!SubstitutedFlags().count(Flag(pod[i]))) {
      EXPECT_EQ(local[i], pod[i]);
    }
  }
  for (size_t i = pod.size(); i < local.size(); ++i) {
    EXPECT_TRUE(AddedFlags().count(Flag(local[i]))) << local[i];
  }
}

TEST(LocalPlan, EverySampleBecomesTheOperatorsPodsWithLocalPathsAndPorts) {
  for (const char* sample : {"tiny-cpu.yaml", "deepseek-v2-lite.yaml", "deepseek-v2.yaml"}) {
    SCOPED_TRACE(sample);
    auto model = ParseMoEModelYaml(ReadSample(sample), sample);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    LocalSettings s;
    s.model_dir = "/data/model";
    s.run_dir = "/run/x";
    s.http_port = 8123;
    s.cores = 12;
    for (int i = 0; i < model->spec.experts.shards; ++i) {
      s.worker_grpc_ports.push_back(40000 + i);
      s.worker_metrics_ports.push_back(41000 + i);
    }
    auto plan = PlanLocalCluster(*model, s);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    ASSERT_EQ(plan->workers.size(), static_cast<size_t>(model->spec.experts.shards));
    EXPECT_THAT(plan->placement_yaml, HasSubstr("version: " + std::to_string(plan->placement_version)));
    ExpectFaithful(plan->router_pod_args, plan->router.args);
    EXPECT_THAT(plan->router.args, ::testing::Contains("--model-dir=/data/model"));
    EXPECT_THAT(plan->router.args, ::testing::Contains("--placement=/run/x/placement.yaml"));
    EXPECT_THAT(plan->router.args, ::testing::Contains("--http-port=8123"));
    EXPECT_THAT(plan->router.args, ::testing::Contains("--http-address=127.0.0.1"));
    std::string addresses = "--expert-addresses=";
    for (size_t i = 0; i < plan->workers.size(); ++i) {
      SCOPED_TRACE(plan->workers[i].name);
      ExpectFaithful(plan->worker_pod_args, plan->workers[i].args);
      EXPECT_THAT(plan->workers[i].args,
                  ::testing::Contains("--shard-index=" + std::to_string(i)));
      EXPECT_THAT(plan->workers[i].args,
                  ::testing::Contains("--grpc-port=" + std::to_string(40000 + i)));
      EXPECT_THAT(plan->workers[i].args,
                  ::testing::Contains("--metrics-port=" + std::to_string(41000 + i)));
      EXPECT_THAT(plan->workers[i].args, ::testing::Contains("--listen-address=127.0.0.1"));
      EXPECT_EQ(plan->workers[i].env.count("KUBEMOE_SHARD_INDEX"), 0u);
      EXPECT_EQ(plan->workers[i].env.at("KUBEMOE_MODEL_NAME"), model->spec.model.name);
      addresses += (i ? ",127.0.0.1:" : "127.0.0.1:") + std::to_string(40000 + i);
    }
    EXPECT_THAT(plan->router.args, ::testing::Contains(addresses));
    // The machine's cores are shared out between the router and the workers.
    const std::string threads =
        "--threads=" + std::to_string(std::max(1, 12 / (model->spec.experts.shards + 1)));
    EXPECT_THAT(plan->router.args, ::testing::Contains(threads));
    for (const ProcessSpec& w : plan->workers) EXPECT_THAT(w.args, ::testing::Contains(threads));
    // The pod templates really carry what we substitute.
    EXPECT_THAT(plan->worker_pod_args, ::testing::Contains("--shard-index=$(KUBEMOE_SHARD_INDEX)"));
  }
}

TEST(LocalPlan, RejectsWhatTheOperatorRejects) {
  std::string yaml = ReadSample("tiny-cpu.yaml");
  yaml.replace(yaml.find("shards: 2"), 9, "shards: 0");
  auto model = ParseMoEModelYaml(yaml, "bad.yaml");
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(model.status().message(), HasSubstr("bad.yaml: spec.experts.shards"));
  EXPECT_FALSE(ParseMoEModelYaml("a: [1, 2", "broken.yaml").ok());
  EXPECT_FALSE(ParseMoEModelYaml("- 1\n- 2\n", "list.yaml").ok());
}

TEST(LocalPlan, PortsMustMatchTheShards) {
  auto model = ParseMoEModelYaml(ReadSample("tiny-cpu.yaml"), "tiny-cpu.yaml");
  ASSERT_TRUE(model.ok());
  LocalSettings s;
  s.worker_grpc_ports = {1};
  s.worker_metrics_ports = {2};
  EXPECT_EQ(PlanLocalCluster(*model, s).status().code(), StatusCode::kInvalidArgument);
}

TEST(YamlJson, CoreSchemaScalars) {
  auto j = YamlToJson("a: 1\nb: '1'\nc: 1.5\nd: true\ne: ~\nf: [x, 2]\ng: 1000m\n", "t");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)["a"], 1);
  EXPECT_EQ((*j)["b"], "1");
  EXPECT_EQ((*j)["c"], 1.5);
  EXPECT_EQ((*j)["d"], true);
  EXPECT_TRUE((*j)["e"].is_null());
  EXPECT_EQ((*j)["f"][1], 2);
  EXPECT_EQ((*j)["g"], "1000m");
}

}  // namespace
}  // namespace kubemoe::local
