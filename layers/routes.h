// The routes of one MoE layer's batch of tokens to routed experts, as ragged rows (the layout of
// DeepEP's dispatch): token t's routes are [token_offsets[t], token_offsets[t + 1]), each naming
// the expert, its final gate weight and the global device of the replica chosen. Ragged because a
// shard sees only the routes that land on it, and a router may send a token to fewer experts than
// top_k on one shard.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"

namespace kubemoe::layers {

struct RaggedRoutes {
  std::vector<int64_t> token_offsets = {0};  // num_tokens + 1, non-decreasing, starts at 0
  std::vector<int32_t> expert_ids;           // one per route
  std::vector<float> weights;                // one per route
  std::vector<int32_t> devices;              // one per route, or empty when not placed

  int64_t num_tokens() const { return static_cast<int64_t>(token_offsets.size()) - 1; }
  int64_t num_routes() const { return static_cast<int64_t>(expert_ids.size()); }
  int64_t begin(int64_t token) const { return token_offsets[static_cast<size_t>(token)]; }
  int64_t end(int64_t token) const { return token_offsets[static_cast<size_t>(token) + 1]; }

  // Appends one token's routes (parallel spans; devices may be empty when the others' routes
  // have none).
  void AddToken(std::span<const int32_t> ids, std::span<const float> gate_weights,
                std::span<const int32_t> token_devices = {});
};

// Every token routed to its top_k experts: the router's row-major [num_tokens x top_k] outputs.
// devices is empty or [num_tokens x top_k].
RaggedRoutes RoutesFromTopK(std::span<const int32_t> expert_ids, std::span<const float> weights,
                            std::span<const int32_t> devices, int64_t num_tokens, int32_t top_k);

// OK when the offsets are well formed and the per-route arrays agree in length; expert ids are
// in [0, num_experts) and devices (when present) in [0, num_devices) unless those are <= 0.
// Otherwise InvalidArgument naming the token and route.
Status ValidateRoutes(const RaggedRoutes& routes, int32_t num_experts, int32_t num_devices);

}  // namespace kubemoe::layers
