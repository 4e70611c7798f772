// The router's sampled KL estimate of the device limit's cost: the deterministic 1-in-N choice of
// shadowed requests, and, through the scheduler on a device-limited model, that a shadowed
// request's recorded KL equals KL(faithful || limited) computed from two plain forwards, that
// the shadow changes nothing the client receives, and that unshadowed requests cost nothing.
#include "router/device_limit_kl.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "engine/distribution.h"
#include "placement/placement.h"
#include "router/routing_setup.h"
#include "router/scheduler.h"
#include "tests/engine_test_util.h"

namespace kubemoe::router {
namespace {

TEST(DeviceLimitKlEstimate, ShadowsOneRequestInN) {
  DeviceLimitKlEstimate quarter(0.25, nullptr);
  std::vector<bool> picks;
  for (int i = 0; i < 8; ++i) picks.push_back(quarter.ShadowNextRequest());
  EXPECT_EQ(picks, (std::vector<bool>{false, false, false, true, false, false, false, true}));
  DeviceLimitKlEstimate all(1.0, nullptr), off(0.0, nullptr);
  EXPECT_TRUE(all.ShadowNextRequest() && all.ShadowNextRequest());
  EXPECT_FALSE(off.enabled() || off.ShadowNextRequest());
}

TEST(DeviceLimitKlEstimate, ExportsMeanHistogramAndOverhead) {
  metrics::Registry registry;
  DeviceLimitKlEstimate kl(1.0, &registry);
  const std::vector<float> p = {0.0f, 0.0f}, q = {0.0f, 1.0f};
  const double one = kl.Record(p, q);
  EXPECT_NEAR(one, engine::KlDivergenceOfLogits(p, q), 1e-15);
  kl.Record(p, p);
  kl.CountRows(10, 2);
  EXPECT_EQ(kl.sampled_positions(), 2);
  EXPECT_NEAR(kl.mean_kl(), one / 2, 1e-15);
  const std::string text = registry.Render();
  EXPECT_NE(text.find("kubemoe_router_device_limit_kl_sampled_tokens_total 2"), std::string::npos);
  EXPECT_NE(text.find("kubemoe_router_device_limit_kl_nats_count 2"), std::string::npos);
  EXPECT_NE(text.find("kubemoe_router_device_limit_kl_overhead_ratio 0.2"), std::string::npos);
}

class Collect final : public TokenStream {
 public:
  bool OnToken(const GeneratedToken& token) override {
    std::lock_guard<std::mutex> lock(mu_);
    ids.push_back(token.id);
    return true;
  }
  void OnFinish(const Status& s, FinishReason, const Usage&) override {
    std::lock_guard<std::mutex> lock(mu_);
    status = s;
    done = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(60), [&] { return done; });
  }
  std::vector<int32_t> ids;
  Status status;
  bool done = false;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

// Routes `model` over 4 contiguous devices (as the router does) with `limit` (0: faithful).
void RouteOverFourDevices(engine::Model& model, int32_t limit) {
  const ModelConfig& c = model.config();
  placement::PlacementSpec spec;
  spec.routed_experts = static_cast<int32_t>(c.n_routed_experts);
  spec.moe_layers = static_cast<int32_t>(c.NumMoeLayers());
  spec.shards = 4;
  StatusOr<placement::Placement> p = placement::ComputePlacement(spec);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  StatusOr<std::vector<routing::RouterConfig>> configs = RouterConfigsFor(c, *p, limit, 0);
  ASSERT_TRUE(configs.ok()) << configs.status().ToString();
  ASSERT_TRUE(model.ConfigureRouting(*configs, p->version).ok());
}

// Greedy generation through the scheduler; returns the tokens and the estimate's state.
std::vector<int32_t> Generate(engine::Model& model, double rate, const std::vector<int32_t>& prompt,
                              int64_t* positions, double* mean_kl) {
  SchedulerOptions options;
  options.device_limit_kl_sample_rate = rate;
  Scheduler scheduler(&model, options, nullptr, nullptr);
  scheduler.Start();
  GenerationParams params;
  params.prompt = prompt;
  params.max_tokens = 4;
  params.stop_at_eos = false;
  params.sampling.temperature = 0;
  auto stream = std::make_shared<Collect>();
  EXPECT_TRUE(scheduler.Submit(params, stream).ok());
  stream->Wait();
  EXPECT_TRUE(stream->status.ok()) << stream->status.ToString();
  scheduler.Stop();
  *positions = scheduler.device_limit_kl().sampled_positions();
  *mean_kl = scheduler.device_limit_kl().mean_kl();
  return stream->ids;
}

TEST(DeviceLimitKlEstimate, SchedulerShadowMeasuresTheLimitsKl) {
  std::unique_ptr<engine::Model> model = engine::testing::TinyModel([](ModelConfig& c) {
    c.topk_method = TopkMethod::kGreedy;
    c.topk_method_name = "greedy";
    c.n_group = 1;
    c.topk_group = 1;
  });
  ASSERT_TRUE(model);
  RouteOverFourDevices(*model, 1);
  const std::vector<int32_t> prompt = {1, 40, 41, 42, 500, 501, 7};
  int64_t positions = 0;
  double mean_kl = 0;
  const std::vector<int32_t> shadowed = Generate(*model, 1.0, prompt, &positions, &mean_kl);
  EXPECT_EQ(positions, 4);  // prefill's last row and three decode steps
  int64_t none = 0;
  double unused = 0;
  EXPECT_EQ(Generate(*model, 0.0, prompt, &none, &unused), shadowed);  // the client sees the same
  EXPECT_EQ(none, 0);

  // Reference: teacher-force prompt + generated tokens through a limited and a faithful model.
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), shadowed.begin(), shadowed.end() - 1);
  auto logits_of = [&](int32_t limit) {
    RouteOverFourDevices(*model, limit);
    engine::LatentKvCache cache(model->config(), 32);
    engine::SequenceInput in{&cache, all};
    std::vector<float> logits;
    EXPECT_TRUE(model->Forward({&in, 1}, {.all_logits = true}, &logits).ok());
    return logits;
  };
  const std::vector<float> limited = logits_of(1), faithful = logits_of(0);
  const auto v = static_cast<size_t>(model->config().vocab_size);
  double sum = 0;
  for (size_t r = prompt.size() - 1; r < all.size(); ++r) {
    sum += engine::KlDivergenceOfLogits(std::span<const float>(faithful).subspan(r * v, v),
                                        std::span<const float>(limited).subspan(r * v, v));
  }
  const double expected = sum / static_cast<double>(all.size() - prompt.size() + 1);
  EXPECT_GT(expected, 1e-6);  // the limit matters on this model
  EXPECT_NEAR(mean_kl, expected, 1e-3 * expected + 1e-7);
}

TEST(DeviceLimitKlEstimate, NoShadowWithoutADeviceLimit) {
  std::unique_ptr<engine::Model> model = engine::testing::TinyModel();
  ASSERT_TRUE(model);
  int64_t positions = 0;
  double mean_kl = 0;
  Generate(*model, 1.0, {1, 2, 3}, &positions, &mean_kl);
  EXPECT_EQ(positions, 0);
}

}  // namespace
}  // namespace kubemoe::router
