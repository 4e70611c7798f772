// Expert placement: which (shard, device) slots host each routed expert of each MoE layer.
//
// The operator computes a placement from a MoEModel, writes it as YAML into a ConfigMap, and the
// router and workers load the same YAML. Plain C++ (no Kubernetes, no CUDA) so every component
// and the CLI can share it.
//
// Devices are numbered globally: device d lives in shard d / devicesPerShard as local device
// d % devicesPerShard. A Slot names the shard and the local device.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kubemoe::placement {

enum class Policy {
  kContiguous,  // expert e of E over D devices goes to device floor(e * D / E): model groups land
                // on devices, so device-limited routing matches group-limited routing.
  kRoundRobin,  // expert e goes to device e % D: spreads neighbouring experts apart.
  kLoadBalanced,  // from measured expert loads (placement/load_balanced.h); not a CRD value:
                  // ComputePlacement refuses it, the operator's MoEModel parser too.
};

// "contiguous" / "roundRobin" (the CRD's spelling) / "loadBalanced".
const char* PolicyName(Policy policy);
StatusOr<Policy> ParsePolicy(std::string_view name);

// A request for more copies of one expert. `replicas` is the TOTAL number of copies (1 = no extra
// copy), at most the number of devices. Without `layer` it applies to every MoE layer.
struct RedundantExpert {
  std::optional<int32_t> layer;
  int32_t expert = 0;
  int32_t replicas = 1;
};

// Everything a placement is computed from. The operator fills it from the MoEModel spec.
struct PlacementSpec {
  int32_t routed_experts = 0;   // per MoE layer (config.json n_routed_experts)
  int32_t moe_layers = 0;       // number of MoE layers (layers with routed experts)
  int32_t shards = 1;
  int32_t devices_per_shard = 1;
  Policy policy = Policy::kContiguous;
  std::vector<RedundantExpert> redundant;
  int32_t top_k = 0;            // experts per token (0 = do not check routing feasibility)
  int32_t device_limit = 0;     // routing.deviceLimit M (0 = no device limit)
};

struct Slot {
  int32_t shard = 0;
  int32_t device = 0;  // local device index inside the shard
  bool operator==(const Slot&) const = default;
};

struct Placement {
  // Deterministic function of the content below (see ComputeVersion); never 0 for a computed or
  // parsed placement, so 0 can mean "no placement yet".
  uint64_t version = 0;
  int32_t routed_experts = 0;
  int32_t moe_layers = 0;
  int32_t shards = 0;
  int32_t devices_per_shard = 0;
  Policy policy = Policy::kContiguous;
  // layers[l][e] lists the slots of routed expert e in MoE layer l, ascending by global device
  // (canonical order: all copies are equal, the version hashes this order).
  std::vector<std::vector<std::vector<Slot>>> layers;

  int32_t num_devices() const { return shards * devices_per_shard; }
  int32_t GlobalDevice(const Slot& slot) const { return slot.shard * devices_per_shard + slot.device; }
  Slot SlotOf(int32_t global_device) const {
    return {global_device / devices_per_shard, global_device % devices_per_shard};
  }
};

// Computes the placement for `spec`, validates it (ValidatePlacement and, when spec.top_k > 0,
// CheckRoutingFeasible) and stamps its version. Errors name the offending input, e.g.
// "experts.redundant[0].expert 99 is out of range [0, 64)".
StatusOr<Placement> ComputePlacement(const PlacementSpec& spec);

// Checks structure: sizes positive and consistent, every expert of every layer has >= 1 slot,
// every slot's shard and device exist, no expert has the same slot twice.
Status ValidatePlacement(const Placement& placement);

// Checks that device-limited routing can always pick top_k experts, with the router's own rule:
// routing::ValidateDeviceLimit on every MoE layer (any device_limit devices together host
// >= top_k distinct experts; a replica counts once). The error names the MoE layer, a set of
// devices that falls short and how many experts it hosts. Where a layer has more than 2^20 sets
// of device_limit devices, ValidateDeviceLimit only rejects what its cheap bound proves
// infeasible and otherwise accepts, exactly as the router's start-up check does; the router then
// fails the batch of any token whose devices fall short. Also top_k must be in
// [1, routed_experts] and device_limit in [0, device count].
// device_limit == 0 means no limit (only the range of top_k is checked).
// REQUIRES: ValidatePlacement(placement) is OK.
Status CheckRoutingFeasible(const Placement& placement, int32_t top_k, int32_t device_limit);

// The version: FNV-1a 64 over a canonical encoding of sizes and slots (not `version` itself, not
// the policy name), masked to 63 bits so it is a valid Kubernetes int64, and never 0. Equal
// placements have equal versions on every machine; the operator compares versions to know
// whether the placement changed.
uint64_t ComputeVersion(const Placement& placement);

// YAML (the ConfigMap's placement.yaml). Layout, compact enough for 160 experts x 59 layers:
//   kind: ExpertPlacement
//   version: 123
//   routedExperts: 16
//   moeLayers: 2
//   shards: 2
//   devicesPerShard: 1
//   policy: contiguous
//   layers:
//     - layer: 0
//       devices:
//         - {shard: 0, device: 0, experts: [0, 1, 2, 3, 4, 5, 6, 7]}
// A device's experts list its primary experts and the replicas it hosts, ascending. Devices with
// no experts may be omitted.
std::string ToYaml(const Placement& placement);

// Parses and validates (ValidatePlacement) the YAML above. `version` must equal ComputeVersion
// of the parsed content, so a hand-edited file cannot claim a version it does not have.
// `source` names the input in errors (a file path). Never throws.
StatusOr<Placement> ParsePlacementYaml(std::string_view text, std::string_view source);

// Views for the router and workers. REQUIRES: 0 <= layer < moe_layers; devices in range.
// The routed experts hosted on `global_device` in `layer`, ascending.
std::vector<int32_t> ExpertsOnDevice(const Placement& placement, int32_t layer,
                                     int32_t global_device);
// The global devices hosting `expert` in `layer`, ascending.
std::vector<int32_t> DevicesOfExpert(const Placement& placement, int32_t layer, int32_t expert);
// expert_devices[e] = DevicesOfExpert(layer, e): the shape routing::DevicePlacement takes.
std::vector<std::vector<int32_t>> ExpertDevices(const Placement& placement, int32_t layer);
// Puts `slots` in canonical order (ascending global device).
void SortSlots(const Placement& placement, std::vector<Slot>& slots);
// Number of expert slots per global device in `layer` (its load before traffic).
std::vector<int32_t> SlotsPerDevice(const Placement& placement, int32_t layer);

}  // namespace kubemoe::placement
