#include "kernels/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

namespace kubemoe::cpu {
namespace {

bool YarnActive(const YarnParams* yarn) { return yarn != nullptr && yarn->factor > 1.0; }

double CorrectionDim(double num_rotations, int64_t dim, double base, int64_t max_position) {
  return static_cast<double>(dim) *
         std::log(static_cast<double>(max_position) / (num_rotations * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(base));
}

}  // namespace

double YarnGetMscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

void YarnCorrectionRange(const YarnParams& yarn, int64_t dim, double base, int64_t* low,
                         int64_t* high) {
  const auto lo = static_cast<int64_t>(
      std::floor(CorrectionDim(yarn.beta_fast, dim, base, yarn.original_max_position_embeddings)));
  const auto hi = static_cast<int64_t>(
      std::ceil(CorrectionDim(yarn.beta_slow, dim, base, yarn.original_max_position_embeddings)));
  *low = std::max<int64_t>(lo, 0);
  *high = std::min<int64_t>(hi, dim - 1);
}

void RopeInvFreq(int64_t dim, double base, const YarnParams* yarn, float* inv_freq) {
  const int64_t half = dim / 2;
  const auto fbase = static_cast<float>(base);
  for (int64_t i = 0; i < half; ++i) {
    // base ** (arange(0, dim, 2) / dim) in fp32, like torch.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    const float pos_freq = std::pow(fbase, exponent);
    const float extra = 1.0f / pos_freq;
    if (!YarnActive(yarn)) {
      inv_freq[i] = extra;
      continue;
    }
    const float inter = 1.0f / (static_cast<float>(yarn->factor) * pos_freq);
    int64_t low = 0;
    int64_t high = 0;
    YarnCorrectionRange(*yarn, dim, base, &low, &high);
    float lo = static_cast<float>(low);
    float hi = static_cast<float>(high);
    if (lo == hi) hi += 0.001f;
    const float ramp = std::clamp((static_cast<float>(i) - lo) / (hi - lo), 0.0f, 1.0f);
    const float mask = 1.0f - ramp;  // 1: keep the original (extrapolated) frequency
    inv_freq[i] = inter * (1.0f - mask) + extra * mask;
  }
}

double RopeCosSinScale(const YarnParams* yarn) {
  if (!YarnActive(yarn)) return 1.0;
  return YarnGetMscale(yarn->factor, yarn->mscale) /
         YarnGetMscale(yarn->factor, yarn->mscale_all_dim);
}

double AttentionSoftmaxScale(int64_t q_head_dim, const YarnParams* yarn) {
  double scale = 1.0 / std::sqrt(static_cast<double>(q_head_dim));
  if (yarn != nullptr && yarn->mscale_all_dim != 0.0) {
    const double m = YarnGetMscale(yarn->factor, yarn->mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

void RopeCosSin(const int64_t* positions, int64_t n, const float* inv_freq, int64_t half,
                float scale, float* cos, float* sin) {
  for (int64_t p = 0; p < n; ++p) {
    const auto t = static_cast<float>(positions[p]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = t * inv_freq[i];
      cos[p * half + i] = std::cos(angle) * scale;
      sin[p * half + i] = std::sin(angle) * scale;
    }
  }
}

void ApplyRope(float* x, int64_t dim, const float* cos, const float* sin) {
  const int64_t half = dim / 2;
  // Small fixed scratch: rope dims are 64 in released models; fall back to the heap beyond.
  float stack[256];
  std::vector<float> heap;
  float* tmp = stack;
  if (dim > 256) {
    heap.resize(static_cast<size_t>(dim));
    tmp = heap.data();
  }
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[2 * i];
    const float b = x[2 * i + 1];
    tmp[i] = a * cos[i] - b * sin[i];
    tmp[i + half] = b * cos[i] + a * sin[i];
  }
  std::copy(tmp, tmp + dim, x);
}

}  // namespace kubemoe::cpu
