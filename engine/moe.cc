#include "engine/moe.h"

#include <algorithm>
#include <span>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/swiglu.h"

namespace kubemoe::engine {

routing::GateConfig GateConfigFromModel(const ModelConfig& c) {
  routing::GateConfig g;
  g.num_experts = static_cast<int32_t>(c.n_routed_experts);
  g.top_k = static_cast<int32_t>(c.num_experts_per_tok);
  g.method = c.topk_method == TopkMethod::kGroupLimitedGreedy
                 ? routing::TopkMethod::kGroupLimitedGreedy
                 : routing::TopkMethod::kGreedy;
  g.n_group = static_cast<int32_t>(c.n_group);
  g.topk_group = static_cast<int32_t>(c.topk_group);
  g.scoring = c.scoring_func == ScoringFunc::kSigmoid ? routing::ScoringFunc::kSigmoid
                                                      : routing::ScoringFunc::kSoftmax;
  g.norm_topk_prob = c.norm_topk_prob;
  g.routed_scaling_factor = static_cast<float>(c.routed_scaling_factor);
  return g;
}

Status MoeForward(const ModelConfig& c, const MoeWeights& w, const routing::Router& router,
                  ExpertExecutor& executor, int64_t layer, const float* x, int64_t rows, float* out,
                  LayerRouting* routing_out, const MoeStepOptions& options) {
  const int64_t h = c.hidden_size;
  const int64_t n_experts = c.n_routed_experts;
  const int32_t k = router.top_k();
  const std::string where = "layer " + std::to_string(layer) + ": ";
  // Gate logits in fp32 (the original casts hidden states and gate weight to fp32 here).
  std::vector<float> logits(static_cast<size_t>(rows * n_experts));
  cpu::Linear(x, rows, h, w.gate.data(), n_experts, logits.data());
  LayerRouting local;
  LayerRouting& sel = routing_out != nullptr ? *routing_out : local;
  sel.expert_ids.assign(static_cast<size_t>(rows * k), 0);
  sel.weights.assign(static_cast<size_t>(rows * k), 0.0f);
  sel.devices.assign(router.has_placement() ? static_cast<size_t>(rows * k) : 0, -1);
  sel.differs_from_model.assign(router.config().device_limit > 0 ? static_cast<size_t>(rows) : 0,
                                0);
  routing::RouteOutput ro;
  ro.expert_ids = sel.expert_ids;
  ro.weights = sel.weights;
  ro.devices = sel.devices;
  ro.differs_from_model = sel.differs_from_model;
  Status routed = router.Route(logits, rows, ro);
  if (!routed.ok()) return Status(routed.code(), where + routed.message());

  const layers::RaggedRoutes routes =
      layers::RoutesFromTopK(sel.expert_ids, sel.weights, sel.devices, rows, k);
  ExpertDispatch dispatch;
  dispatch.layer = layer;
  dispatch.placement_version = options.placement_version;
  dispatch.hidden = x;
  dispatch.hidden_size = h;
  dispatch.routes = &routes;
  dispatch.deadline = options.deadline;
  StatusOr<std::unique_ptr<PendingExperts>> pending = executor.Dispatch(dispatch);
  if (!pending.ok()) return Status(pending.status().code(), where + pending.status().message());
  // The shared experts run while the routed experts are in flight.
  if (w.shared) {
    const FfnWeights& s = *w.shared;
    std::vector<float> scratch(static_cast<size_t>(cpu::SwiGluScratchFloats(rows, s.inter)));
    cpu::SwiGluFfn(x, rows, h, s.inter, s.gate_proj.data(), s.up_proj.data(), s.down_proj.data(),
                   scratch.data(), out);
  } else {
    std::fill(out, out + rows * h, 0.0f);
  }
  Status combined = (*pending)->Combine(out);
  if (!combined.ok()) return Status(combined.code(), where + combined.message());
  return Status::Ok();
}

}  // namespace kubemoe::engine
