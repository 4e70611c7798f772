#include "router/routing_setup.h"

#include <string>

#include "engine/moe.h"
#include "placement/model_match.h"

namespace kubemoe::router {

StatusOr<std::vector<routing::RouterConfig>> RouterConfigsFor(const ModelConfig& c,
                                                              const placement::Placement& p,
                                                              int32_t device_limit,
                                                              int32_t top_k_override) {
  KUBEMOE_RETURN_IF_ERROR(placement::CheckPlacementMatchesModel(p, "the placement", c));
  std::vector<routing::RouterConfig> configs(static_cast<size_t>(c.num_hidden_layers));
  int32_t moe_index = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (!c.IsMoeLayer(l)) continue;
    routing::RouterConfig& rc = configs[static_cast<size_t>(l)];
    rc.gate = engine::GateConfigFromModel(c);
    if (top_k_override > 0) rc.gate.top_k = top_k_override;
    rc.placement.num_devices = p.num_devices();
    rc.placement.expert_devices = placement::ExpertDevices(p, moe_index);
    rc.device_limit = device_limit;
    StatusOr<routing::Router> check = routing::Router::Create(rc);
    if (!check.ok()) {
      return Status(check.status().code(),
                    "layer " + std::to_string(l) + ": " + check.status().message());
    }
    ++moe_index;
  }
  return configs;
}

}  // namespace kubemoe::router
