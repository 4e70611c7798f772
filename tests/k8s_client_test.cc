// The REST client's per-call timeout (RequestOptions, operator/k8s/client.h) against the fake API
// server with injected latency: a call given a timeout fails once it has passed, whatever the
// client's general request timeout; calls without one keep waiting as before.
#include "operator/k8s/client.h"

#include <gtest/gtest.h>

#include <chrono>

#include <nlohmann/json.hpp>

#include "operator_fake_apiserver.h"

namespace kubemoe::k8s {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

nlohmann::json Lease(const std::string& name) {
  return {{"apiVersion", "coordination.k8s.io/v1"},
          {"kind", "Lease"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", {{"holderIdentity", "x"}, {"leaseDurationSeconds", 15}}}};
}

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

TEST(ClientTest, PerCallTimeoutEndsASlowCall) {
  testing::FakeApiServer server;
  KUBEMOE_REQUIRE_FAKE_APISERVER(server);
  Client& client = server.client();  // the general timeout stays at 30 s
  ASSERT_TRUE(client.Create(Leases(), "default", Lease("l"), {.timeout = seconds(5)}).ok());
  server.AddFault({{"method", "*"}, {"path_regex", "/leases"}, {"delay_seconds", 3.0}});

  auto start = std::chrono::steady_clock::now();
  ApiResult<nlohmann::json> got =
      client.Get(Leases(), "default", "l", "", {.timeout = milliseconds(300)});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().reason(), ApiReason::kTransport) << got.error().ToString();
  EXPECT_LT(SecondsSince(start), 2.0) << "the call waited for the server, not its timeout";

  start = std::chrono::steady_clock::now();
  nlohmann::json lease = Lease("l");
  ApiResult<nlohmann::json> put =
      client.Update(Leases(), "default", "l", lease, "", {.timeout = milliseconds(300)});
  EXPECT_FALSE(put.ok());
  EXPECT_LT(SecondsSince(start), 2.0);

  start = std::chrono::steady_clock::now();
  EXPECT_FALSE(client.Create(Leases(), "default", Lease("m"), {.timeout = milliseconds(300)}).ok());
  EXPECT_LT(SecondsSince(start), 2.0);
}

TEST(ClientTest, CallsWithoutATimeoutWaitForTheServer) {
  testing::FakeApiServer server;
  KUBEMOE_REQUIRE_FAKE_APISERVER(server);
  Client& client = server.client();
  ASSERT_TRUE(client.Create(Leases(), "default", Lease("l")).ok());
  server.AddFault({{"method", "GET"}, {"path_regex", "/leases"}, {"delay_seconds", 1.0}});
  EXPECT_TRUE(client.Get(Leases(), "default", "l").ok());
  EXPECT_TRUE(client.Get(Leases(), "default", "l", "", {.timeout = seconds(5)}).ok());
}

}  // namespace
}  // namespace kubemoe::k8s
