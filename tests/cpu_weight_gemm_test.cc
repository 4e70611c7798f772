// WeightGemm (sgemm over widened panels) against a float64 reference of the same weights, for
// every format, several row counts and output ranges that do not start or end on a panel; the
// elements outside the range stay untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/q8_0.h"
#include "kernels/cpu/weight_gemm.h"
#include "kernels/cpu/weight_matmul.h"
#include "model/dtype.h"

namespace kubemoe::cpu {
namespace {

constexpr int64_t kN = 150, kK = 96;
constexpr float kSentinel = 12345.0f;

struct Weights {
  std::vector<float> f32;
  std::vector<uint16_t> bf16, f16;
  Q8_0Matrix q8;
  WeightMatrix View(WeightFormat f) const {
    switch (f) {
      case WeightFormat::kF32:
        return WeightMatrix::F32(f32.data(), kN, kK);
      case WeightFormat::kBf16:
        return WeightMatrix::Bf16(bf16.data(), kN, kK);
      case WeightFormat::kF16:
        return WeightMatrix::F16(f16.data(), kN, kK);
      case WeightFormat::kQ8_0:
        break;
    }
    return q8.View();
  }
};

Weights MakeWeights() {
  Weights w;
  for (int64_t i = 0; i < kN * kK; ++i) {
    const float v = 0.1f * std::sin(0.37f * static_cast<float>(i)) + 0.01f;
    w.f32.push_back(v);
    w.bf16.push_back(FloatToBf16(v));
    w.f16.push_back(FloatToF16(v));
  }
  w.q8 = *QuantizeQ8_0(w.f32.data(), kN, kK);
  return w;
}

TEST(WeightGemm, MatchesTheReferenceOnEveryFormat) {
  const Weights weights = MakeWeights();
  SetBlasThreads(1);
  for (WeightFormat format :
       {WeightFormat::kF32, WeightFormat::kBf16, WeightFormat::kF16, WeightFormat::kQ8_0}) {
    const WeightMatrix w = weights.View(format);
    std::vector<float> wf(static_cast<size_t>(kN * kK));
    WeightRowsToF32(w, 0, kN, wf.data());
    for (int64_t m : {1, 16, 70}) {
      std::vector<float> x(static_cast<size_t>(m * (kK + 3)));
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.11f * static_cast<float>(i));
      for (auto [b, e] : {std::pair<int64_t, int64_t>{0, kN}, {3, 67}, {64, 130}, {10, 10}}) {
        const int64_t ldx = kK + 3, ldy = kN + 5;
        std::vector<float> y(static_cast<size_t>(m * ldy), kSentinel);
        std::vector<float> scratch(static_cast<size_t>(WeightGemmScratchFloats(kK)));
        WeightGemm(x.data(), ldx, m, w, y.data(), ldy, b, e, scratch.data());
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t n = 0; n < ldy; ++n) {
            const float got = y[static_cast<size_t>(i * ldy + n)];
            if (n < b || n >= e) {
              ASSERT_EQ(got, kSentinel) << "wrote outside [" << b << ", " << e << ")";
              continue;
            }
            double want = 0, mag = 0;
            for (int64_t k = 0; k < kK; ++k) {
              const double p = static_cast<double>(x[static_cast<size_t>(i * ldx + k)]) *
                               wf[static_cast<size_t>(n * kK + k)];
              want += p;
              mag += std::fabs(p);
            }
            ASSERT_NEAR(got, want, 1e-5 * mag + 1e-12)
                << "format " << static_cast<int>(format) << " m " << m << " row " << n;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace kubemoe::cpu
