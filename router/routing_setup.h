// The router's per-layer routing, from the model's config.json, the placement the operator wrote
// and the serving flags (--device-limit, --top-k).
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "model/config.h"
#include "placement/placement.h"
#include "routing/router.h"

namespace kubemoe::router {

// One RouterConfig per decoder layer (dense layers get a default entry, which the model ignores):
// InvalidArgument when the placement was computed for another model
// (placement::CheckPlacementMatchesModel), else
// the model's gate settings (top_k replaced by top_k_override when > 0), the layer's placement
// (MoE layer i of the model is placement layer i) and device_limit (0 = model-faithful).
// Every config is checked by routing::Router::Create; errors name the layer.
StatusOr<std::vector<routing::RouterConfig>> RouterConfigsFor(
    const ModelConfig& config, const placement::Placement& placement, int32_t device_limit,
    int32_t top_k_override);

}  // namespace kubemoe::router
