// Harness cases for the gating kernel (kernels/cuda/gating.h). The reference is routing::Router
// itself, the CPU twin, so there is no separate cpu row: the CUDA ids and weights must be
// identical to it, element for element (Metric::kExact), ties included.
#include <algorithm>
#include <string>
#include <vector>

#include "routing/device_limited.h"
#include "routing/placement_view.h"
#include "routing/router.h"
#include "routing/scoring.h"
#include "tests/kernel_ops/op_case.h"

#ifdef KUBEMOE_HAVE_CUDA
#include "kernels/cuda/gating.h"
#include "kernels/cuda/runtime.h"
#endif

namespace kubemoe::kernel_ops {
namespace {

enum class LogitKind {
  kNormal,  // N(0, 2): distinct scores
  kTies,    // small integers: many exact ties, so tie-breaking decides
};

struct GatingSpec {
  std::string variant;
  routing::RouterConfig config;
  int64_t tokens = 0;
  LogitKind logits = LogitKind::kNormal;
};

class GatingCase : public OpCase {
 public:
  explicit GatingCase(GatingSpec spec)
      : spec_(std::move(spec)), router_(*routing::Router::Create(spec_.config)) {}

  std::string Name() const override {
    const auto& g = spec_.config.gate;
    return "gating/" + spec_.variant + "/t" + std::to_string(spec_.tokens) + "_e" +
           std::to_string(g.num_experts) + "_k" + std::to_string(g.top_k);
  }

  void Draw(Rng& rng) override {
    const size_t n = static_cast<size_t>(spec_.tokens) * spec_.config.gate.num_experts;
    logits_.resize(n);
    if (spec_.logits == LogitKind::kTies) {
      std::uniform_int_distribution<int> level(-2, 2);
      for (float& x : logits_) x = static_cast<float>(level(rng));
    } else {
      std::normal_distribution<float> normal(0.0f, 2.0f);
      for (float& x : logits_) x = normal(rng);
    }
  }

  std::vector<Output> Reference() override {
    const size_t n = static_cast<size_t>(spec_.tokens) * spec_.config.gate.top_k;
    std::vector<int32_t> ids(n);
    std::vector<float> weights(n);
    const Status s = router_.Route(logits_, spec_.tokens, {ids, weights, {}, {}});
    if (!s.ok()) return {{"routing error: " + s.ToString(), Metric::kExact, 0, {}}};
    std::vector<Output> out = {{"expert_ids", Metric::kExact, 0, ToDoubles(ids.data(), n)},
                               {"weights", Metric::kExact, 0, ToDoubles(weights.data(), n)}};
    if (spec_.config.device_limit > 0) out.push_back(KeptDevices());
    return out;
  }

  // The devices each token may use, from routing's own device-limited selection.
  Output KeptDevices() const {
    const auto& g = spec_.config.gate;
    const int32_t devices = spec_.config.placement.num_devices;
    const routing::FlatPlacement flat = routing::FlattenPlacement(spec_.config.placement);
    std::vector<float> scores(static_cast<size_t>(g.num_experts));
    std::vector<float> device_scores(static_cast<size_t>(devices));
    std::vector<int32_t> kept(static_cast<size_t>(spec_.config.device_limit));
    std::vector<uint8_t> device_kept(static_cast<size_t>(devices));
    std::vector<uint8_t> eligible(static_cast<size_t>(g.num_experts));
    std::vector<int32_t> picked(static_cast<size_t>(g.top_k));
    const routing::DeviceSelectionScratch scratch{device_scores.data(), kept.data(),
                                                  device_kept.data(), eligible.data()};
    Output out{"kept_devices", Metric::kExact, 0, {}};
    for (int64_t t = 0; t < spec_.tokens; ++t) {
      const Status s = routing::ScoreExperts(g.scoring, logits_.data() + t * g.num_experts,
                                             g.num_experts, scores.data(), t);
      if (!s.ok()) return {"scoring error: " + s.ToString(), Metric::kExact, 0, {}};
      routing::SelectDeviceLimited(flat, scores.data(), g.num_experts, spec_.config.device_limit,
                                   g.top_k, scratch, picked.data());
      for (uint8_t k : device_kept) out.values.push_back(k);
    }
    return out;
  }

  bool HasCpuTwin() const override { return false; }
  StatusOr<std::vector<Output>> RunCpu() override { return Reference(); }

  Work work() const override {
    const auto& g = spec_.config.gate;
    // Logits read once; ids and weights written once.
    return {static_cast<double>(spec_.tokens) * (4.0 * g.num_experts + 8.0 * g.top_k), 0.0};
  }

#ifdef KUBEMOE_HAVE_CUDA
  Status CudaPrepare() override {
    const auto& g = spec_.config.gate;
    const size_t routes = static_cast<size_t>(spec_.tokens) * g.top_k;
    StatusOr<cuda::DeviceBuffer> logits = cuda::DeviceBuffer::Allocate(logits_.size() * 4);
    StatusOr<cuda::DeviceBuffer> ids = cuda::DeviceBuffer::Allocate(routes * 4);
    StatusOr<cuda::DeviceBuffer> weights = cuda::DeviceBuffer::Allocate(routes * 4);
    for (auto* b : {&logits, &ids, &weights}) KUBEMOE_RETURN_IF_ERROR(b->status());
    logits_d_ = std::move(*logits);
    ids_d_ = std::move(*ids);
    weights_d_ = std::move(*weights);
    KUBEMOE_RETURN_IF_ERROR(logits_d_.Upload(logits_.data(), logits_.size() * 4));
    KUBEMOE_RETURN_IF_ERROR(ids_d_.Fill(0xFF));
    KUBEMOE_RETURN_IF_ERROR(weights_d_.Fill(0xFF));
    const size_t kept_bytes =
        static_cast<size_t>(spec_.tokens) * std::max(1, spec_.config.placement.num_devices);
    StatusOr<cuda::DeviceBuffer> kept = cuda::DeviceBuffer::Allocate(kept_bytes);
    KUBEMOE_RETURN_IF_ERROR(kept.status());
    kept_d_ = std::move(*kept);
    KUBEMOE_RETURN_IF_ERROR(kept_d_.Fill(0xFF));
    plan_ = cuda::GatingPlan{};
    plan_.gate = g;
    plan_.device_limit = spec_.config.device_limit;
    plan_.num_devices = spec_.config.placement.num_devices;
    if (plan_.device_limit > 0) {
      const routing::FlatPlacement flat = routing::FlattenPlacement(spec_.config.placement);
      StatusOr<cuda::DeviceBuffer> offsets = cuda::DeviceBuffer::Allocate(flat.offsets.size() * 4);
      StatusOr<cuda::DeviceBuffer> devices = cuda::DeviceBuffer::Allocate(flat.devices.size() * 4);
      KUBEMOE_RETURN_IF_ERROR(offsets.status());
      KUBEMOE_RETURN_IF_ERROR(devices.status());
      offsets_d_ = std::move(*offsets);
      devices_d_ = std::move(*devices);
      KUBEMOE_RETURN_IF_ERROR(offsets_d_.Upload(flat.offsets.data(), flat.offsets.size() * 4));
      KUBEMOE_RETURN_IF_ERROR(devices_d_.Upload(flat.devices.data(), flat.devices.size() * 4));
      plan_.placement_offsets = offsets_d_.as<int32_t>();
      plan_.placement_devices = devices_d_.as<int32_t>();
    }
    return Status::Ok();
  }

  Status CudaLaunch(CUstream_st* stream) override {
    return cuda::Gating(plan_, logits_d_.as<float>(), spec_.tokens, ids_d_.as<int32_t>(),
                        weights_d_.as<float>(),
                        spec_.config.device_limit > 0 ? kept_d_.as<uint8_t>() : nullptr, stream);
  }

  StatusOr<std::vector<Output>> CudaResults() override {
    KUBEMOE_RETURN_IF_ERROR(cuda::SynchronizeDevice("gating"));
    const size_t n = static_cast<size_t>(spec_.tokens) * spec_.config.gate.top_k;
    std::vector<int32_t> ids(n);
    std::vector<float> weights(n);
    KUBEMOE_RETURN_IF_ERROR(ids_d_.Download(ids.data(), n * 4));
    KUBEMOE_RETURN_IF_ERROR(weights_d_.Download(weights.data(), n * 4));
    std::vector<Output> out = {{"expert_ids", Metric::kExact, 0, ToDoubles(ids.data(), n)},
                               {"weights", Metric::kExact, 0, ToDoubles(weights.data(), n)}};
    if (spec_.config.device_limit > 0) {
      std::vector<uint8_t> kept(kept_d_.bytes());
      KUBEMOE_RETURN_IF_ERROR(kept_d_.Download(kept.data(), kept.size()));
      out.push_back(
          {"kept_devices", Metric::kExact, 0, std::vector<double>(kept.begin(), kept.end())});
    }
    return out;
  }
#endif

 private:
  GatingSpec spec_;
  routing::Router router_;
  std::vector<float> logits_;
#ifdef KUBEMOE_HAVE_CUDA
  cuda::GatingPlan plan_;
  cuda::DeviceBuffer logits_d_, ids_d_, weights_d_, kept_d_, offsets_d_, devices_d_;
#endif
};

routing::GateConfig Gate(int32_t experts, int32_t top_k, routing::TopkMethod method, int32_t groups,
                         int32_t topk_group, routing::ScoringFunc scoring, bool norm,
                         float scaling) {
  routing::GateConfig g;
  g.num_experts = experts;
  g.top_k = top_k;
  g.method = method;
  g.n_group = groups;
  g.topk_group = topk_group;
  g.scoring = scoring;
  g.norm_topk_prob = norm;
  g.routed_scaling_factor = scaling;
  return g;
}

// Experts on num_devices devices, contiguous, plus every 5th expert replicated on the next device.
routing::DevicePlacement ReplicatedPlacement(int32_t experts, int32_t num_devices) {
  routing::DevicePlacement p = routing::ContiguousPlacement(experts, num_devices);
  for (int32_t e = 0; e < experts; e += 5) {
    auto& devices = p.expert_devices[static_cast<size_t>(e)];
    devices.push_back((devices[0] + 1) % num_devices);
  }
  return p;
}

void AddGatingCases(Scale scale, CaseList& cases) {
  using routing::ScoringFunc;
  using routing::TopkMethod;
  const routing::GateConfig v2 =
      Gate(160, 6, TopkMethod::kGroupLimitedGreedy, 8, 3, ScoringFunc::kSoftmax, false, 16.0f);
  auto add = [&cases](std::string variant, routing::RouterConfig config, int64_t tokens,
                      LogitKind kind) {
    cases.push_back(std::make_unique<GatingCase>(
        GatingSpec{std::move(variant), std::move(config), tokens, kind}));
  };
  routing::RouterConfig device_limited{v2, routing::ContiguousPlacement(160, 8), 3};
  if (scale == Scale::kBench) {
    for (int64_t tokens : {128, 1024, 4096}) {
      add("group_limited", {v2, {}, 0}, tokens, LogitKind::kNormal);
      add("device_limited_m3", device_limited, tokens, LogitKind::kNormal);
    }
    return;
  }
  add("greedy_softmax",
      {Gate(64, 6, TopkMethod::kGreedy, 1, 1, ScoringFunc::kSoftmax, false, 1.0f), {}, 0}, 37,
      LogitKind::kNormal);
  add("group_limited", {v2, {}, 0}, 50, LogitKind::kNormal);
  add("group_limited_ties", {v2, {}, 0}, 50, LogitKind::kTies);
  add("sigmoid_norm_topk",
      {Gate(256, 8, TopkMethod::kGroupLimitedGreedy, 8, 4, ScoringFunc::kSigmoid, true, 2.5f),
       {},
       0},
      41, LogitKind::kNormal);
  add("greedy_k1_norm",
      {Gate(40, 1, TopkMethod::kGreedy, 1, 1, ScoringFunc::kSoftmax, true, 1.0f), {}, 0}, 33,
      LogitKind::kTies);
  add("device_limited_m3", device_limited, 45, LogitKind::kNormal);
  add("device_limited_ties", device_limited, 45, LogitKind::kTies);
  add("device_limited_replicated_m2", {v2, ReplicatedPlacement(160, 8), 2}, 45, LogitKind::kNormal);
  add("wide_1024_experts",
      {Gate(1024, 16, TopkMethod::kGreedy, 1, 1, ScoringFunc::kSoftmax, false, 1.0f), {}, 0}, 9,
      LogitKind::kNormal);
}

const bool kRegistered = RegisterCases("gating", AddGatingCases);

}  // namespace
}  // namespace kubemoe::kernel_ops
