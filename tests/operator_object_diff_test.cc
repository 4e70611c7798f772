// Semantic subset comparison of desired and live objects (operator/controller/object_diff.h).
#include "operator/controller/object_diff.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace kubemoe::op {
namespace {

using nlohmann::json;

TEST(ObjectDiffTest, ServerPopulatedFieldsAreIgnored) {
  json desired = {{"metadata", {{"name", "a"}, {"labels", {{"x", "1"}}}}},
                  {"spec", {{"replicas", 2}, {"template", {{"containers", {{{"name", "c"}, {"image", "i"}}}}}}}}};
  json live = desired;
  live["metadata"]["uid"] = "u";
  live["metadata"]["resourceVersion"] = "9";
  live["status"] = {{"readyReplicas", 1}};
  live["spec"]["template"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log";
  EXPECT_TRUE(IsSemanticSubset(desired, live));
}

TEST(ObjectDiffTest, DifferencesAreFoundWithTheirPath) {
  json desired = {{"spec", {{"replicas", 2}, {"ports", {{{"port", 80}}, {{"port", 81}}}}}}};
  json live = desired;
  live["spec"]["replicas"] = 3;
  std::string where;
  EXPECT_FALSE(IsSemanticSubset(desired, live, &where));
  EXPECT_EQ(where, ".spec.replicas");

  live = desired;
  live["spec"]["ports"][1]["port"] = 82;
  EXPECT_FALSE(IsSemanticSubset(desired, live, &where));
  EXPECT_EQ(where, ".spec.ports[1].port");

  live = desired;
  live["spec"]["ports"].push_back({{"port", 83}});
  EXPECT_FALSE(IsSemanticSubset(desired, live)) << "extra list elements are a difference";

  live = desired;
  live["spec"].erase("replicas");
  EXPECT_FALSE(IsSemanticSubset(desired, live, &where));
  EXPECT_EQ(where, ".spec.replicas");

  EXPECT_FALSE(IsSemanticSubset(json{{"a", "1"}}, json{{"a", 1}})) << "types matter";
}

TEST(ObjectDiffTest, EmptyDesiredValuesMatchMissingAndNumbersCompareNumerically) {
  json desired = {{"spec", {{"nodeSelector", json::object()}, {"tolerations", json::array()}, {"x", nullptr},
                            {"ratio", 1}}}};
  json live = {{"spec", {{"ratio", 1.0}}}};
  EXPECT_TRUE(IsSemanticSubset(desired, live));
  EXPECT_FALSE(IsSemanticSubset(json{{"ratio", 1}}, json{{"ratio", 1.5}}));
}

}  // namespace
}  // namespace kubemoe::op
