// Computing, validating and versioning placements, and the per-device / per-expert views.
#include "placement/placement.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "routing/device_limited.h"

namespace kubemoe::placement {

const char* PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kRoundRobin: return "roundRobin";
    case Policy::kLoadBalanced: return "loadBalanced";
    case Policy::kContiguous: break;
  }
  return "contiguous";
}

StatusOr<Policy> ParsePolicy(std::string_view name) {
  if (name == "contiguous") return Policy::kContiguous;
  if (name == "roundRobin") return Policy::kRoundRobin;
  if (name == "loadBalanced") return Policy::kLoadBalanced;
  return InvalidArgument("placement policy must be \"contiguous\", \"roundRobin\" or "
                         "\"loadBalanced\", got \"" + std::string(name) + "\"");
}

namespace {

Status CheckSizes(int32_t routed_experts, int32_t moe_layers, int32_t shards,
                  int32_t devices_per_shard) {
  if (routed_experts < 1) {
    return InvalidArgument("routedExperts must be >= 1, got " + std::to_string(routed_experts));
  }
  if (moe_layers < 1) {
    return InvalidArgument("moeLayers must be >= 1, got " + std::to_string(moe_layers));
  }
  if (shards < 1) return InvalidArgument("shards must be >= 1, got " + std::to_string(shards));
  if (devices_per_shard < 1) {
    return InvalidArgument("devicesPerShard must be >= 1, got " +
                           std::to_string(devices_per_shard));
  }
  // Bounds keep shards * devicesPerShard and the placement size far from overflow.
  if (routed_experts > 4096 || moe_layers > 1024 || shards > 1024 || devices_per_shard > 64) {
    return InvalidArgument("placement too large: routedExperts <= 4096, moeLayers <= 1024, "
                           "shards <= 1024, devicesPerShard <= 64");
  }
  if (static_cast<int64_t>(shards) * devices_per_shard > routed_experts) {
    return InvalidArgument("shards x devicesPerShard = " +
                           std::to_string(shards * devices_per_shard) +
                           " devices exceeds routedExperts " + std::to_string(routed_experts) +
                           ": some devices would host no expert");
  }
  return Status::Ok();
}

// Adds `extra` replicas of `expert` in one layer on the least-loaded devices not yet hosting it.
// Ties go to the lowest device index so the result is deterministic.
void AddReplicas(Placement& p, int32_t layer, int32_t expert, int32_t extra) {
  std::vector<std::vector<Slot>>& experts = p.layers[layer];
  std::vector<int32_t> load = SlotsPerDevice(p, layer);
  for (int32_t r = 0; r < extra; ++r) {
    std::vector<Slot>& slots = experts[expert];
    int32_t best = -1;
    for (int32_t d = 0; d < p.num_devices(); ++d) {
      Slot candidate = p.SlotOf(d);
      if (std::find(slots.begin(), slots.end(), candidate) != slots.end()) continue;
      if (best < 0 || load[d] < load[best]) best = d;
    }
    if (best < 0) return;  // every device already hosts it (replicas <= devices is checked)
    slots.push_back(p.SlotOf(best));
    ++load[best];
  }
}

}  // namespace

StatusOr<Placement> ComputePlacement(const PlacementSpec& spec) {
  if (spec.policy == Policy::kLoadBalanced) {
    return InvalidArgument("a loadBalanced placement is computed from measured expert loads "
                           "(ComputeLoadBalancedPlacement), not from the spec alone");
  }
  KUBEMOE_RETURN_IF_ERROR(
      CheckSizes(spec.routed_experts, spec.moe_layers, spec.shards, spec.devices_per_shard));
  Placement p;
  p.routed_experts = spec.routed_experts;
  p.moe_layers = spec.moe_layers;
  p.shards = spec.shards;
  p.devices_per_shard = spec.devices_per_shard;
  p.policy = spec.policy;
  const int64_t devices = p.num_devices();
  const int64_t experts = p.routed_experts;
  std::vector<std::vector<Slot>> layer(p.routed_experts);
  for (int64_t e = 0; e < experts; ++e) {
    int64_t d = spec.policy == Policy::kContiguous ? e * devices / experts : e % devices;
    layer[e].push_back(p.SlotOf(static_cast<int32_t>(d)));
  }
  p.layers.assign(p.moe_layers, layer);

  for (size_t i = 0; i < spec.redundant.size(); ++i) {
    const RedundantExpert& r = spec.redundant[i];
    const std::string field = "experts.redundant[" + std::to_string(i) + "]";
    if (r.expert < 0 || r.expert >= p.routed_experts) {
      return InvalidArgument(field + ".expert " + std::to_string(r.expert) +
                             " is out of range [0, " + std::to_string(p.routed_experts) + ")");
    }
    if (r.layer && (*r.layer < 0 || *r.layer >= p.moe_layers)) {
      return InvalidArgument(field + ".layer " + std::to_string(*r.layer) +
                             " is out of range [0, " + std::to_string(p.moe_layers) + ")");
    }
    if (r.replicas < 1 || r.replicas > devices) {
      return InvalidArgument(field + ".replicas must be in [1, " + std::to_string(devices) +
                             "] (total copies, at most one per device), got " +
                             std::to_string(r.replicas));
    }
  }
  // Applied in list order; a later entry for the same expert raises its copies to its own count.
  for (const RedundantExpert& r : spec.redundant) {
    for (int32_t l = 0; l < p.moe_layers; ++l) {
      if (r.layer && *r.layer != l) continue;
      int32_t have = static_cast<int32_t>(p.layers[l][r.expert].size());
      if (r.replicas > have) AddReplicas(p, l, r.expert, r.replicas - have);
    }
  }
  for (auto& layer_slots : p.layers) {
    for (auto& slots : layer_slots) SortSlots(p, slots);
  }
  KUBEMOE_RETURN_IF_ERROR(ValidatePlacement(p));
  if (spec.top_k > 0 || spec.device_limit > 0) {
    KUBEMOE_RETURN_IF_ERROR(CheckRoutingFeasible(p, spec.top_k, spec.device_limit));
  }
  p.version = ComputeVersion(p);
  return p;
}

Status ValidatePlacement(const Placement& p) {
  KUBEMOE_RETURN_IF_ERROR(
      CheckSizes(p.routed_experts, p.moe_layers, p.shards, p.devices_per_shard));
  if (p.layers.size() != static_cast<size_t>(p.moe_layers)) {
    return InvalidArgument("placement has " + std::to_string(p.layers.size()) +
                           " layers, moeLayers says " + std::to_string(p.moe_layers));
  }
  for (int32_t l = 0; l < p.moe_layers; ++l) {
    const auto& layer = p.layers[l];
    if (layer.size() != static_cast<size_t>(p.routed_experts)) {
      return InvalidArgument("layer " + std::to_string(l) + " places " +
                             std::to_string(layer.size()) + " experts, routedExperts says " +
                             std::to_string(p.routed_experts));
    }
    for (int32_t e = 0; e < p.routed_experts; ++e) {
      const std::string where = "layer " + std::to_string(l) + " expert " + std::to_string(e);
      if (layer[e].empty()) return InvalidArgument(where + " is not placed on any device");
      std::set<std::pair<int32_t, int32_t>> seen;
      for (const Slot& s : layer[e]) {
        if (s.shard < 0 || s.shard >= p.shards) {
          return InvalidArgument(where + ": shard " + std::to_string(s.shard) +
                                 " does not exist (shards: " + std::to_string(p.shards) + ")");
        }
        if (s.device < 0 || s.device >= p.devices_per_shard) {
          return InvalidArgument(where + ": device " + std::to_string(s.device) +
                                 " does not exist (devicesPerShard: " +
                                 std::to_string(p.devices_per_shard) + ")");
        }
        if (!seen.insert({s.shard, s.device}).second) {
          return InvalidArgument(where + " is placed twice on shard " + std::to_string(s.shard) +
                                 " device " + std::to_string(s.device));
        }
      }
    }
  }
  return Status::Ok();
}

Status CheckRoutingFeasible(const Placement& p, int32_t top_k, int32_t device_limit) {
  if (top_k < 1 || top_k > p.routed_experts) {
    return InvalidArgument("topK " + std::to_string(top_k) + " must be in [1, routedExperts " +
                           std::to_string(p.routed_experts) + "]");
  }
  if (device_limit == 0) return Status::Ok();
  if (device_limit < 0 || device_limit > p.num_devices()) {
    return InvalidArgument("deviceLimit " + std::to_string(device_limit) + " must be in [1, " +
                           std::to_string(p.num_devices()) + "] (shards x devicesPerShard)");
  }
  // The router's own rule, so the operator never reports Ready for a router that refuses to
  // start. Layers usually share one layout (only layer-specific replicas differ): check each
  // distinct layout once.
  std::set<std::vector<std::vector<int32_t>>> checked;
  for (int32_t l = 0; l < p.moe_layers; ++l) {
    routing::DevicePlacement layer{p.num_devices(), ExpertDevices(p, l)};
    if (checked.count(layer.expert_devices) > 0) continue;
    Status feasible = routing::ValidateDeviceLimit(layer, p.routed_experts, top_k, device_limit);
    if (!feasible.ok()) {
      return InvalidArgument("deviceLimit " + std::to_string(device_limit) +
                             " is infeasible for topK " + std::to_string(top_k) + " in MoE layer " +
                             std::to_string(l) + ": " + feasible.message());
    }
    checked.insert(std::move(layer.expert_devices));
  }
  return Status::Ok();
}

uint64_t ComputeVersion(const Placement& p) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64 offset basis
  auto mix = [&h](int64_t value) {
    uint64_t v = static_cast<uint64_t>(value);
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(p.routed_experts);
  mix(p.moe_layers);
  mix(p.shards);
  mix(p.devices_per_shard);
  for (const auto& layer : p.layers) {
    mix(-1);  // layer separator keeps different shapes apart
    for (const auto& slots : layer) {
      mix(static_cast<int64_t>(slots.size()));
      for (const Slot& s : slots) mix(static_cast<int64_t>(s.shard) << 32 | s.device);
    }
  }
  uint64_t v = h & 0x7fffffffffffffffull;
  return v == 0 ? 1 : v;
}

void SortSlots(const Placement& p, std::vector<Slot>& slots) {
  std::sort(slots.begin(), slots.end(), [&p](const Slot& a, const Slot& b) {
    return p.GlobalDevice(a) < p.GlobalDevice(b);
  });
}

std::vector<int32_t> ExpertsOnDevice(const Placement& p, int32_t layer, int32_t global_device) {
  std::vector<int32_t> out;
  const Slot want = p.SlotOf(global_device);
  const auto& experts = p.layers[layer];
  for (int32_t e = 0; e < static_cast<int32_t>(experts.size()); ++e) {
    if (std::find(experts[e].begin(), experts[e].end(), want) != experts[e].end()) {
      out.push_back(e);
    }
  }
  return out;
}

std::vector<int32_t> DevicesOfExpert(const Placement& p, int32_t layer, int32_t expert) {
  std::vector<int32_t> out;
  for (const Slot& s : p.layers[layer][expert]) out.push_back(p.GlobalDevice(s));
  return out;
}

std::vector<std::vector<int32_t>> ExpertDevices(const Placement& p, int32_t layer) {
  std::vector<std::vector<int32_t>> out;
  out.reserve(p.routed_experts);
  for (int32_t e = 0; e < p.routed_experts; ++e) out.push_back(DevicesOfExpert(p, layer, e));
  return out;
}

std::vector<int32_t> SlotsPerDevice(const Placement& p, int32_t layer) {
  std::vector<int32_t> load(p.num_devices(), 0);
  for (const auto& slots : p.layers[layer]) {
    for (const Slot& s : slots) ++load[p.GlobalDevice(s)];
  }
  return load;
}

}  // namespace kubemoe::placement
