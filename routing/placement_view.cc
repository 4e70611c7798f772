#include "routing/placement_view.h"

#include <algorithm>
#include <string>

namespace kubemoe::routing {

Status ValidatePlacement(const DevicePlacement& p, int32_t num_experts) {
  if (p.num_devices < 1) {
    return InvalidArgument("placement has num_devices=" + std::to_string(p.num_devices) +
                           ": it needs at least one device");
  }
  if (p.expert_devices.size() != static_cast<size_t>(num_experts)) {
    return InvalidArgument(
        "placement lists devices for " + std::to_string(p.expert_devices.size()) +
        " experts, but the layer has " + std::to_string(num_experts) + " routed experts");
  }
  std::vector<uint8_t> seen(static_cast<size_t>(p.num_devices));
  for (int32_t e = 0; e < num_experts; ++e) {
    const auto& devices = p.expert_devices[static_cast<size_t>(e)];
    if (devices.empty()) {
      return InvalidArgument("placement hosts expert " + std::to_string(e) +
                             " on no device: every routed expert needs at least one replica");
    }
    std::fill(seen.begin(), seen.end(), 0);
    for (int32_t d : devices) {
      if (d < 0 || d >= p.num_devices) {
        return InvalidArgument("placement puts expert " + std::to_string(e) + " on device " +
                               std::to_string(d) +
                               ", outside [0, num_devices=" + std::to_string(p.num_devices) + ")");
      }
      if (seen[static_cast<size_t>(d)] != 0) {
        return InvalidArgument("placement lists device " + std::to_string(d) +
                               " twice for expert " + std::to_string(e));
      }
      seen[static_cast<size_t>(d)] = 1;
    }
  }
  return Status::Ok();
}

DevicePlacement ContiguousPlacement(int32_t num_experts, int32_t num_devices) {
  DevicePlacement p;
  p.num_devices = num_devices;
  const int32_t per_device = num_experts / num_devices;
  p.expert_devices.resize(static_cast<size_t>(num_experts));
  for (int32_t e = 0; e < num_experts; ++e) {
    p.expert_devices[static_cast<size_t>(e)] = {e / per_device};
  }
  return p;
}

FlatPlacement FlattenPlacement(const DevicePlacement& p) {
  FlatPlacement flat;
  flat.num_devices = p.num_devices;
  flat.offsets.reserve(p.expert_devices.size() + 1);
  flat.offsets.push_back(0);
  for (const auto& devices : p.expert_devices) {
    flat.devices.insert(flat.devices.end(), devices.begin(), devices.end());
    flat.offsets.push_back(static_cast<int32_t>(flat.devices.size()));
  }
  return flat;
}

}  // namespace kubemoe::routing
