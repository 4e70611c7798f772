// RoPE with YaRN against the formulas of the original DeepSeek-V2 code, evaluated here
// independently in double precision, and the MLA softmax scale.
//
// The softmax scale follows the original code, not transformers 4.54: the original multiplies
// q_head_dim^-0.5 by mscale^2 with mscale = 0.1 * mscale_all_dim * ln(factor) + 1 whenever
// rope_scaling sets a nonzero mscale_all_dim (YaRN's attention temperature, applied once to q and
// once to k in the paper's derivation, hence the square); transformers 4.54's native
// DeepseekV2Attention leaves it out. The transformers fixtures therefore keep
// mscale_all_dim = 0, and this file covers the nonzero case.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "engine/mla.h"
#include "kernels/cpu/rope.h"
#include "model/config.h"

namespace kubemoe::cpu {
namespace {

// DeepSeek-V2's released rope_scaling (config.json of DeepSeek-V2 and -Lite).
YarnParams V2Yarn() {
  return {.factor = 40.0,
          .original_max_position_embeddings = 4096,
          .beta_fast = 32.0,
          .beta_slow = 1.0,
          .mscale = 0.707,
          .mscale_all_dim = 0.707};
}

TEST(Yarn, MscaleAndSoftmaxScale) {
  EXPECT_EQ(YarnGetMscale(1.0, 0.707), 1.0);
  EXPECT_EQ(YarnGetMscale(0.5, 0.707), 1.0);
  const double m = 0.1 * 0.707 * std::log(40.0) + 1.0;
  EXPECT_NEAR(YarnGetMscale(40.0, 0.707), m, 1e-15);
  const YarnParams y = V2Yarn();
  // (128 + 64)^-0.5 * m^2 = 0.11472...; the facts sheet quotes 0.114721 for the released configs.
  const double scale = std::pow(192.0, -0.5) * m * m;
  EXPECT_NEAR(AttentionSoftmaxScale(192, &y), scale, 1e-15);
  EXPECT_NEAR(scale, 0.114721, 5e-6);
  EXPECT_NEAR(AttentionSoftmaxScale(192, nullptr), 1.0 / std::sqrt(192.0), 1e-15);
  YarnParams no_all_dim = y;
  no_all_dim.mscale_all_dim = 0.0;
  EXPECT_NEAR(AttentionSoftmaxScale(192, &no_all_dim), 1.0 / std::sqrt(192.0), 1e-15);
  // mscale == mscale_all_dim: the cos/sin factor cancels to exactly 1.
  EXPECT_EQ(RopeCosSinScale(&y), 1.0);
  no_all_dim.mscale = 1.0;
  EXPECT_NEAR(RopeCosSinScale(&no_all_dim), 0.1 * std::log(40.0) + 1.0, 1e-15);
}

TEST(Yarn, EngineUsesTheOriginalSoftmaxScale) {
  ModelConfig c;  // original defaults: q_head_dim 192
  c.rope_scaling = YarnScaling{.factor = 40.0,
                               .original_max_position_embeddings = 4096,
                               .beta_fast = 32.0,
                               .beta_slow = 1.0,
                               .mscale = 0.707,
                               .mscale_all_dim = 0.707};
  const double m = 0.1 * 0.707 * std::log(40.0) + 1.0;
  EXPECT_NEAR(engine::MlaConstants::FromConfig(c).softmax_scale, std::pow(192.0, -0.5) * m * m,
              1e-7);
}

TEST(Yarn, InverseFrequenciesMatchTheFormula) {
  const YarnParams y = V2Yarn();
  const int64_t dim = 64;
  const double base = 10000.0;
  // Correction range by hand: d(r) = dim ln(4096 / (2 pi r)) / (2 ln base).
  auto d = [&](double r) {
    return dim * std::log(4096.0 / (2 * std::numbers::pi * r)) / (2 * std::log(base));
  };
  const auto low = static_cast<int64_t>(std::floor(d(32.0)));
  const auto high = static_cast<int64_t>(std::ceil(d(1.0)));
  int64_t got_low = 0, got_high = 0;
  YarnCorrectionRange(y, dim, base, &got_low, &got_high);
  EXPECT_EQ(got_low, low);
  EXPECT_EQ(got_high, high);
  EXPECT_EQ(low, 10);   // 64 ln(4096/(64 pi)) / (2 ln 1e4) = 10.4
  EXPECT_EQ(high, 23);  // 64 ln(4096/(2 pi)) / (2 ln 1e4) = 22.5

  std::vector<float> inv(dim / 2);
  RopeInvFreq(dim, base, &y, inv.data());
  for (int64_t i = 0; i < dim / 2; ++i) {
    const double extra = std::pow(base, -2.0 * static_cast<double>(i) / dim);
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double want = extra / 40.0 * ramp + extra * (1.0 - ramp);
    EXPECT_NEAR(inv[static_cast<size_t>(i)], want, 2e-6 * want) << i;
  }
  // The ends: high frequencies untouched, low frequencies divided by the factor.
  EXPECT_NEAR(inv[0], 1.0f, 1e-7);
  EXPECT_NEAR(inv[31], std::pow(base, -62.0 / 64) / 40.0, 1e-6 * inv[31]);

  // Without yarn: plain base^(-2i/dim).
  RopeInvFreq(dim, base, nullptr, inv.data());
  for (int64_t i = 0; i < dim / 2; ++i) {
    EXPECT_NEAR(inv[static_cast<size_t>(i)], std::pow(base, -2.0 * i / dim), 1e-6);
  }
}

TEST(Rope, DeinterleavesThenRotatesHalf) {
  // Original: x.view(d/2, 2).transpose -> [x0, x2, ..., x1, x3, ...], then
  // x * cat(cos, cos) + rotate_half(x) * cat(sin, sin), rotate_half(x) = [-x2nd, x1st].
  const int64_t dim = 8;
  const float x[dim] = {0.3f, -1.2f, 0.7f, 2.0f, -0.4f, 0.9f, 1.5f, -0.6f};
  const float freq[dim / 2] = {1.0f, 0.3f, 0.05f, 0.001f};
  const int64_t pos = 37;
  const float mscale = 1.25f;
  std::vector<float> cos(dim / 2), sin(dim / 2);
  RopeCosSin(&pos, 1, freq, dim / 2, mscale, cos.data(), sin.data());
  std::vector<float> got(x, x + dim);
  ApplyRope(got.data(), dim, cos.data(), sin.data());

  double de[dim], rot[dim];
  for (int i = 0; i < dim / 2; ++i) {
    de[i] = x[2 * i];
    de[i + dim / 2] = x[2 * i + 1];
  }
  for (int i = 0; i < dim / 2; ++i) {
    rot[i] = -de[i + dim / 2];
    rot[i + dim / 2] = de[i];
  }
  for (int i = 0; i < dim; ++i) {
    const double angle = static_cast<double>(pos) * freq[i % (dim / 2)];
    const double want = de[i] * std::cos(angle) * mscale + rot[i] * std::sin(angle) * mscale;
    EXPECT_NEAR(got[static_cast<size_t>(i)], want, 1e-5) << i;
  }
}

TEST(Rope, ScoresDependOnlyOnRelativePosition) {
  const int64_t dim = 16;
  std::vector<float> freq(dim / 2);
  RopeInvFreq(dim, 10000.0, nullptr, freq.data());
  std::vector<float> q(dim), k(dim);
  for (int i = 0; i < dim; ++i) {
    q[static_cast<size_t>(i)] = std::sin(1.7f * static_cast<float>(i) + 0.3f);
    k[static_cast<size_t>(i)] = std::cos(0.9f * static_cast<float>(i) - 1.1f);
  }
  auto score = [&](int64_t pq, int64_t pk) {
    std::vector<float> cq(dim / 2), sq(dim / 2), ck(dim / 2), sk(dim / 2);
    RopeCosSin(&pq, 1, freq.data(), dim / 2, 1.0f, cq.data(), sq.data());
    RopeCosSin(&pk, 1, freq.data(), dim / 2, 1.0f, ck.data(), sk.data());
    std::vector<float> a = q, b = k;
    ApplyRope(a.data(), dim, cq.data(), sq.data());
    ApplyRope(b.data(), dim, ck.data(), sk.data());
    double s = 0;
    for (int i = 0; i < dim; ++i)
      s += static_cast<double>(a[static_cast<size_t>(i)]) * b[static_cast<size_t>(i)];
    return s;
  };
  EXPECT_NEAR(score(10, 3), score(27, 20), 1e-4);
  EXPECT_NEAR(score(5, 5), score(0, 0), 1e-4);
  EXPECT_GT(std::fabs(score(10, 3) - score(10, 4)), 1e-3);  // and it does depend on the offset
}

}  // namespace
}  // namespace kubemoe::cpu
