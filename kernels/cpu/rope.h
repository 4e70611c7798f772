// Rotary position embedding with YaRN scaling, as the original DeepSeek-V2 modelling code
// (DeepseekV2YarnRotaryEmbedding and apply_rotary_pos_emb) computes it.
#pragma once

#include <cstdint>

namespace kubemoe::cpu {

// YaRN settings (config.json rope_scaling, type "yarn"). factor <= 1 means no scaling.
struct YarnParams {
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

// yarn_get_mscale: 1 when scale <= 1, else 0.1 * mscale * ln(scale) + 1.
double YarnGetMscale(double scale, double mscale);

// yarn_find_correction_range: the rotary dimension indices [low, high] (clamped to
// [0, dim - 1]) between which the linear ramp blends interpolated and extrapolated frequencies.
// low = floor(d(beta_fast)), high = ceil(d(beta_slow)) with
// d(r) = dim * ln(original_max_position / (r * 2 pi)) / (2 ln(base)).
void YarnCorrectionRange(const YarnParams& yarn, int64_t dim, double base, int64_t* low,
                         int64_t* high);

// Writes dim / 2 inverse frequencies. Without yarn (null or factor <= 1): base^(-2i/dim). With
// yarn: extra = base^(-2i/dim), inter = extra / factor, mask_i = 1 - clamp((i - low) /
// (high - low), 0, 1) (high += 0.001 when low == high), inv_freq = inter * (1 - mask) +
// extra * mask. Computed in fp32 as the original does. REQUIRES: dim even.
void RopeInvFreq(int64_t dim, double base, const YarnParams* yarn, float* inv_freq);

// The factor cos and sin are multiplied by: yarn_get_mscale(factor, mscale) /
// yarn_get_mscale(factor, mscale_all_dim); 1 without yarn.
double RopeCosSinScale(const YarnParams* yarn);

// The attention softmax scale: q_head_dim^-0.5, times m^2 with m = yarn_get_mscale(factor,
// mscale_all_dim) when yarn is configured with a nonzero mscale_all_dim.
double AttentionSoftmaxScale(int64_t q_head_dim, const YarnParams* yarn);

// cos[p * half + i] = cos(pos_p * inv_freq_i) * scale, sin likewise, for n positions and
// half = dim / 2 frequencies (the angle is the fp32 product pos * inv_freq, as the original).
void RopeCosSin(const int64_t* positions, int64_t n, const float* inv_freq, int64_t half,
                float scale, float* cos, float* sin);

// Rotates one vector x of `dim` floats in place, given its position's cos/sin (dim / 2 each).
// The input holds interleaved pairs (x0, x1), (x2, x3), ... as the checkpoint's projections
// produce them; the output is in the original code's de-interleaved layout (it views the vector
// as [dim/2, 2], transposes, then applies rotate_half):
//   out[i]         = x[2i] * cos_i - x[2i+1] * sin_i
//   out[i + dim/2] = x[2i+1] * cos_i + x[2i] * sin_i
// Queries and keys get the same permutation, so their dot products are layout independent.
void ApplyRope(float* x, int64_t dim, const float* cos, const float* sin);

}  // namespace kubemoe::cpu
