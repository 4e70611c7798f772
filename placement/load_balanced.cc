#include "placement/load_balanced.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>

namespace kubemoe::placement {

StatusOr<Placement> ComputeLoadBalancedPlacement(const PlacementSpec& spec,
                                                 const std::vector<std::vector<double>>& loads) {
  if (!spec.redundant.empty()) {
    return InvalidArgument("a loadBalanced placement has one copy per expert; "
                           "experts.redundant must be empty");
  }
  // The contiguous placement fixes the sizes and how many experts each device hosts.
  PlacementSpec base = spec;
  base.policy = Policy::kContiguous;
  base.top_k = 0;
  base.device_limit = 0;
  StatusOr<Placement> contiguous = ComputePlacement(base);
  if (!contiguous.ok()) return contiguous.status();
  Placement p = std::move(*contiguous);
  if (loads.size() != static_cast<size_t>(p.moe_layers)) {
    return InvalidArgument("expert loads cover " + std::to_string(loads.size()) +
                           " MoE layers, the placement has " + std::to_string(p.moe_layers));
  }
  const int32_t devices = p.num_devices();
  for (int32_t l = 0; l < p.moe_layers; ++l) {
    const std::vector<double>& load = loads[l];
    if (load.size() != static_cast<size_t>(p.routed_experts)) {
      return InvalidArgument("expert loads of MoE layer " + std::to_string(l) + " have " +
                             std::to_string(load.size()) + " entries, routedExperts is " +
                             std::to_string(p.routed_experts));
    }
    for (int32_t e = 0; e < p.routed_experts; ++e) {
      if (!std::isfinite(load[e]) || load[e] < 0) {
        return InvalidArgument("expert load of MoE layer " + std::to_string(l) + " expert " +
                               std::to_string(e) + " must be finite and >= 0");
      }
    }
    std::vector<int32_t> free_slots = SlotsPerDevice(p, l);
    std::vector<double> device_load(devices, 0.0);
    std::vector<int32_t> order(p.routed_experts);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return load[a] > load[b]; });
    for (int32_t e : order) {
      int32_t best = -1;
      for (int32_t d = 0; d < devices; ++d) {
        if (free_slots[d] == 0) continue;
        if (best < 0 || device_load[d] < device_load[best]) best = d;
      }
      --free_slots[best];  // slots total routed_experts, so one is always free
      device_load[best] += load[e];
      p.layers[l][e] = {p.SlotOf(best)};
    }
  }
  p.policy = Policy::kLoadBalanced;
  KUBEMOE_RETURN_IF_ERROR(ValidatePlacement(p));
  if (spec.top_k > 0 || spec.device_limit > 0) {
    KUBEMOE_RETURN_IF_ERROR(CheckRoutingFeasible(p, spec.top_k, spec.device_limit));
  }
  p.version = ComputeVersion(p);
  return p;
}

}  // namespace kubemoe::placement
