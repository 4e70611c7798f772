// Routing's share of one MoE layer at DeepSeek-V2's shape: hidden 5120, 160 routed experts of
// intermediate 1536, K = 6, 2 shared experts, routed_scaling_factor 16, group_limited_greedy with
// 8 groups keeping 3 (the model-faithful rule). On 8 devices with the contiguous placement (20
// experts per device) the device-limited router with M = 3 selects exactly the same experts, so
// its routing time is measured too, on the same logits, and reported as a second share.
//
// BM_MoeLayer/T runs MoeForward (gate GEMM + routing + routed experts + shared experts) on T
// tokens and reports, besides tokens/s, the measured routing time per layer call and its share of
// the layer time in parts per million (route_share_glg_ppm for group_limited_greedy,
// route_share_dl_ppm for device-limited M = 3, which also writes each expert's device).
// BM_Route*/T times Router::Route alone on the same logits. A summary table in percent follows.
//
// Run: moe_layer_bench --benchmark_min_time=0.2  (about 1 GB of weights, about a minute).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/expert_executor.h"
#include "engine/moe.h"
#include "engine/weights.h"
#include "kernels/cpu/swiglu.h"
#include "layers/grouped_experts.h"
#include "layers/parallel_linear.h"
#include "model/config.h"
#include "routing/router.h"

namespace kubemoe::engine {
namespace {

constexpr int32_t kExperts = 160;
constexpr int32_t kTopK = 6;
constexpr int32_t kDevices = 8;
constexpr int32_t kDeviceLimit = 3;
constexpr int64_t kHidden = 5120;
constexpr int64_t kInter = 1536;
constexpr int64_t kShared = 2;
// Distinct routed-expert weight sets actually allocated (see PooledExpertExecutor).
constexpr int32_t kPool = 8;

ModelConfig V2MoeConfig() {
  ModelConfig c;
  c.hidden_size = kHidden;
  c.moe_intermediate_size = kInter;
  c.n_routed_experts = kExperts;
  c.n_shared_experts = kShared;
  c.num_experts_per_tok = kTopK;
  c.routed_scaling_factor = 16.0;
  c.topk_method = TopkMethod::kGroupLimitedGreedy;
  c.topk_method_name = "group_limited_greedy";
  c.n_group = kDevices;
  c.topk_group = kDeviceLimit;
  c.norm_topk_prob = false;
  c.scoring_func = ScoringFunc::kSoftmax;
  return c;
}

// Fast deterministic fill (a normal distribution over ~250M floats would dominate start-up).
void FillUniform(std::vector<float>& v, size_t n, float scale, uint64_t seed) {
  v.resize(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& x : v) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    x = scale * (static_cast<float>(s >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f);
  }
}

FfnWeights MakeFfn(int64_t inter, uint64_t seed) {
  FfnWeights f;
  f.inter = inter;
  const auto n = static_cast<size_t>(inter * kHidden);
  std::vector<float> w;
  FillUniform(w, n, 0.02f, seed * 3 + 0);
  f.gate_proj = layers::LinearWeight::FromF32(std::move(w), inter, kHidden);
  FillUniform(w, n, 0.02f, seed * 3 + 1);
  f.up_proj = layers::LinearWeight::FromF32(std::move(w), inter, kHidden);
  FillUniform(w, n, 0.02f, seed * 3 + 2);
  f.down_proj = layers::LinearWeight::FromF32(std::move(w), kHidden, inter);
  return f;
}

// Runs routed experts like InProcessExpertExecutor (layers::RunRoutedExperts: tokens bucketed by
// expert id, one SwiGLU over each expert's tokens) but reads expert e's weights from pool[e %
// kPool]: 160 full-size experts would need 160 x 3 x 1536 x 5120 x 4 B = 15 GB. This is
// representative of the real layer: buckets stay keyed by the real id, so every token still runs
// its 6 distinct experts as full-size matrix products with the same per-expert token counts (the
// same GEMM shapes and FLOPs). Only cache reuse across experts could differ, and it is negligible:
// one expert's weights (94 MB) far exceed the last-level cache, so each bucket streams its weights
// from memory either way.
class PooledExpertExecutor final : public ExpertExecutor {
 public:
  PooledExpertExecutor(const std::vector<FfnWeights>* pool, ThreadPool* threads)
      : pool_(pool), threads_(threads) {}

  StatusOr<std::unique_ptr<PendingExperts>> Dispatch(const ExpertDispatch& d) override {
    struct Pending final : PendingExperts {
      const std::vector<FfnWeights>* pool;
      ThreadPool* threads;
      ExpertDispatch d;
      Status Combine(float* out) override {
        std::vector<float> routed(static_cast<size_t>(d.routes->num_tokens() * d.hidden_size));
        KUBEMOE_RETURN_IF_ERROR(layers::RunRoutedExperts(
            *threads,
            [this](int32_t e) { return e >= 0 && e < kExperts ? &(*pool)[e % kPool] : nullptr; },
            d.hidden_size, d.hidden, *d.routes, routed.data()));
        for (size_t i = 0; i < routed.size(); ++i) out[i] += routed[i];
        return Status::Ok();
      }
    };
    auto p = std::make_unique<Pending>();
    p->pool = pool_;
    p->threads = threads_;
    p->d = d;
    return std::unique_ptr<PendingExperts>(std::move(p));
  }

 private:
  const std::vector<FfnWeights>* pool_;
  ThreadPool* threads_;
};

// Everything the benchmarks share, built once (about 1 GB).
struct Fixture {
  ModelConfig config = V2MoeConfig();
  MoeWeights weights;
  std::vector<FfnWeights> pool;
  std::unique_ptr<ThreadPool> threads = std::make_unique<ThreadPool>();  // the engine's default
  std::unique_ptr<routing::Router> group_limited;
  std::unique_ptr<routing::Router> device_limited;
  std::string error;
};

const Fixture& GetFixture() {
  static const Fixture* fixture = [] {
    auto* f = new Fixture;
    // Gate rows with a spread comparable to a trained gate, so routing is not degenerate.
    std::vector<float> gate;
    FillUniform(gate, static_cast<size_t>(kExperts * kHidden), 0.05f, 7);
    f->weights.gate = layers::LinearWeight::FromF32(std::move(gate), kExperts, kHidden);
    f->weights.shared = MakeFfn(kInter * kShared, 11);
    for (int32_t i = 0; i < kPool; ++i) f->pool.push_back(MakeFfn(kInter, 100 + i));

    routing::RouterConfig glg;
    glg.gate = GateConfigFromModel(f->config);
    auto a = routing::Router::Create(glg);
    routing::RouterConfig dl;
    dl.gate = GateConfigFromModel(f->config);
    dl.placement = routing::ContiguousPlacement(kExperts, kDevices);
    dl.device_limit = kDeviceLimit;
    auto b = routing::Router::Create(dl);
    if (!a.ok()) f->error = a.status().ToString();
    if (!b.ok()) f->error = b.status().ToString();
    if (a.ok() && b.ok()) {
      f->group_limited = std::make_unique<routing::Router>(*std::move(a));
      f->device_limited = std::make_unique<routing::Router>(*std::move(b));
    }
    return f;
  }();
  return *fixture;
}

std::vector<float> MakeHidden(int64_t tokens) {
  std::vector<float> x;
  FillUniform(x, static_cast<size_t>(tokens * kHidden), 1.0f, 42);
  return x;
}

// The gate logits MoeForward computes for x (the same Linear call).
std::vector<float> GateLogits(const Fixture& f, const std::vector<float>& x, int64_t tokens) {
  std::vector<float> logits(static_cast<size_t>(tokens * kExperts));
  layers::ParallelLinear(*f.threads, x.data(), tokens, f.weights.gate, logits.data());
  return logits;
}

// Buffers for one Route call; devices are written only with a placement (the dispatch the
// serving router does).
struct RouteBuffers {
  std::vector<int32_t> ids, devices;
  std::vector<float> weights;
  std::vector<int64_t> load;
  routing::RouteOutput out;
  RouteBuffers(const routing::Router& router, int64_t tokens)
      : ids(static_cast<size_t>(tokens * kTopK)), weights(ids.size()) {
    out.expert_ids = ids;
    out.weights = weights;
    if (router.has_placement()) {
      devices.resize(ids.size());
      load.assign(kDevices, 0);
      out.devices = devices;
    }
  }
};

// Mean seconds per Router::Route call over at least `min_seconds` of calls.
double TimeRoute(const routing::Router& router, const std::vector<float>& logits, int64_t tokens,
                 double min_seconds) {
  RouteBuffers buf(router, tokens);
  using Clock = std::chrono::steady_clock;
  int64_t calls = 0;
  const Clock::time_point start = Clock::now();
  double elapsed = 0;
  do {
    for (int i = 0; i < 16; ++i) {
      std::fill(buf.load.begin(), buf.load.end(), 0);
      (void)router.Route(logits, tokens, buf.out, buf.load);
      benchmark::DoNotOptimize(buf.ids.data());
    }
    calls += 16;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < min_seconds);
  return elapsed / static_cast<double>(calls);
}

// One BM_MoeLayer result, for the summary printed after all benchmarks (the last run per token
// count wins; Google Benchmark may call a benchmark several times while it picks iterations).
struct LayerResult {
  int64_t tokens;
  double layer_seconds, route_glg_seconds, route_dl_seconds;
};
std::vector<LayerResult>& Summary() {
  static std::vector<LayerResult> results;
  return results;
}

void PrintSummary() {
  std::vector<LayerResult> last;
  for (const LayerResult& r : Summary()) {
    auto it = std::find_if(last.begin(), last.end(),
                           [&](const LayerResult& l) { return l.tokens == r.tokens; });
    if (it != last.end()) {
      *it = r;
    } else {
      last.push_back(r);
    }
  }
  std::printf(
      "\nrouting share of one DeepSeek-V2 MoE layer (layer = gate GEMM + routing + 6 routed"
      " + 2 shared experts):\n");
  std::printf("%8s %12s %14s %10s %14s %10s\n", "tokens", "layer ms", "glg route us", "glg %",
              "dl M=3 us", "dl %");
  for (const LayerResult& r : last) {
    std::printf("%8lld %12.2f %14.2f %10.5f %14.2f %10.5f\n", static_cast<long long>(r.tokens),
                r.layer_seconds * 1e3, r.route_glg_seconds * 1e6,
                100.0 * r.route_glg_seconds / r.layer_seconds, r.route_dl_seconds * 1e6,
                100.0 * r.route_dl_seconds / r.layer_seconds);
  }
}

void BM_MoeLayer(benchmark::State& state) {
  const Fixture& f = GetFixture();
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  const int64_t tokens = state.range(0);
  const std::vector<float> x = MakeHidden(tokens);
  std::vector<float> out(x.size());
  PooledExpertExecutor executor(&f.pool, f.threads.get());
  LayerRouting selection;
  double layer_seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const Status s = MoeForward(*f.threads, f.config, f.weights, *f.group_limited, executor,
                                /*layer=*/0, x.data(), tokens, out.data(), &selection);
    layer_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double per_layer = layer_seconds / static_cast<double>(state.iterations());
  // Routing timed on the layer's own logits, right after the layer runs, outside the timed loop.
  const std::vector<float> logits = GateLogits(f, x, tokens);
  const double glg = TimeRoute(*f.group_limited, logits, tokens, 0.05);
  const double dl = TimeRoute(*f.device_limited, logits, tokens, 0.05);
  int64_t distinct = 0;
  {
    std::vector<bool> used(kExperts, false);
    for (int32_t e : selection.expert_ids) used[static_cast<size_t>(e)] = true;
    distinct = std::count(used.begin(), used.end(), true);
  }
  state.SetItemsProcessed(state.iterations() * tokens);
  state.counters["layer_ms"] = per_layer * 1e3;
  state.counters["route_glg_us"] = glg * 1e6;
  state.counters["route_dl_us"] = dl * 1e6;
  // Parts per million: the share is far below 1%, which the SI-suffixed printout would garble.
  state.counters["route_share_glg_ppm"] = 1e6 * glg / per_layer;
  state.counters["route_share_dl_ppm"] = 1e6 * dl / per_layer;
  state.counters["experts_hit"] = static_cast<double>(distinct);
  Summary().push_back({tokens, per_layer, glg, dl});
}

void RunRouteAlone(benchmark::State& state, bool device_limited) {
  const Fixture& f = GetFixture();
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  const int64_t tokens = state.range(0);
  const routing::Router& router = device_limited ? *f.device_limited : *f.group_limited;
  const std::vector<float> logits = GateLogits(f, MakeHidden(tokens), tokens);
  RouteBuffers buf(router, tokens);
  for (auto _ : state) {
    std::fill(buf.load.begin(), buf.load.end(), 0);
    const Status s = router.Route(logits, tokens, buf.out, buf.load);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(buf.ids.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * tokens);
}

void BM_RouteGroupLimited(benchmark::State& state) { RunRouteAlone(state, false); }
void BM_RouteDeviceLimitedM3(benchmark::State& state) { RunRouteAlone(state, true); }

BENCHMARK(BM_MoeLayer)->Arg(1)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RouteGroupLimited)->Arg(1)->Arg(16)->Arg(64)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RouteDeviceLimitedM3)->Arg(1)->Arg(16)->Arg(64)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kubemoe::engine

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  kubemoe::engine::PrintSummary();
  return 0;
}
