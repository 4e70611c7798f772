#include "engine/moe.h"

#include <algorithm>
#include <span>

#include "layers/parallel_linear.h"

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

namespace {

// Routes the marked rows again with `faithful` and writes their selection over `sel`'s.
Status RerouteFaithfulRows(const routing::Router& faithful, std::span<const float> logits,
                           std::span<const uint8_t> marked, int32_t k, LayerRouting& sel) {
  const auto n_experts = static_cast<size_t>(faithful.num_experts());
  const auto uk = static_cast<size_t>(k);
  std::vector<size_t> rows;
  for (size_t r = 0; r < marked.size(); ++r) {
    if (marked[r] != 0) rows.push_back(r);
  }
  if (rows.empty()) return Status::Ok();
  std::vector<float> sub_logits(rows.size() * n_experts);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::copy_n(logits.begin() + static_cast<std::ptrdiff_t>(rows[i] * n_experts), n_experts,
                sub_logits.begin() + static_cast<std::ptrdiff_t>(i * n_experts));
  }
  std::vector<int32_t> ids(rows.size() * uk), devices(sel.devices.empty() ? 0 : rows.size() * uk);
  std::vector<float> weights(rows.size() * uk);
  routing::RouteOutput ro;
  ro.expert_ids = ids;
  ro.weights = weights;
  ro.devices = devices;
  KUBEMOE_RETURN_IF_ERROR(faithful.Route(sub_logits, static_cast<int64_t>(rows.size()), ro));
  for (size_t i = 0; i < rows.size(); ++i) {
    const size_t r = rows[i];
    std::copy_n(ids.begin() + static_cast<std::ptrdiff_t>(i * uk), uk,
                sel.expert_ids.begin() + static_cast<std::ptrdiff_t>(r * uk));
    std::copy_n(weights.begin() + static_cast<std::ptrdiff_t>(i * uk), uk,
                sel.weights.begin() + static_cast<std::ptrdiff_t>(r * uk));
    if (!devices.empty()) {
      std::copy_n(devices.begin() + static_cast<std::ptrdiff_t>(i * uk), uk,
                  sel.devices.begin() + static_cast<std::ptrdiff_t>(r * uk));
    }
    if (!sel.differs_from_model.empty()) sel.differs_from_model[r] = 0;
  }
  return Status::Ok();
}

}  // namespace

Status MoeForward(ThreadPool& pool, const ModelConfig& c, const MoeWeights& w,
                  const routing::Router& router, ExpertExecutor& executor, int64_t layer,
                  const float* x, int64_t rows, float* out, LayerRouting* routing_out,
                  const MoeStepOptions& options) {
  const int64_t h = c.hidden_size;
  const int64_t n_experts = c.n_routed_experts;
  const int32_t k = router.top_k();
  const std::string where = "layer " + std::to_string(layer) + ": ";
  // Gate logits in fp32 (the original casts hidden states and gate weight to fp32 here).
  std::vector<float> logits(static_cast<size_t>(rows * n_experts));
  layers::ParallelLinear(pool, x, rows, w.gate, logits.data());
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
  if (options.faithful_router != nullptr && !options.faithful_rows.empty()) {
    routed = RerouteFaithfulRows(*options.faithful_router, logits, options.faithful_rows, k, sel);
    if (!routed.ok()) return Status(routed.code(), where + routed.message());
  }

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
    layers::ParallelSwiGluFfn(pool, x, rows, *w.shared, out);
  } else {
    std::fill(out, out + rows * h, 0.0f);
  }
  Status combined = (*pending)->Combine(out);
  if (!combined.ok()) return Status(combined.code(), where + combined.message());
  return Status::Ok();
}

}  // namespace kubemoe::engine
