// Matrix products for the CPU engine, on OpenBLAS. Weights use the Hugging Face layout
// [out_features x in_features], row-major, so a projection is y = x * W^T.
#pragma once

#include <cstdint>

namespace kubemoe::cpu {

// y[m x n] = x[m x k] * w[n x k]^T (+ y when accumulate). Leading dimensions are the row strides
// in floats (>= the row length). REQUIRES: y does not overlap x or w.
void LinearStrided(const float* x, int64_t ldx, int64_t m, int64_t k, const float* w, int64_t ldw,
                   int64_t n, float* y, int64_t ldy, bool accumulate = false);

// Contiguous form of LinearStrided: ldx = k, ldw = k, ldy = n.
inline void Linear(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y,
                   bool accumulate = false) {
  LinearStrided(x, k, m, k, w, k, n, y, n, accumulate);
}

// y[m x n] = x[m x k] * b[k x n] (b not transposed), with row strides as above.
void MatMulStrided(const float* x, int64_t ldx, int64_t m, int64_t k, const float* b, int64_t ldb,
                   int64_t n, float* y, int64_t ldy);

}  // namespace kubemoe::cpu
