#include "placement/model_match.h"

namespace kubemoe::placement {

Status CheckPlacementMatchesModel(const Placement& p, const std::string& source,
                                  const ModelConfig& config) {
  if (p.routed_experts != config.n_routed_experts) {
    return InvalidArgument("placement " + source + " has routedExperts " +
                           std::to_string(p.routed_experts) + " but " + config.source +
                           " has n_routed_experts " + std::to_string(config.n_routed_experts) +
                           ": the placement was computed for another model");
  }
  if (p.moe_layers != config.NumMoeLayers()) {
    return InvalidArgument("placement " + source + " has moeLayers " +
                           std::to_string(p.moe_layers) + " but " + config.source + " implies " +
                           std::to_string(config.NumMoeLayers()) +
                           " MoE layers: the placement was computed for another model");
  }
  return Status::Ok();
}

}  // namespace kubemoe::placement
