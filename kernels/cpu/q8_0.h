// Load-time quantization of a Linear weight to Q8_0: per block of kQ8_0Block (32) consecutive
// weights of a row, scale = max|w| / 127 (f32) and q = round(w / scale) in [-127, 127].
//
// Round-trip error (tested in tests/cpu_weight_matmul_test.cc): every weight comes back within
// half a quantization step, |w - q*scale| <= scale/2 = max|w over its block| / 254, i.e. at most
// 0.39% of the block's largest magnitude (plus f32 rounding, ~1e-7 relative). A block of zeros
// has scale 0 and comes back exactly. Weights are 1 + 4/32 = 1.125 bytes each (bf16: 2).
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "kernels/cpu/weight_matrix.h"

namespace kubemoe::cpu {

// Owns the quantized bytes of a [rows x cols] weight; View() is what the kernels take.
struct Q8_0Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int8_t> quants;  // [rows x cols]
  std::vector<float> scales;   // [rows x cols/32]

  WeightMatrix View() const {
    WeightMatrix m = WeightMatrix::Shape(WeightFormat::kQ8_0, rows, cols);
    m.quants = quants.data();
    m.scales = scales.data();
    return m;
  }
};

// Quantizes w [rows x cols] (row-major f32 or bf16 bits). InvalidArgument unless cols is a
// positive multiple of 32 and rows >= 0, or if w holds a non-finite value.
StatusOr<Q8_0Matrix> QuantizeQ8_0(const float* w, int64_t rows, int64_t cols);
StatusOr<Q8_0Matrix> QuantizeQ8_0Bf16(const uint16_t* w, int64_t rows, int64_t cols);

// out[rows x cols] = the f32 weights the kernels see (quants[i] * scale), for references.
void DequantizeQ8_0(const Q8_0Matrix& q, float* out);

}  // namespace kubemoe::cpu
