// A placement from measured expert loads: each device hosts as many experts as a contiguous
// placement would give it, and the experts are spread so that every device receives about the
// same share of the routed tokens. Used by `kubemoe eval` (the deviceLimit quality curve) and
// available to anyone who has per-expert counts (the workers export them).
#pragma once

#include <vector>

#include "common/status.h"
#include "placement/placement.h"

namespace kubemoe::placement {

// loads[l][e] >= 0 is the measured load of routed expert e in MoE layer l (token counts, say).
// Per layer, experts in descending load (ties: lower expert first) go one by one to the device
// with the least load so far among those with a free slot (ties: lower device); device d has as
// many slots as the contiguous placement gives it. One copy per expert (spec.redundant must be
// empty). spec.policy is ignored; the result says kLoadBalanced. Validated (and, when
// spec.top_k > 0, checked for routing feasibility) and versioned like ComputePlacement.
// InvalidArgument for sizes that do not match the spec or a negative or non-finite load.
StatusOr<Placement> ComputeLoadBalancedPlacement(const PlacementSpec& spec,
                                                 const std::vector<std::vector<double>>& loads);

}  // namespace kubemoe::placement
