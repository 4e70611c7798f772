// The set-up the reconciler's tests share: a fake API server with the MoEModel CRD installed,
// the tiny CPU sample model in namespace "default" (not yet created), and registered controller
// metrics.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/metrics.h"
#include "operator/controller/controller.h"
#include "operator_fake_apiserver.h"

namespace kubemoe::op {

// Successful reconciles so far (-1 when the metric is missing).
inline double Successes(const ControllerMetrics& m) {
  auto child = m.reconcile_total->WithLabels({"success"});
  return child.ok() ? (*child)->Value() : -1;
}

class ReconcilerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    KUBEMOE_REQUIRE_FAKE_APISERVER(server_);
    nlohmann::json crd = testing::LoadYamlFile("operator/crd/moemodels.kubemoe.io.yaml");
    auto made = server_.client().Raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &crd);
    ASSERT_TRUE(made.ok()) << made.error().ToString();
    model_ = testing::LoadYamlFile("manifests/samples/tiny-cpu.yaml");
    model_["metadata"]["namespace"] = "default";
    auto metrics = ControllerMetrics::Register(registry_);
    ASSERT_TRUE(metrics.ok()) << metrics.status().ToString();
    metrics_ = *metrics;
  }

  testing::FakeApiServer server_;
  nlohmann::json model_;
  metrics::Registry registry_;
  ControllerMetrics metrics_;
};

}  // namespace kubemoe::op
