#include "kernels/cpu/dispatch_layout.h"

#include <cstring>
#include <vector>

namespace kubemoe::cpu {
namespace {

float Bf16ToF32(uint16_t bits) {
  const uint32_t u = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace

void DispatchLayout(const int32_t* expert_ids, int64_t num_tokens, int32_t top_k,
                    int32_t num_experts, const int32_t* expert_device, int32_t num_devices,
                    int32_t* expert_counts, int32_t* expert_offsets, int32_t* route_rows,
                    int32_t* row_routes, int32_t* device_token_counts) {
  const int64_t routes = num_tokens * top_k;
  std::memset(expert_counts, 0, sizeof(int32_t) * static_cast<size_t>(num_experts));
  for (int64_t r = 0; r < routes; ++r) {
    const int32_t e = expert_ids[r];
    if (e >= 0 && e < num_experts) ++expert_counts[e];
  }
  expert_offsets[0] = 0;
  for (int32_t e = 0; e < num_experts; ++e) expert_offsets[e + 1] = expert_offsets[e] + expert_counts[e];
  std::vector<int32_t> next(expert_offsets, expert_offsets + num_experts);
  for (int64_t r = 0; r < routes; ++r) {
    const int32_t e = expert_ids[r];
    if (e < 0 || e >= num_experts) {
      route_rows[r] = -1;
      continue;
    }
    const int32_t row = next[static_cast<size_t>(e)]++;
    route_rows[r] = row;
    row_routes[row] = static_cast<int32_t>(r);
  }
  if (expert_device == nullptr) return;
  std::memset(device_token_counts, 0, sizeof(int32_t) * static_cast<size_t>(num_devices));
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int32_t* ids = expert_ids + t * top_k;
    for (int32_t j = 0; j < top_k; ++j) {
      if (ids[j] < 0 || ids[j] >= num_experts) continue;
      const int32_t d = expert_device[ids[j]];
      bool seen = false;
      for (int32_t i = 0; i < j && !seen; ++i) {
        seen = ids[i] >= 0 && ids[i] < num_experts && expert_device[ids[i]] == d;
      }
      if (!seen) ++device_token_counts[d];
    }
  }
}

void PermuteRowsBf16(const uint16_t* hidden, const int32_t* row_routes, int64_t rows,
                     int32_t top_k, int64_t hidden_size, uint16_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t token = row_routes[r] / top_k;
    std::memcpy(out + r * hidden_size, hidden + token * hidden_size,
                sizeof(uint16_t) * static_cast<size_t>(hidden_size));
  }
}

void CombineRowsBf16(const uint16_t* expert_out, const int32_t* route_rows, const float* weights,
                     int64_t num_tokens, int32_t top_k, int64_t hidden_size, float* out) {
  for (int64_t t = 0; t < num_tokens; ++t) {
    float* o = out + t * hidden_size;
    std::memset(o, 0, sizeof(float) * static_cast<size_t>(hidden_size));
    for (int32_t j = 0; j < top_k; ++j) {
      const int32_t row = route_rows[t * top_k + j];
      if (row < 0) continue;
      const float w = weights[t * top_k + j];
      const uint16_t* x = expert_out + static_cast<int64_t>(row) * hidden_size;
      for (int64_t i = 0; i < hidden_size; ++i) o[i] += w * Bf16ToF32(x[i]);
    }
  }
}

}  // namespace kubemoe::cpu
