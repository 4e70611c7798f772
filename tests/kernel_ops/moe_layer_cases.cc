// One whole MoE layer on the GPU from the gate logits to the combined output, composed of the
// kernels the worker and router will call in this order: gating, dispatch layout, the expert
// offsets back to the host (the one synchronization: cuBLAS takes row counts from the host),
// permutation into expert-contiguous rows, the grouped expert FFN and the weighted combine.
//
// kTest checks the composition against a float64 layer (routing::Router's ids and weights, the
// SwiGLU experts in float64 on the bf16 inputs), bound 2e-2 relative L2: the GPU rounds the gate
// and up products, the SwiGLU product and each expert's output to bf16, as a bf16 framework does.
// The cpu row composes the CPU twins (Router, cpu::DispatchLayout, cpu::SwiGluFfn in f32 with the
// expert output rounded to bf16, cpu::CombineRowsBf16). kBench is DeepSeek-V2's layer (hidden
// 5120, 160 experts of intermediate 1536, top-6 of 8 groups keeping 3), weights drawn on the
// device; bench/moe_layer_torch.py times the same layer in PyTorch.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/dispatch_layout.h"
#include "kernels/cpu/swiglu.h"
#include "routing/router.h"
#include "tests/kernel_ops/op_case.h"

#ifdef KUBEMOE_HAVE_CUDA
#include "kernels/cuda/dispatch_layout.h"
#include "kernels/cuda/gating.h"
#include "kernels/cuda/grouped_ffn.h"
#include "kernels/cuda/random_fill.h"
#include "kernels/cuda/runtime.h"
#endif

namespace kubemoe::kernel_ops {
namespace {

constexpr double kLayerBound = 2e-2;

struct LayerSpec {
  int64_t tokens;
  int32_t hidden, inter, experts, top_k, groups, topk_group;
  bool bench;
};

double Silu(double g) { return g / (1.0 + std::exp(-g)); }

class MoeLayerCase : public OpCase {
 public:
  explicit MoeLayerCase(LayerSpec spec) : s_(spec), router_(MakeRouter(spec)) {}

  std::string Name() const override {
    return "moe_layer/t" + std::to_string(s_.tokens) + "_h" + std::to_string(s_.hidden) + "_i" +
           std::to_string(s_.inter) + "_e" + std::to_string(s_.experts) + "_k" +
           std::to_string(s_.top_k);
  }

  void Draw(Rng& rng) override {
    std::normal_distribution<float> normal(0.0f, 1.5f);
    logits_.resize(static_cast<size_t>(s_.tokens) * s_.experts);
    for (float& x : logits_) x = normal(rng);
    seed_ = rng();
    if (s_.bench) return;  // hidden states and weights are drawn on the device
    const size_t w = static_cast<size_t>(s_.experts) * s_.hidden * s_.inter;
    hidden_ = UniformBf16(rng, static_cast<size_t>(s_.tokens) * s_.hidden, -1.0f, 1.0f);
    gate_ = UniformBf16(rng, w, -WeightScale(s_.hidden), WeightScale(s_.hidden));
    up_ = UniformBf16(rng, w, -WeightScale(s_.hidden), WeightScale(s_.hidden));
    down_ = UniformBf16(rng, w, -WeightScale(s_.inter), WeightScale(s_.inter));
  }

  std::vector<Output> Reference() override {
    if (s_.bench) return {};  // about a TFLOP in float64: the harness checks kTest only
    std::vector<int32_t> ids;
    std::vector<float> weights;
    if (!Route(ids, weights).ok()) return {};
    const size_t H = static_cast<size_t>(s_.hidden), I = static_cast<size_t>(s_.inter);
    std::vector<double> out(static_cast<size_t>(s_.tokens) * H, 0.0);
    std::vector<double> act(I);
    for (int64_t t = 0; t < s_.tokens; ++t) {
      const uint16_t* x = hidden_.data() + t * H;
      for (int32_t j = 0; j < s_.top_k; ++j) {
        const size_t e = static_cast<size_t>(ids[static_cast<size_t>(t * s_.top_k + j)]);
        for (size_t i = 0; i < I; ++i) {
          double g = 0, u = 0;
          for (size_t h = 0; h < H; ++h) {
            g += double{Bf16ToF32(gate_[(e * I + i) * H + h])} * Bf16ToF32(x[h]);
            u += double{Bf16ToF32(up_[(e * I + i) * H + h])} * Bf16ToF32(x[h]);
          }
          act[i] = Silu(g) * u;
        }
        const double w = weights[static_cast<size_t>(t * s_.top_k + j)];
        for (size_t h = 0; h < H; ++h) {
          double y = 0;
          for (size_t i = 0; i < I; ++i)
            y += double{Bf16ToF32(down_[(e * H + h) * I + i])} * act[i];
          out[static_cast<size_t>(t) * H + h] += w * y;
        }
      }
    }
    return {{"layer_out", Metric::kRelativeL2, kLayerBound, std::move(out)}};
  }

  StatusOr<std::vector<Output>> RunCpu() override {
    if (s_.bench) return std::vector<Output>{};
    std::vector<int32_t> ids;
    std::vector<float> weights;
    KUBEMOE_RETURN_IF_ERROR(Route(ids, weights));
    const int64_t routes = s_.tokens * s_.top_k;
    const size_t H = static_cast<size_t>(s_.hidden), I = static_cast<size_t>(s_.inter);
    std::vector<int32_t> counts(static_cast<size_t>(s_.experts)), offsets(counts.size() + 1);
    std::vector<int32_t> route_rows(static_cast<size_t>(routes)), row_routes(route_rows.size());
    cpu::DispatchLayout(ids.data(), s_.tokens, s_.top_k, s_.experts, nullptr, 0, counts.data(),
                        offsets.data(), route_rows.data(), row_routes.data(), nullptr);
    const int64_t rows = offsets.back();
    std::vector<uint16_t> permuted(static_cast<size_t>(rows) * H);
    cpu::PermuteRowsBf16(hidden_.data(), row_routes.data(), rows, s_.top_k, s_.hidden,
                         permuted.data());
    std::vector<uint16_t> expert_out(permuted.size());
    std::vector<float> wg(I * H), wu(I * H), wd(H * I);
    for (int32_t e = 0; e < s_.experts; ++e) {
      const int64_t n = counts[static_cast<size_t>(e)];
      if (n == 0) continue;
      const size_t base = static_cast<size_t>(e) * I * H;
      for (size_t i = 0; i < I * H; ++i) {
        wg[i] = Bf16ToF32(gate_[base + i]);
        wu[i] = Bf16ToF32(up_[base + i]);
        wd[i] = Bf16ToF32(down_[base + i]);
      }
      const size_t first = static_cast<size_t>(offsets[static_cast<size_t>(e)]);
      std::vector<float> x(static_cast<size_t>(n) * H), y(x.size());
      for (size_t i = 0; i < x.size(); ++i) x[i] = Bf16ToF32(permuted[first * H + i]);
      std::vector<float> scratch(static_cast<size_t>(cpu::SwiGluScratchFloats(n, s_.inter)));
      cpu::SwiGluFfn(x.data(), n, s_.hidden, s_.inter, wg.data(), wu.data(), wd.data(),
                     scratch.data(), y.data());
      for (size_t i = 0; i < y.size(); ++i) expert_out[first * H + i] = F32ToBf16(y[i]);
    }
    std::vector<float> out(static_cast<size_t>(s_.tokens) * H);
    cpu::CombineRowsBf16(expert_out.data(), route_rows.data(), weights.data(), s_.tokens, s_.top_k,
                         s_.hidden, out.data());
    return std::vector<Output>{
        {"layer_out", Metric::kRelativeL2, kLayerBound, ToDoubles(out.data(), out.size())}};
  }

  Work work() const override {
    // Every expert's weights once (at these token counts nearly every expert has rows), the
    // logits, the hidden states in, each route's row out and back, the f32 output.
    const double w = 3.0 * s_.experts * static_cast<double>(s_.hidden) * s_.inter * 2.0;
    const double routes = static_cast<double>(s_.tokens) * s_.top_k;
    const double bytes = w + s_.tokens * (4.0 * s_.experts + 2.0 * s_.hidden + 4.0 * s_.hidden) +
                         routes * 2.0 * s_.hidden * 3.0;
    return {bytes, routes * 6.0 * s_.hidden * s_.inter};
  }

#ifdef KUBEMOE_HAVE_CUDA
  Status CudaPrepare() override {
    const size_t routes = static_cast<size_t>(s_.tokens) * s_.top_k;
    const size_t H = static_cast<size_t>(s_.hidden);
    const size_t w = static_cast<size_t>(s_.experts) * s_.hidden * s_.inter;
    KUBEMOE_RETURN_IF_ERROR(cuda::AllocateCopy(&logits_d_, logits_.data(), logits_.size() * 4));
    if (gate_d_.bytes() != w * 2) {  // weights stay across draws at kBench (device-drawn once)
      KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(&gate_d_, w * 2, 0xFF));
      KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(&up_d_, w * 2, 0xFF));
      KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(&down_d_, w * 2, 0xFF));
      KUBEMOE_RETURN_IF_ERROR(
          cuda::AllocateFilled(&hidden_d_, static_cast<size_t>(s_.tokens) * H * 2, 0xFF));
      if (s_.bench) {
        const float gs = WeightScale(s_.hidden), ds = WeightScale(s_.inter);
        KUBEMOE_RETURN_IF_ERROR(
            cuda::FillUniformBf16(gate_d_.as<uint16_t>(), w, seed_, -gs, gs, nullptr));
        KUBEMOE_RETURN_IF_ERROR(
            cuda::FillUniformBf16(up_d_.as<uint16_t>(), w, seed_ + 1, -gs, gs, nullptr));
        KUBEMOE_RETURN_IF_ERROR(
            cuda::FillUniformBf16(down_d_.as<uint16_t>(), w, seed_ + 2, -ds, ds, nullptr));
        KUBEMOE_RETURN_IF_ERROR(cuda::FillUniformBf16(hidden_d_.as<uint16_t>(),
                                                      static_cast<size_t>(s_.tokens) * H, seed_ + 3,
                                                      -1.0f, 1.0f, nullptr));
      }
      KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(&ids_d_, routes * 4, 0xFF));
      KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(&weights_d_, routes * 4, 0xFF));
      KUBEMOE_RETURN_IF_ERROR(
          cuda::AllocateFilled(&counts_d_, static_cast<size_t>(s_.experts) * 4, 0xFF));
      KUBEMOE_RETURN_IF_ERROR(
          cuda::AllocateFilled(&offsets_d_, (static_cast<size_t>(s_.experts) + 1) * 4, 0xFF));
      KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(&route_rows_d_, routes * 4, 0xFF));
      KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(&row_routes_d_, routes * 4, 0xFF));
      KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(
          &layout_scratch_d_,
          static_cast<size_t>(cuda::DispatchLayoutScratchInts(s_.tokens, s_.top_k, s_.experts)) * 4,
          0xFF));
      KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(&permuted_d_, routes * H * 2, 0xFF));
      KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(&expert_out_d_, routes * H * 2, 0xFF));
      KUBEMOE_RETURN_IF_ERROR(
          cuda::AllocateFilled(&out_d_, static_cast<size_t>(s_.tokens) * H * 4, 0xFF));
      StatusOr<cuda::GroupedExpertFfn> ffn =
          cuda::GroupedExpertFfn::Create(static_cast<int64_t>(routes), s_.hidden, s_.inter);
      KUBEMOE_RETURN_IF_ERROR(ffn.status());
      ffn_ = std::make_unique<cuda::GroupedExpertFfn>(std::move(*ffn));
    }
    if (!s_.bench) {
      KUBEMOE_RETURN_IF_ERROR(gate_d_.Upload(gate_.data(), w * 2));
      KUBEMOE_RETURN_IF_ERROR(up_d_.Upload(up_.data(), w * 2));
      KUBEMOE_RETURN_IF_ERROR(down_d_.Upload(down_.data(), w * 2));
      KUBEMOE_RETURN_IF_ERROR(hidden_d_.Upload(hidden_.data(), hidden_.size() * 2));
    }
    KUBEMOE_RETURN_IF_ERROR(out_d_.Fill(0xFF));
    plan_.gate = router_.config().gate;
    return cuda::SynchronizeDevice("moe layer inputs");
  }

  Status CudaLaunch(CUstream_st* stream) override {
    const int64_t routes = s_.tokens * s_.top_k;
    KUBEMOE_RETURN_IF_ERROR(cuda::Gating(plan_, logits_d_.as<float>(), s_.tokens,
                                         ids_d_.as<int32_t>(), weights_d_.as<float>(), nullptr,
                                         stream));
    const cuda::DispatchLayoutOutputs layout{counts_d_.as<int32_t>(),
                                             offsets_d_.as<int32_t>(),
                                             route_rows_d_.as<int32_t>(),
                                             row_routes_d_.as<int32_t>(),
                                             nullptr,
                                             layout_scratch_d_.as<int32_t>()};
    KUBEMOE_RETURN_IF_ERROR(cuda::DispatchLayout(ids_d_.as<int32_t>(), s_.tokens, s_.top_k,
                                                 s_.experts, nullptr, 0, layout, stream));
    offsets32_.resize(static_cast<size_t>(s_.experts) + 1);
    KUBEMOE_RETURN_IF_ERROR(
        cuda::CopyToHostAsync(offsets32_.data(), offsets_d_.data(), offsets32_.size() * 4, stream));
    KUBEMOE_RETURN_IF_ERROR(cuda::SynchronizeStream(stream, "moe layer: expert offsets"));
    offsets64_.assign(offsets32_.begin(), offsets32_.end());
    const int64_t rows = offsets64_.back();
    if (rows < 0 || rows > routes)
      return Internal("moe layer: offsets end at " + std::to_string(rows));
    KUBEMOE_RETURN_IF_ERROR(cuda::PermuteRowsBf16(hidden_d_.as<uint16_t>(),
                                                  row_routes_d_.as<int32_t>(), rows, s_.top_k,
                                                  s_.hidden, permuted_d_.as<uint16_t>(), stream));
    const cuda::ExpertWeightsBf16 w{s_.experts,
                                    s_.hidden,
                                    s_.inter,
                                    gate_d_.as<uint16_t>(),
                                    up_d_.as<uint16_t>(),
                                    down_d_.as<uint16_t>()};
    KUBEMOE_RETURN_IF_ERROR(ffn_->Run(w, permuted_d_.as<uint16_t>(), offsets64_.data(),
                                      expert_out_d_.as<uint16_t>(), stream));
    return cuda::CombineRowsBf16(expert_out_d_.as<uint16_t>(), route_rows_d_.as<int32_t>(),
                                 weights_d_.as<float>(), s_.tokens, s_.top_k, s_.hidden,
                                 out_d_.as<float>(), stream);
  }

  StatusOr<std::vector<Output>> CudaResults() override {
    KUBEMOE_RETURN_IF_ERROR(cuda::SynchronizeDevice("moe layer"));
    std::vector<float> out(static_cast<size_t>(s_.tokens) * s_.hidden);
    KUBEMOE_RETURN_IF_ERROR(out_d_.Download(out.data(), out.size() * 4));
    if (s_.bench) {
      // No reference at this size: the benchmark only checks that every element was written.
      return std::vector<Output>{
          {"layer_out", Metric::kExact, 0, ToDoubles(out.data(), out.size())}};
    }
    return std::vector<Output>{
        {"layer_out", Metric::kRelativeL2, kLayerBound, ToDoubles(out.data(), out.size())}};
  }
#endif

 private:
  static routing::Router MakeRouter(const LayerSpec& s) {
    routing::RouterConfig c;
    c.gate.num_experts = s.experts;
    c.gate.top_k = s.top_k;
    c.gate.method = routing::TopkMethod::kGroupLimitedGreedy;
    c.gate.n_group = s.groups;
    c.gate.topk_group = s.topk_group;
    c.gate.routed_scaling_factor = 1.0f;
    return *routing::Router::Create(c);
  }

  static float WeightScale(int32_t fan_in) { return 2.0f / std::sqrt(static_cast<float>(fan_in)); }

  Status Route(std::vector<int32_t>& ids, std::vector<float>& weights) const {
    ids.assign(static_cast<size_t>(s_.tokens * s_.top_k), 0);
    weights.assign(ids.size(), 0.0f);
    return router_.Route(logits_, s_.tokens, {ids, weights, {}, {}});
  }

#ifdef KUBEMOE_HAVE_CUDA
  cuda::GatingPlan plan_;
  cuda::DeviceBuffer logits_d_, gate_d_, up_d_, down_d_, hidden_d_, ids_d_, weights_d_, counts_d_,
      offsets_d_, route_rows_d_, row_routes_d_, layout_scratch_d_, permuted_d_, expert_out_d_,
      out_d_;
  std::unique_ptr<cuda::GroupedExpertFfn> ffn_;
  std::vector<int32_t> offsets32_;
  std::vector<int64_t> offsets64_;
#endif

  LayerSpec s_;
  routing::Router router_;
  std::vector<float> logits_;
  uint64_t seed_ = 0;
  std::vector<uint16_t> hidden_, gate_, up_, down_;
};

void AddMoeLayerCases(Scale scale, CaseList& cases) {
  if (scale == Scale::kBench) {
    for (int64_t tokens : {128, 1024, 4096}) {
      cases.push_back(
          std::make_unique<MoeLayerCase>(LayerSpec{tokens, 5120, 1536, 160, 6, 8, 3, true}));
    }
    return;
  }
  cases.push_back(std::make_unique<MoeLayerCase>(LayerSpec{40, 64, 32, 16, 4, 4, 2, false}));
  cases.push_back(std::make_unique<MoeLayerCase>(LayerSpec{23, 96, 48, 32, 6, 8, 3, false}));
  // About 50 rows per expert: GroupedExpertFfn's kAuto takes the bucketed path here.
  cases.push_back(std::make_unique<MoeLayerCase>(LayerSpec{200, 64, 32, 16, 4, 4, 2, false}));
}

const bool kRegistered = RegisterCases("moe_layer", AddMoeLayerCases);

}  // namespace
}  // namespace kubemoe::kernel_ops
