// Physical device-limited routing for serving (DeepSeek-V2 paper, "device-limited routing"): a
// token's experts may live on at most M devices, which bounds its dispatch traffic.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "routing/placement_view.h"

namespace kubemoe::routing {

// The feasibility rule for a deviceLimit, the one every component applies (the operator through
// placement::CheckRoutingFeasible, the router through Router::Create).
// Returns OK when device-limited routing with `device_limit` (M) devices can always pick top_k
// experts on `placement`: 1 <= M <= num_devices, and every set of M devices hosts at least top_k
// distinct experts (a replica counts once). Otherwise InvalidArgument naming a set of devices
// that falls short and how many experts it hosts.
// How exact: the M devices hosting the fewest experts are checked first (enough to reject any
// size of placement, and exact when no expert is replicated); then, when there are at most 2^20
// sets of M devices (for example 8 devices, M = 3: 56 sets), every set is checked. Beyond 2^20
// sets a placement that passes the first check is accepted unproven, and a token whose M devices
// host fewer than top_k experts is caught per token by SelectDeviceLimited's caller.
// REQUIRES: ValidatePlacement(placement, num_experts) is OK; 1 <= top_k <= num_experts.
Status ValidateDeviceLimit(const DevicePlacement& placement, int32_t num_experts, int32_t top_k,
                           int32_t device_limit);

// Per-token working memory, sized once per batch.
struct DeviceSelectionScratch {
  float* device_scores = nullptr;   // num_devices floats
  int32_t* kept_devices = nullptr;  // device_limit ints
  uint8_t* device_kept = nullptr;   // num_devices bytes: output, 1 for the kept devices
  uint8_t* eligible = nullptr;      // num_experts bytes
};

// Device-limited selection for the num_experts scores of one token:
// 1. a device's score is the max score of the experts it hosts (-inf when it hosts none);
// 2. the device_limit best devices are kept (tie-break of routing/topk.h, by device index);
// 3. the top_k experts among those hosted on a kept device are written to out in rank order.
// Sets scratch.device_kept and returns how many experts it wrote, which is less than top_k only
// when the kept devices host fewer than top_k experts.
// REQUIRES: 1 <= device_limit <= placement.num_devices; scratch sized as documented.
int32_t SelectDeviceLimited(const FlatPlacement& placement, const float* scores,
                            int32_t num_experts, int32_t device_limit, int32_t top_k,
                            const DeviceSelectionScratch& scratch, int32_t* out);

}  // namespace kubemoe::routing
