// Which replica serves each selected expert of a token.
#pragma once

#include <cstdint>

#include "routing/placement_view.h"

namespace kubemoe::routing {

// For the k selected experts of one token, taken in rank order, writes out_devices[j], the device
// that expert_ids[j] is dispatched to. Candidates are the expert's replicas on allowed devices
// (allowed_devices null: all devices). Among them a device this token already dispatches to
// (an earlier out_devices entry) is preferred, so replication never adds destinations; otherwise,
// or among several such devices, the least loaded one wins, ties to the lower device index.
// device_load[d] is then incremented by one, so a batch spreads over replicas as it goes.
// Returns false, leaving out_devices[j] = -1, only when an expert has no allowed replica.
// REQUIRES: ids valid for placement; device_load holds placement.num_devices counts.
bool AssignDevices(const FlatPlacement& placement, const int32_t* expert_ids, int32_t k,
                   const uint8_t* allowed_devices, int64_t* device_load, int32_t* out_devices);

}  // namespace kubemoe::routing
