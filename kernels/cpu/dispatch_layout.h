// The dispatch layout of one MoE layer's batch, on the CPU (the twin of
// kernels/cuda/dispatch_layout.h): where each route (token t's j-th selected expert, route index
// t * top_k + j) lands in the expert-contiguous buffer that the grouped expert FFN reads, how
// many rows each expert and each destination device receives, and the inverse that combines the
// experts' outputs back into tokens with the gate weights.
//
// Layout contract (both backends): expert e's rows are [expert_offsets[e], expert_offsets[e+1]),
// holding its routes in ascending route index (token order), so the layout is a pure function
// of the ids. A route whose id lies outside [0, num_experts) (a gating row that failed) goes
// nowhere: route_rows = -1, counted nowhere, skipped by the combine.
#pragma once

#include <cstdint>

namespace kubemoe::cpu {

// expert_ids: [num_tokens x top_k]. expert_device: [num_experts] destination of each expert
// (single-replica placements), or null to skip the device counts.
// Writes expert_counts [num_experts], expert_offsets [num_experts + 1] (exclusive prefix sums),
// route_rows [num_tokens x top_k], row_routes [expert_offsets[num_experts]] (the route of each
// row) and, with expert_device, device_token_counts [num_devices]: the tokens with at least one
// route to the device (a token sent to two experts on one device is sent once).
void DispatchLayout(const int32_t* expert_ids, int64_t num_tokens, int32_t top_k,
                    int32_t num_experts, const int32_t* expert_device, int32_t num_devices,
                    int32_t* expert_counts, int32_t* expert_offsets, int32_t* route_rows,
                    int32_t* row_routes, int32_t* device_token_counts);

// out[r] = hidden[row_routes[r] / top_k] for rows of hidden_size bf16 values.
void PermuteRowsBf16(const uint16_t* hidden, const int32_t* row_routes, int64_t rows,
                     int32_t top_k, int64_t hidden_size, uint16_t* out);

// out[t] = sum over j ascending of weights[t * top_k + j] * expert_out[route_rows[t * top_k + j]]
// (bf16 rows widened to f32, f32 sums; routes with row -1 skipped; no route gives zeros).
void CombineRowsBf16(const uint16_t* expert_out, const int32_t* route_rows, const float* weights,
                     int64_t num_tokens, int32_t top_k, int64_t hidden_size, float* out);

}  // namespace kubemoe::cpu
