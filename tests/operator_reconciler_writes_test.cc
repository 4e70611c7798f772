// The reconciler's writes against the fake API server (which, like kube-apiserver, stores the
// quantities of built-in kinds in canonical form): a model whose resources are written
// non-canonically ("1000m", "1024Mi") converges and then costs no writes over several resyncs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/metrics.h"
#include "operator/controller/controller.h"
#include "operator_fake_apiserver.h"

namespace kubemoe::op {
namespace {

using nlohmann::json;
using testing::FakeApiServer;
using testing::WaitUntil;

double Successes(const ControllerMetrics& m) {
  auto child = m.reconcile_total->WithLabels({"success"});
  return child.ok() ? (*child)->Value() : -1;
}

class ReconcilerWritesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.ok()) << server_.error();
    json crd = testing::LoadYamlFile("operator/crd/moemodels.kubemoe.io.yaml");
    auto made = server_.client().Raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &crd);
    ASSERT_TRUE(made.ok()) << made.error().ToString();
    model_ = testing::LoadYamlFile("manifests/samples/tiny-cpu.yaml");
    model_["metadata"]["namespace"] = "default";
    auto metrics = ControllerMetrics::Register(registry_);
    ASSERT_TRUE(metrics.ok()) << metrics.status().ToString();
    metrics_ = *metrics;
  }

  void CreateModel() {
    ASSERT_TRUE(WaitUntil([&] { return server_.client().Create(k8s::MoEModels(), "default", model_).ok(); }))
        << server_.Log();
  }

  FakeApiServer server_;
  json model_;
  metrics::Registry registry_;
  ControllerMetrics metrics_;
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

}  // namespace
}  // namespace kubemoe::op
