// Routing throughput (tokens/s as items_per_second) at DeepSeek-V2's shape: 160 routed experts,
// K = 6, on 8 devices with deviceLimit M = 3 (paper setting), against the model-faithful greedy
// and group_limited_greedy (8 groups, keep 3) rules, at batch 1, 64 and 1024 tokens.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "routing/router.h"

namespace kubemoe::routing {
namespace {

constexpr int32_t kExperts = 160;
constexpr int32_t kTopK = 6;
constexpr int32_t kDevices = 8;

enum class Mode { kGreedy, kGroupLimited, kDeviceLimited, kDeviceLimitedWithDivergence };

RouterConfig MakeConfig(Mode mode) {
  RouterConfig config;
  config.gate.num_experts = kExperts;
  config.gate.top_k = kTopK;
  config.gate.routed_scaling_factor = 16.0f;
  if (mode == Mode::kGroupLimited) {
    config.gate.method = TopkMethod::kGroupLimitedGreedy;
    config.gate.n_group = kDevices;
    config.gate.topk_group = 3;
  }
  if (mode == Mode::kDeviceLimited || mode == Mode::kDeviceLimitedWithDivergence) {
    config.placement = ContiguousPlacement(kExperts, kDevices);
    config.device_limit = 3;
  }
  return config;
}

void RunRouting(benchmark::State& state, Mode mode) {
  const int64_t tokens = state.range(0);
  auto created = Router::Create(MakeConfig(mode));
  if (!created.ok()) {
    state.SkipWithError(created.status().ToString().c_str());
    return;
  }
  const Router& router = *created;
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> logits(static_cast<size_t>(tokens * kExperts));
  for (float& x : logits) x = normal(rng);
  const size_t tk = static_cast<size_t>(tokens * kTopK);
  std::vector<int32_t> ids(tk), devices;
  std::vector<float> weights(tk);
  std::vector<uint8_t> differs;
  std::vector<int64_t> load;
  RouteOutput out{ids, weights, {}, {}};
  if (router.has_placement()) {
    devices.resize(tk);
    load.assign(kDevices, 0);
    out.devices = devices;
  }
  if (mode == Mode::kDeviceLimitedWithDivergence) {
    differs.resize(static_cast<size_t>(tokens));
    out.differs_from_model = differs;
  }
  for (auto _ : state) {
    const Status s = router.Route(logits, tokens, out, load);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(ids.data());
    benchmark::DoNotOptimize(weights.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * tokens);
}

void BM_RouteDeviceLimitedM3(benchmark::State& state) { RunRouting(state, Mode::kDeviceLimited); }
void BM_RouteDeviceLimitedM3WithDivergence(benchmark::State& state) {
  RunRouting(state, Mode::kDeviceLimitedWithDivergence);
}
void BM_RouteGreedy(benchmark::State& state) { RunRouting(state, Mode::kGreedy); }
void BM_RouteGroupLimited(benchmark::State& state) { RunRouting(state, Mode::kGroupLimited); }

BENCHMARK(BM_RouteDeviceLimitedM3)->Arg(1)->Arg(64)->Arg(1024);
BENCHMARK(BM_RouteDeviceLimitedM3WithDivergence)->Arg(1)->Arg(64)->Arg(1024);
BENCHMARK(BM_RouteGreedy)->Arg(1)->Arg(64)->Arg(1024);
BENCHMARK(BM_RouteGroupLimited)->Arg(1)->Arg(64)->Arg(1024);

}  // namespace
}  // namespace kubemoe::routing

BENCHMARK_MAIN();
