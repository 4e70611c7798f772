// Where each routed expert of one MoE layer lives, as routing needs to see it: expert -> devices.
// The operator's full placement (shards, versions, layers) is richer; this is the slice the
// router passes to routing for one layer.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"

namespace kubemoe::routing {

struct DevicePlacement {
  int32_t num_devices = 0;
  // expert_devices[e] lists the devices hosting a replica of routed expert e (at least one,
  // each in [0, num_devices), no device twice). Several entries mean the expert is replicated.
  std::vector<std::vector<int32_t>> expert_devices;
};

// Returns OK when placement covers exactly num_experts experts and every list is valid as
// documented above; otherwise InvalidArgument naming the expert and the device.
Status ValidatePlacement(const DevicePlacement& placement, int32_t num_experts);

// The default placement: experts split into num_devices contiguous equal ranges, one replica each
// (expert e on device e / (num_experts / num_devices)), so model groups land on devices.
// REQUIRES: num_devices >= 1 divides num_experts.
DevicePlacement ContiguousPlacement(int32_t num_experts, int32_t num_devices);

// The same placement in compressed rows, for the per-token loops: the devices of expert e are
// devices[offsets[e] .. offsets[e + 1]).
struct FlatPlacement {
  int32_t num_devices = 0;
  std::vector<int32_t> offsets;
  std::vector<int32_t> devices;
};

// REQUIRES: ValidatePlacement(placement, placement.expert_devices.size()) is OK.
FlatPlacement FlattenPlacement(const DevicePlacement& placement);

}  // namespace kubemoe::routing
