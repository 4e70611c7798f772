// Batched MoE routing for one layer: logits [num_tokens x num_experts] in, per token the selected
// experts, their gate weights and (with a placement) the device each one is dispatched to.
// This is the module's entry point; the per-token pieces live in the other routing/ headers.
//
// Ordering contract: every token's experts are written in rank order, best first, where the rank
// is higher score first and, for exactly equal scores, lower index first. The same tie-break
// chooses groups (by group index) and devices (by device index); see routing/topk.h.
#pragma once

#include <cstdint>
#include <span>

#include "common/status.h"
#include "routing/gate_config.h"
#include "routing/placement_view.h"

namespace kubemoe::routing {

struct RouterConfig {
  GateConfig gate;
  // Where the layer's routed experts live. num_devices == 0 (the default) means no placement:
  // Route then produces ids and weights only.
  DevicePlacement placement;
  // 0: model-faithful selection (gate.method). M >= 1: physical device-limited selection over the
  // placement instead (device score = max hosted expert score, top-M devices, top-K experts on
  // them), whatever gate.method says. With a contiguous placement on n_group devices and
  // M = topk_group it selects exactly what group_limited_greedy does; with M = num_devices exactly
  // what greedy does.
  int32_t device_limit = 0;
};

// Caller-owned output arrays, row-major, each at least as long as stated.
struct RouteOutput {
  std::span<int32_t> expert_ids;  // [num_tokens x top_k]
  std::span<float> weights;       // [num_tokens x top_k]
  // [num_tokens x top_k] device per selected expert, or empty to skip dispatch. Non-empty
  // requires a placement.
  std::span<int32_t> devices;
  // [num_tokens], or empty: 1 where the selection differs (as a set) from the model-faithful one.
  // Always 0 without a device limit. Costs one extra model-faithful selection per token.
  std::span<uint8_t> differs_from_model;
};

class Router {
 public:
  // Checks the whole config once (gate fields, placement, device limit feasibility) and returns
  // InvalidArgument naming the offending field when it is not usable.
  static StatusOr<Router> Create(RouterConfig config);

  // Routes num_tokens tokens whose gate logits are logits[t * num_experts + e].
  // device_load is empty or holds num_devices counts: the load each device already has. Replica
  // choice prefers a device the token already uses, else the least loaded replica (see
  // routing/dispatch.h); each dispatch adds one to the chosen device's count, so the caller sees
  // the batch's load afterwards. When empty, counting starts from zero for this call.
  // Returns InvalidArgument for wrong array sizes or a non-finite logit (naming the token), and
  // FailedPrecondition if a token's kept devices host fewer than top_k experts (possible only
  // for placements too large for Create to check exhaustively). After an error the outputs of
  // the failing token and those after it are unspecified. Thread-safe: const, no shared scratch.
  Status Route(std::span<const float> logits, int64_t num_tokens, const RouteOutput& out,
               std::span<int64_t> device_load = {}) const;

  const RouterConfig& config() const { return config_; }
  int32_t num_experts() const { return config_.gate.num_experts; }
  int32_t top_k() const { return config_.gate.top_k; }
  bool has_placement() const { return config_.placement.num_devices > 0; }

 private:
  explicit Router(RouterConfig config);

  RouterConfig config_;
  FlatPlacement flat_;
};

}  // namespace kubemoe::routing
