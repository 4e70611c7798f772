// The dispatch layout of one MoE layer's batch on the GPU: the twin of kernels/cpu/
// dispatch_layout.h, with the same layout contract (expert-contiguous rows in route order, -1 for
// ids outside [0, num_experts)), so the results are identical to the CPU's. All pointers are
// device pointers; everything runs asynchronously on `stream`.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "kernels/cuda/runtime.h"

namespace kubemoe::cuda {

// Experts one layout handles: a block keeps one count per expert in shared memory.
inline constexpr int32_t kDispatchLayoutMaxExperts = 8192;

// Ints of chunk_scratch that DispatchLayout needs: the per-chunk per-expert counts of its
// three-pass layout (one pass over the ids to rank routes within chunks of 512, a scan, a pass
// to place them), so its cost grows with the routes, not with routes x experts.
int64_t DispatchLayoutScratchInts(int64_t num_tokens, int32_t top_k, int32_t num_experts);

struct DispatchLayoutOutputs {
  int32_t* expert_counts = nullptr;        // [num_experts]
  int32_t* expert_offsets = nullptr;       // [num_experts + 1]
  int32_t* route_rows = nullptr;           // [num_tokens x top_k]
  int32_t* row_routes = nullptr;           // [num_tokens x top_k] (the first offsets[E] are set)
  int32_t* device_token_counts = nullptr;  // [num_devices], needed when expert_device is given
  int32_t* chunk_scratch = nullptr;        // [DispatchLayoutScratchInts(...)] working memory
};

// expert_device: [num_experts] destination device of each expert (single-replica placements;
// a placement with replicas chooses replicas on the host with routing::AssignDevices, whose
// least-loaded rule is sequential over tokens by contract), or null.
// Returns InvalidArgument for negative sizes, missing outputs, more than 2^31 - 1 routes or more
// than kDispatchLayoutMaxExperts experts.
Status DispatchLayout(const int32_t* expert_ids, int64_t num_tokens, int32_t top_k,
                      int32_t num_experts, const int32_t* expert_device, int32_t num_devices,
                      const DispatchLayoutOutputs& out, Stream stream);

// out[r] = hidden[row_routes[r] / top_k], rows of hidden_size bf16 (16-byte copies when
// hidden_size is a multiple of 8).
Status PermuteRowsBf16(const uint16_t* hidden, const int32_t* row_routes, int64_t rows,
                       int32_t top_k, int64_t hidden_size, uint16_t* out, Stream stream);

// out[t] = sum over j ascending of weights[t * top_k + j] * expert_out[route_rows[t * top_k + j]],
// f32 (bf16 rows widened; routes with row -1 skipped).
Status CombineRowsBf16(const uint16_t* expert_out, const int32_t* route_rows,
                       const float* weights, int64_t num_tokens, int32_t top_k,
                       int64_t hidden_size, float* out, Stream stream);

}  // namespace kubemoe::cuda
