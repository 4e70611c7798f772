// The shard index of a worker pod. The operator passes --shard-index=$(KUBEMOE_SHARD_INDEX), and
// KUBEMOE_SHARD_INDEX comes from the pod-index label (Kubernetes >= 1.28); on older clusters the
// variable is empty (or, when undefined, Kubernetes leaves "$(KUBEMOE_SHARD_INDEX)" as written),
// and the index is the StatefulSet ordinal: the suffix of the pod name ("tiny-experts-3" -> 3).
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace kubemoe::worker {

// The first of `flag`, `env_index`, the ordinal suffix of `pod_name` that is a non-negative
// decimal integer; an empty value or an unexpanded "$(...)" counts as absent. InvalidArgument
// naming the value when one is present but not an index, or when none is present.
StatusOr<int32_t> ResolveShardIndex(std::string_view flag, std::string_view env_index,
                                    std::string_view pod_name);

}  // namespace kubemoe::worker
