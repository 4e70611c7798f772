// The informer (operator/controller/informer.h) against the fake API server: initial list, watch
// events, reconnect after failures, and a relist when the watch's resourceVersion is gone (410).
#include "operator/controller/informer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "operator_fake_apiserver.h"

namespace kubemoe::op {
namespace {

using nlohmann::json;
using testing::FakeApiServer;
using testing::WaitUntil;

json ConfigMap(const std::string& name) {
  return {{"apiVersion", "v1"}, {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", "default"}, {"labels", {{"t", "informer"}}}}},
          {"data", {{"k", name}}}};
}

class InformerTest : public ::testing::Test {
 protected:
  void SetUp() override { KUBEMOE_REQUIRE_FAKE_APISERVER(server_); }
  FakeApiServer server_{/*bookmark_interval=*/0.2};
};

TEST_F(InformerTest, ListsThenFollowsWatchEvents) {
  ASSERT_TRUE(server_.client().Create(k8s::ConfigMaps(), "default", ConfigMap("a")).ok());
  json unlabelled = ConfigMap("unlabelled");
  unlabelled["metadata"].erase("labels");
  ASSERT_TRUE(server_.client().Create(k8s::ConfigMaps(), "default", unlabelled).ok());
  std::atomic<int> calls{0};
  InformerOptions options;
  options.resource = k8s::ConfigMaps();
  options.namespace_ = "default";
  options.label_selector = "t=informer";
  options.watch_timeout = std::chrono::seconds(5);
  Informer informer(server_.client(), options, [&](const json&) { ++calls; });
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(std::chrono::seconds(10))) << server_.Log();
  ASSERT_NE(informer.Get("default/a"), nullptr);
  EXPECT_EQ((*informer.Get("default/a"))["kind"], "ConfigMap");
  EXPECT_EQ(calls.load(), 1);

  ASSERT_TRUE(server_.client().Create(k8s::ConfigMaps(), "default", ConfigMap("b")).ok());
  ASSERT_TRUE(WaitUntil([&] { return informer.Get("default/b") != nullptr; }));
  ASSERT_TRUE(server_.client().Delete(k8s::ConfigMaps(), "default", "a").ok());
  ASSERT_TRUE(WaitUntil([&] { return informer.Get("default/a") == nullptr; }));
  EXPECT_EQ(informer.List().size(), 1u);
  EXPECT_GE(calls.load(), 3);
  EXPECT_EQ(informer.list_count(), 1u) << "no relist needed for ordinary events";

  // A dropped stream resumes from the last resourceVersion without a relist.
  server_.AddFault({{"drop_watches", true}});
  ASSERT_TRUE(server_.client().Create(k8s::ConfigMaps(), "default", ConfigMap("c")).ok());
  ASSERT_TRUE(WaitUntil([&] { return informer.Get("default/c") != nullptr; }));
  EXPECT_EQ(informer.list_count(), 1u);
  informer.Stop();
}

TEST_F(InformerTest, RelistsWhenResourceVersionIsGone) {
  ASSERT_TRUE(server_.client().Create(k8s::ConfigMaps(), "default", ConfigMap("a")).ok());
  InformerOptions options;
  options.resource = k8s::ConfigMaps();
  options.namespace_ = "default";
  options.watch_timeout = std::chrono::seconds(5);
  options.initial_backoff = std::chrono::milliseconds(50);
  options.max_backoff = std::chrono::milliseconds(200);
  Informer informer(server_.client(), options, [](const json&) {});
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(std::chrono::seconds(10))) << server_.Log();
  ASSERT_EQ(informer.list_count(), 1u);

  // Keep the informer from watching while objects change, then forget the history, so the
  // resourceVersion it resumes from is older than anything the server remembers.
  server_.AddFault({{"method", "GET"}, {"path_regex", "configmaps"}, {"query_regex", "watch=true"},
                    {"status", 500}});
  server_.AddFault({{"drop_watches", true}, {"abrupt", true}});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(server_.client().Delete(k8s::ConfigMaps(), "default", "a").ok());
  ASSERT_TRUE(server_.client().Create(k8s::ConfigMaps(), "default", ConfigMap("b")).ok());
  server_.Compact();
  EXPECT_NE(informer.Get("default/a"), nullptr) << "the informer saw the deletion; the test cannot tell a relist";
  server_.ClearFaults();

  ASSERT_TRUE(WaitUntil([&] { return informer.list_count() >= 2; }, std::chrono::seconds(15)))
      << server_.Log();
  EXPECT_EQ(informer.Get("default/a"), nullptr) << "the relist must drop objects deleted meanwhile";
  EXPECT_NE(informer.Get("default/b"), nullptr);
  // And it watches again afterwards.
  ASSERT_TRUE(server_.client().Create(k8s::ConfigMaps(), "default", ConfigMap("c")).ok());
  EXPECT_TRUE(WaitUntil([&] { return informer.Get("default/c") != nullptr; }));
  informer.Stop();
}

TEST_F(InformerTest, StopIsPromptWhileWatching) {
  InformerOptions options;
  options.resource = k8s::ConfigMaps();
  options.namespace_ = "default";
  options.watch_timeout = std::chrono::seconds(60);
  Informer informer(server_.client(), options, [](const json&) {});
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto start = std::chrono::steady_clock::now();
  informer.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

}  // namespace
}  // namespace kubemoe::op
