// Whether a placement was computed for a given model: router and workers both refuse to start on
// one computed for another checkpoint.
#pragma once

#include <string>

#include "common/status.h"
#include "model/config.h"
#include "placement/placement.h"

namespace kubemoe::placement {

// InvalidArgument naming `source` (the placement file) and the config file when the placement's
// routedExperts differs from config.json's n_routed_experts or its moeLayers from the number of
// MoE layers the config implies.
Status CheckPlacementMatchesModel(const Placement& placement, const std::string& source,
                                  const ModelConfig& config);

}  // namespace kubemoe::placement
