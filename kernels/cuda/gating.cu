#include <cuda_runtime.h>

#include <string>

#include "kernels/cuda/gating.h"
#include "routing/score_exp.h"

namespace kubemoe::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr unsigned kFullMask = 0xffffffffu;

struct KernelPlan {
  int32_t num_experts;
  int32_t top_k;
  int32_t method;  // 0 greedy, 1 group-limited
  int32_t n_group;
  int32_t topk_group;
  int32_t sigmoid;
  int32_t norm_topk_prob;
  float routed_scaling_factor;
  int32_t device_limit;
  int32_t num_devices;
  const int32_t* offsets;
  const int32_t* devices;
};

// The rank order of routing/topk.h: higher score first, equal scores by lower index. index < 0
// marks "no candidate" and ranks last.
__device__ __forceinline__ bool RanksBefore(float sa, int32_t ia, float sb, int32_t ib) {
  if (ib < 0) return ia >= 0;
  if (ia < 0) return false;
  return sa > sb || (sa == sb && ia < ib);
}

// The best candidate over the warp; every lane returns it.
__device__ __forceinline__ void WarpBest(float& score, int32_t& index) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float s = __shfl_xor_sync(kFullMask, score, offset);
    const int32_t i = __shfl_xor_sync(kFullMask, index, offset);
    if (RanksBefore(s, i, score, index)) {
      score = s;
      index = i;
    }
  }
}

// Picks the `count` best of values[0..n) whose flag in `eligible` is nonzero (all when null), in
// rank order, into out (lane 0 writes); chosen entries are cleared in `taken` (n bytes, set to 1
// for candidates by the caller). Returns how many were found.
__device__ int32_t WarpSelect(const float* values, int32_t n, uint8_t* taken, int32_t count,
                              int32_t* out, int lane) {
  int32_t found = 0;
  for (int32_t r = 0; r < count; ++r) {
    float best_score = 0.0f;
    int32_t best_index = -1;
    for (int32_t i = lane; i < n; i += 32) {
      if (taken[i] != 0 && RanksBefore(values[i], i, best_score, best_index)) {
        best_score = values[i];
        best_index = i;
      }
    }
    WarpBest(best_score, best_index);
    if (best_index < 0) break;
    if (lane == 0) {
      out[r] = best_index;
      taken[best_index] = 0;
    }
    ++found;
    __syncwarp();
  }
  return found;
}

// One warp per token. Shared memory per warp: scores [E] f32, aux [max(n_group, num_devices)]
// f32, eligible [E] bytes, aux flags [max(n_group, num_devices)] bytes, chosen [max(top_k,
// topk_group, device_limit)] ints.
__global__ void GatingKernel(KernelPlan p, const float* __restrict__ logits, int64_t num_tokens,
                             int32_t* __restrict__ expert_ids, float* __restrict__ weights,
                             uint8_t* __restrict__ kept_devices, int32_t aux_len,
                             int32_t chosen_len) {
  extern __shared__ unsigned char shared[];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int64_t token = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (token >= num_tokens) return;  // whole warps leave together

  const int32_t E = p.num_experts;
  const size_t per_warp = (static_cast<size_t>(E + aux_len) * 4 + E + aux_len + 15) / 16 * 16 +
                          static_cast<size_t>(chosen_len) * 4;
  unsigned char* base = shared + per_warp * warp;
  float* scores = reinterpret_cast<float*>(base);
  float* aux = scores + E;
  uint8_t* eligible = reinterpret_cast<uint8_t*>(aux + aux_len);
  uint8_t* aux_flags = eligible + E;
  int32_t* chosen =
      reinterpret_cast<int32_t*>(base + (static_cast<size_t>(E + aux_len) * 4 + E + aux_len + 15) /
                                            16 * 16);

  const float* row = logits + token * E;
  int32_t* ids = expert_ids + token * p.top_k;
  float* w = weights + token * p.top_k;

  // Load, check finiteness, find the max (exact whatever the order).
  float local_max = -__int_as_float(0x7f800000);
  bool finite = true;
  for (int32_t e = lane; e < E; e += 32) {
    const float x = row[e];
    finite = finite && isfinite(x);
    scores[e] = x;
    local_max = fmaxf(local_max, x);
  }
  if (__any_sync(kFullMask, !finite)) {
    for (int32_t j = lane; j < p.top_k; j += 32) {
      ids[j] = -1;
      w[j] = __int_as_float(0x7fc00000);
    }
    if (kept_devices != nullptr) {
      for (int32_t d = lane; d < p.num_devices; d += 32) kept_devices[token * p.num_devices + d] = 0;
    }
    return;
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    local_max = fmaxf(local_max, __shfl_xor_sync(kFullMask, local_max, offset));
  }
  __syncwarp();

  // Scores, with the CPU's operations in the CPU's order (routing/scoring.cc).
  if (p.sigmoid) {
    for (int32_t e = lane; e < E; e += 32) {
      scores[e] = __fdiv_rn(1.0f, __fadd_rn(1.0f, routing::ScoreExp(-scores[e])));
    }
  } else {
    for (int32_t e = lane; e < E; e += 32) {
      scores[e] = routing::ScoreExp(__fadd_rn(scores[e], -local_max));
    }
    __syncwarp();
    float inv = 0.0f;
    if (lane == 0) {
      float sum = 0.0f;  // sequential, as the CPU sums
      for (int32_t e = 0; e < E; ++e) sum = __fadd_rn(sum, scores[e]);
      inv = __fdiv_rn(1.0f, sum);
    }
    inv = __shfl_sync(kFullMask, inv, 0);
    for (int32_t e = lane; e < E; e += 32) scores[e] = __fmul_rn(scores[e], inv);
  }
  __syncwarp();

  // Which experts are candidates.
  if (p.device_limit > 0) {
    // Device score = max over hosted experts. Scores are >= 0, so their bit patterns order as
    // signed ints and an integer max is the float max; -inf (a device hosting nothing) is
    // negative as an int and loses to every score.
    int* device_bits = reinterpret_cast<int*>(aux);
    for (int32_t d = lane; d < p.num_devices; d += 32) device_bits[d] = __float_as_int(-__int_as_float(0x7f800000));
    __syncwarp();
    for (int32_t e = lane; e < E; e += 32) {
      const int bits = __float_as_int(scores[e]);
      for (int32_t r = p.offsets[e]; r < p.offsets[e + 1]; ++r) atomicMax(&device_bits[p.devices[r]], bits);
    }
    __syncwarp();
    for (int32_t d = lane; d < p.num_devices; d += 32) {
      aux[d] = __int_as_float(device_bits[d]);
      aux_flags[d] = 1;
    }
    __syncwarp();
    const int32_t kept = WarpSelect(aux, p.num_devices, aux_flags, p.device_limit, chosen, lane);
    // aux_flags now 0 exactly for the kept devices; turn it into "kept" flags.
    for (int32_t d = lane; d < p.num_devices; d += 32) aux_flags[d] = 0;
    __syncwarp();
    if (lane == 0) {
      for (int32_t j = 0; j < kept; ++j) aux_flags[chosen[j]] = 1;
    }
    __syncwarp();
    for (int32_t e = lane; e < E; e += 32) {
      uint8_t on_kept = 0;
      for (int32_t r = p.offsets[e]; r < p.offsets[e + 1]; ++r) on_kept |= aux_flags[p.devices[r]];
      eligible[e] = on_kept;
    }
    if (kept_devices != nullptr) {
      for (int32_t d = lane; d < p.num_devices; d += 32) {
        kept_devices[token * p.num_devices + d] = aux_flags[d];
      }
    }
  } else if (p.method == 1) {
    // Group score = max of the group's experts; keep the topk_group best groups.
    const int32_t group_size = E / p.n_group;
    for (int32_t g = lane; g < p.n_group; g += 32) {
      const float* group = scores + g * group_size;
      float best = group[0];
      for (int32_t i = 1; i < group_size; ++i) best = group[i] > best ? group[i] : best;
      aux[g] = best;
      aux_flags[g] = 1;
    }
    __syncwarp();
    const int32_t kept = WarpSelect(aux, p.n_group, aux_flags, p.topk_group, chosen, lane);
    for (int32_t e = lane; e < E; e += 32) eligible[e] = 0;
    __syncwarp();
    for (int32_t j = 0; j < kept; ++j) {
      const int32_t g = chosen[j];
      for (int32_t i = lane; i < group_size; i += 32) eligible[g * group_size + i] = 1;
    }
    if (kept_devices != nullptr) {
      for (int32_t d = lane; d < p.num_devices; d += 32) kept_devices[token * p.num_devices + d] = 1;
    }
  } else {
    for (int32_t e = lane; e < E; e += 32) eligible[e] = 1;
    if (kept_devices != nullptr) {
      for (int32_t d = lane; d < p.num_devices; d += 32) kept_devices[token * p.num_devices + d] = 1;
    }
  }
  __syncwarp();

  const int32_t found = WarpSelect(scores, E, eligible, p.top_k, chosen, lane);
  __syncwarp();
  if (lane == 0) {
    for (int32_t j = found; j < p.top_k; ++j) chosen[j] = -1;
    // Gate weights as routing/gate_weights.cc computes them, sum in rank order.
    if (p.norm_topk_prob && p.top_k > 1) {
      float sum = 0.0f;
      for (int32_t j = 0; j < found; ++j) sum = __fadd_rn(sum, scores[chosen[j]]);
      const float denominator = __fadd_rn(sum, 1e-20f);
      for (int32_t j = 0; j < p.top_k; ++j) {
        ids[j] = chosen[j];
        w[j] = chosen[j] < 0 ? __int_as_float(0x7fc00000) : __fdiv_rn(scores[chosen[j]], denominator);
      }
    } else {
      for (int32_t j = 0; j < p.top_k; ++j) {
        ids[j] = chosen[j];
        w[j] = chosen[j] < 0 ? __int_as_float(0x7fc00000)
                             : __fmul_rn(scores[chosen[j]], p.routed_scaling_factor);
      }
    }
  }
}

}  // namespace

Status Gating(const GatingPlan& plan, const float* logits, int64_t num_tokens, int32_t* expert_ids,
              float* weights, uint8_t* kept_devices, Stream stream) {
  const routing::GateConfig& gate = plan.gate;
  KUBEMOE_RETURN_IF_ERROR(routing::ValidateGateConfig(gate));
  if (gate.num_experts > kGatingMaxExperts) {
    return InvalidArgument("gating kernel: n_routed_experts=" + std::to_string(gate.num_experts) +
                           " exceeds its limit of " + std::to_string(kGatingMaxExperts));
  }
  if (gate.top_k > kGatingMaxTopK) {
    return InvalidArgument("gating kernel: num_experts_per_tok=" + std::to_string(gate.top_k) +
                           " exceeds its limit of " + std::to_string(kGatingMaxTopK));
  }
  if (plan.num_devices < 0 || plan.num_devices > kGatingMaxDevices) {
    return InvalidArgument("gating kernel: num_devices=" + std::to_string(plan.num_devices) +
                           " outside [0, " + std::to_string(kGatingMaxDevices) + "]");
  }
  if (plan.device_limit < 0 || plan.device_limit > plan.num_devices) {
    return InvalidArgument("gating kernel: device_limit=" + std::to_string(plan.device_limit) +
                           " outside [0, num_devices=" + std::to_string(plan.num_devices) + "]");
  }
  if (plan.device_limit > 0 &&
      (plan.placement_offsets == nullptr || plan.placement_devices == nullptr)) {
    return InvalidArgument("gating kernel: a device limit needs the placement arrays");
  }
  if (num_tokens < 0) return InvalidArgument("gating kernel: num_tokens < 0");
  if (num_tokens == 0) return Status::Ok();
  if (logits == nullptr || expert_ids == nullptr || weights == nullptr) {
    return InvalidArgument("gating kernel: logits, expert_ids and weights are required");
  }

  KernelPlan p{};
  p.num_experts = gate.num_experts;
  p.top_k = gate.top_k;
  p.method = gate.method == routing::TopkMethod::kGroupLimitedGreedy ? 1 : 0;
  p.n_group = gate.n_group;
  p.topk_group = gate.topk_group;
  p.sigmoid = gate.scoring == routing::ScoringFunc::kSigmoid ? 1 : 0;
  p.norm_topk_prob = gate.norm_topk_prob ? 1 : 0;
  p.routed_scaling_factor = gate.routed_scaling_factor;
  p.device_limit = plan.device_limit;
  p.num_devices = plan.num_devices;
  p.offsets = plan.placement_offsets;
  p.devices = plan.placement_devices;

  const int32_t groups = p.method == 1 ? gate.n_group : 0;
  const int32_t aux_len = groups > plan.num_devices ? groups : plan.num_devices;
  int32_t chosen_len = gate.top_k;
  if (gate.topk_group > chosen_len) chosen_len = gate.topk_group;
  if (plan.device_limit > chosen_len) chosen_len = plan.device_limit;
  const size_t per_warp =
      (static_cast<size_t>(gate.num_experts + aux_len) * 4 + gate.num_experts + aux_len + 15) /
          16 * 16 +
      static_cast<size_t>(chosen_len) * 4;
  const size_t shared_bytes = per_warp * kWarpsPerBlock;
  // At the limits (1024 experts, 1024 devices): about 43 KB, inside the default 48 KB.
  const int64_t blocks = (num_tokens + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > 0x7fffffffLL) return InvalidArgument("gating kernel: too many tokens");
  GatingKernel<<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, shared_bytes, stream>>>(
      p, logits, num_tokens, expert_ids, weights, kept_devices, aux_len, chosen_len);
  return LastLaunchError("gating kernel launch");
}

}  // namespace kubemoe::cuda
