#include "routing/gate_config.h"

#include <cmath>
#include <string>

namespace kubemoe::routing {

const char* TopkMethodName(TopkMethod method) {
  return method == TopkMethod::kGreedy ? "greedy" : "group_limited_greedy";
}

Status ValidateGateConfig(const GateConfig& c) {
  const std::string k = std::to_string(c.top_k);
  const std::string e = std::to_string(c.num_experts);
  if (c.num_experts < 1) return InvalidArgument("n_routed_experts must be >= 1, got " + e);
  if (c.top_k < 1 || c.top_k > c.num_experts) {
    return InvalidArgument("num_experts_per_tok must be in [1, n_routed_experts=" + e + "], got " +
                           k);
  }
  if (!std::isfinite(c.routed_scaling_factor) || c.routed_scaling_factor <= 0.0f) {
    return InvalidArgument("routed_scaling_factor must be finite and > 0, got " +
                           std::to_string(c.routed_scaling_factor));
  }
  if (c.method != TopkMethod::kGroupLimitedGreedy) return Status::Ok();
  if (c.n_group < 1 || c.num_experts % c.n_group != 0) {
    return InvalidArgument("n_group must be >= 1 and divide n_routed_experts=" + e + ", got " +
                           std::to_string(c.n_group));
  }
  if (c.topk_group < 1 || c.topk_group > c.n_group) {
    return InvalidArgument("topk_group must be in [1, n_group=" + std::to_string(c.n_group) +
                           "], got " + std::to_string(c.topk_group));
  }
  const int64_t kept = int64_t{c.topk_group} * (c.num_experts / c.n_group);
  if (kept < c.top_k) {
    return InvalidArgument("topk_group=" + std::to_string(c.topk_group) + " groups of " +
                           std::to_string(c.num_experts / c.n_group) + " experts hold only " +
                           std::to_string(kept) + " experts, fewer than num_experts_per_tok=" + k);
  }
  return Status::Ok();
}

}  // namespace kubemoe::routing
