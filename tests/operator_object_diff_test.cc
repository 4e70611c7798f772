// Semantic subset comparison of desired and live objects (operator/controller/object_diff.h).
#include "operator/controller/object_diff.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace kubemoe::op {
namespace {

using nlohmann::json;

// IsSemanticSubset for inputs without a malformed quantity.
bool Subset(const json& desired, const json& live, std::string* where = nullptr) {
  StatusOr<bool> same = IsSemanticSubset(desired, live, where);
  EXPECT_TRUE(same.ok()) << same.status().ToString();
  return same.ok() && *same;
}

TEST(ObjectDiffTest, ServerPopulatedFieldsAreIgnored) {
  json desired = {{"metadata", {{"name", "a"}, {"labels", {{"x", "1"}}}}},
                  {"spec", {{"replicas", 2}, {"template", {{"containers", {{{"name", "c"}, {"image", "i"}}}}}}}}};
  json live = desired;
  live["metadata"]["uid"] = "u";
  live["metadata"]["resourceVersion"] = "9";
  live["status"] = {{"readyReplicas", 1}};
  live["spec"]["template"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log";
  EXPECT_TRUE(Subset(desired, live));
}

TEST(ObjectDiffTest, DifferencesAreFoundWithTheirPath) {
  json desired = {{"spec", {{"replicas", 2}, {"ports", {{{"port", 80}}, {{"port", 81}}}}}}};
  json live = desired;
  live["spec"]["replicas"] = 3;
  std::string where;
  EXPECT_FALSE(Subset(desired, live, &where));
  EXPECT_EQ(where, ".spec.replicas");

  live = desired;
  live["spec"]["ports"][1]["port"] = 82;
  EXPECT_FALSE(Subset(desired, live, &where));
  EXPECT_EQ(where, ".spec.ports[1].port");

  live = desired;
  live["spec"]["ports"].push_back({{"port", 83}});
  EXPECT_FALSE(Subset(desired, live)) << "extra list elements are a difference";

  live = desired;
  live["spec"].erase("replicas");
  EXPECT_FALSE(Subset(desired, live, &where));
  EXPECT_EQ(where, ".spec.replicas");

  EXPECT_FALSE(Subset(json{{"a", "1"}}, json{{"a", 1}})) << "types matter";
}

TEST(ObjectDiffTest, EmptyDesiredValuesMatchMissingAndNumbersCompareNumerically) {
  json desired = {{"spec", {{"nodeSelector", json::object()}, {"tolerations", json::array()}, {"x", nullptr},
                            {"ratio", 1}}}};
  json live = {{"spec", {{"ratio", 1.0}}}};
  EXPECT_TRUE(Subset(desired, live));
  EXPECT_FALSE(Subset(json{{"ratio", 1}}, json{{"ratio", 1.5}}));
}

TEST(ObjectDiffTest, QuantitiesCompareByValue) {
  // What we apply and what the API server gives back: the server rewrites quantities canonically.
  json desired = {{"spec", {{"template", {{"spec", {{"containers", {{{"name", "worker"},
      {"resources", {{"limits", {{"cpu", "1000m"}, {"memory", "1024Mi"}, {"nvidia.com/gpu", 1}}},
                     {"requests", {{"cpu", 0.5}, {"memory", "1e9"}}}}}}}},
      {"overhead", {{"cpu", "250m"}}},
      {"volumes", {{{"name", "scratch"}, {"emptyDir", {{"sizeLimit", "2048Mi"}}}}}}}}}}}}};
  json live = desired;
  json& container = live["spec"]["template"]["spec"]["containers"][0];
  container["resources"]["limits"] = {{"cpu", "1"}, {"memory", "1Gi"}, {"nvidia.com/gpu", "1"}};
  container["resources"]["requests"] = {{"cpu", "500m"}, {"memory", "1G"}};
  live["spec"]["template"]["spec"]["overhead"]["cpu"] = "0.25";
  live["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] = "2Gi";
  EXPECT_TRUE(Subset(desired, live));

  std::string where;
  container["resources"]["limits"]["memory"] = "1G";  // 10^9, not 2^30
  EXPECT_FALSE(Subset(desired, live, &where));
  EXPECT_EQ(where, ".spec.template.spec.containers[0].resources.limits.memory");

  // Only quantity fields compare by value: elsewhere "1000m" and "1" are different strings.
  EXPECT_FALSE(Subset(json{{"env", {{{"name", "X"}, {"value", "1000m"}}}}},
                      json{{"env", {{{"name", "X"}, {"value", "1"}}}}}));
  EXPECT_FALSE(Subset(json{{"limits", {{"cpu", "1000m"}}}}, json{{"limits", {{"cpu", "1"}}}}))
      << "limits outside resources is not a ResourceRequirements";
}

TEST(ObjectDiffTest, MalformedQuantityIsAnErrorThatNamesItsPath) {
  json desired = {{"spec", {{"resources", {{"limits", {{"cpu", "one"}}}}}}}};
  json live = {{"spec", {{"resources", {{"limits", {{"cpu", "1"}}}}}}}};
  StatusOr<bool> same = IsSemanticSubset(desired, live);
  ASSERT_FALSE(same.ok());
  EXPECT_NE(same.status().message().find(".spec.resources.limits.cpu"), std::string::npos)
      << same.status().message();
  EXPECT_NE(same.status().message().find("invalid quantity \"one\""), std::string::npos)
      << same.status().message();
  same = IsSemanticSubset(live, desired);
  ASSERT_FALSE(same.ok()) << "a malformed live quantity is reported too";
  EXPECT_NE(same.status().message().find("live"), std::string::npos) << same.status().message();
}

}  // namespace
}  // namespace kubemoe::op
