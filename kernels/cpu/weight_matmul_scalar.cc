// The portable path: widen one weight row to f32 (any format), then dot it with every row of x. It
// is the fallback for CPUs without AVX2 and what the vector paths are tested against besides the
// f64 reference in the tests.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/weight_matmul_paths.h"

namespace kubemoe::cpu::paths {
namespace {

// row[0..K) = W[n, :] in f32, widened exactly by convert.h's conversions.
void DecodeRow(const WeightMatrix& w, int64_t n, float* row) {
  const int64_t k = w.cols;
  switch (w.format) {
    case WeightFormat::kF32:
      std::memcpy(row, w.f32 + n * k, static_cast<size_t>(k) * sizeof(float));
      return;
    case WeightFormat::kBf16:
      Bf16ToF32(w.bf16 + n * k, row, static_cast<size_t>(k));
      return;
    case WeightFormat::kF16:
      F16ToF32(w.f16 + n * k, row, static_cast<size_t>(k));
      return;
    case WeightFormat::kQ8_0: {
      const int8_t* q = w.quants + n * k;
      const float* s = w.scales + n * (k / kQ8_0Block);
      for (int64_t c = 0; c < k; ++c) row[c] = static_cast<float>(q[c]) * s[c / kQ8_0Block];
      return;
    }
  }
}

// Eight partial sums, as the vector paths keep, so the rounding error grows like theirs.
float Dot(const float* a, const float* b, int64_t k) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  for (; i < k; ++i) acc[i % 8] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

}  // namespace

float SiluMul(float g, float u) { return g / (1.0f + std::exp(-g)) * u; }

void RowsToF32Scalar(const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* out) {
  for (int64_t n = row_begin; n < row_end; ++n) DecodeRow(w, n, out + (n - row_begin) * w.cols);
}

void MatmulScalar(const Product& p) {
  const int64_t k = p.w->cols;
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t n = p.n_begin; n < p.n_end; ++n) {
    DecodeRow(*p.w, n, row.data());
    for (int64_t i = 0; i < p.m; ++i) p.y[i * p.ldy + n] = Dot(p.x + i * p.ldx, row.data(), k);
  }
}

void GateUpScalar(const Product& p) {
  const int64_t k = p.w->cols;
  std::vector<float> gate(static_cast<size_t>(k));
  std::vector<float> up(static_cast<size_t>(k));
  for (int64_t n = p.n_begin; n < p.n_end; ++n) {
    DecodeRow(*p.w, n, gate.data());
    DecodeRow(*p.up, n, up.data());
    for (int64_t i = 0; i < p.m; ++i) {
      const float* xi = p.x + i * p.ldx;
      p.y[i * p.ldy + n] = SiluMul(Dot(xi, gate.data(), k), Dot(xi, up.data(), k));
    }
  }
}

}  // namespace kubemoe::cpu::paths
