// MoE gating on the GPU: for a batch of tokens' gate logits, the scores, the selected experts in
// rank order and their gate weights, in one kernel launch. The CPU twin is routing::Router
// (routing/router.h): the ids are identical to it, tie-breaking included, and so are the weights,
// bit for bit, because both sides compute the scores with the same float operations in the same
// order (routing/score_exp.h) and rank with the same total order (routing/topk.h).
#pragma once

#include <cstdint>

#include "common/status.h"
#include "kernels/cuda/runtime.h"
#include "routing/gate_config.h"

namespace kubemoe::cuda {

// Limits of the one-warp-per-token kernel (shared memory holds a token's scores).
inline constexpr int32_t kGatingMaxExperts = 1024;
inline constexpr int32_t kGatingMaxTopK = 64;
inline constexpr int32_t kGatingMaxDevices = 1024;

// A routing::RouterConfig as the kernel sees it.
struct GatingPlan {
  routing::GateConfig gate;
  // 0: the model-faithful rule (gate.method). M >= 1: device-limited selection (device score =
  // max hosted expert score, the M best devices, then the top-K experts hosted on them).
  int32_t device_limit = 0;
  int32_t num_devices = 0;
  // Device arrays, needed when device_limit > 0: the placement in compressed rows
  // (routing::FlatPlacement): the devices of expert e are devices[offsets[e] .. offsets[e + 1]).
  const int32_t* placement_offsets = nullptr;
  const int32_t* placement_devices = nullptr;
};

// For each of num_tokens rows of logits (device, [num_tokens x num_experts] f32) writes
// expert_ids [num_tokens x top_k] in rank order and weights [num_tokens x top_k]. kept_devices,
// when not null, receives [num_tokens x num_devices] flags: 1 for the devices a device-limited
// token may use (all 1 without a device limit). A row holding NaN or infinity gets ids -1 and
// NaN weights (the CPU twin refuses the whole batch instead; the caller checks the ids).
// Returns InvalidArgument for a config routing::ValidateGateConfig refuses, sizes past the
// limits above, or a device limit without placement arrays; the launch error otherwise.
// The placement's feasibility for the device limit is the caller's check
// (routing::ValidateDeviceLimit, as Router::Create does); a token whose kept devices host fewer
// than top_k experts gets -1 ids in the missing ranks.
Status Gating(const GatingPlan& plan, const float* logits, int64_t num_tokens, int32_t* expert_ids,
              float* weights, uint8_t* kept_devices, Stream stream);

}  // namespace kubemoe::cuda
