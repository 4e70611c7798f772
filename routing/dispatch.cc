#include "routing/dispatch.h"

namespace kubemoe::routing {

bool AssignDevices(const FlatPlacement& placement, const int32_t* expert_ids, int32_t k,
                   const uint8_t* allowed_devices, int64_t* device_load, int32_t* out_devices) {
  bool all_assigned = true;
  for (int32_t j = 0; j < k; ++j) {
    const int32_t e = expert_ids[j];
    int32_t best = -1;
    bool best_used = false;
    for (int32_t r = placement.offsets[e]; r < placement.offsets[e + 1]; ++r) {
      const int32_t d = placement.devices[r];
      if (allowed_devices != nullptr && allowed_devices[d] == 0) continue;
      bool used = false;
      for (int32_t i = 0; i < j; ++i) used = used || out_devices[i] == d;
      // Order of preference: already used by this token, then lower load, then lower index.
      const bool better =
          best < 0 || (used && !best_used) ||
          (used == best_used && (device_load[d] < device_load[best] ||
                                 (device_load[d] == device_load[best] && d < best)));
      if (better) {
        best = d;
        best_used = used;
      }
    }
    out_devices[j] = best;
    if (best < 0) {
      all_assigned = false;
      continue;
    }
    ++device_load[best];
  }
  return all_assigned;
}

}  // namespace kubemoe::routing
