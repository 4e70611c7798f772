// The forward pass's weight products on the thread pool: output columns (rows of W) split
// across the pool's threads, each range through the kernel made for the number of rows of x.
// Results do not depend on the pool's size: every output element is computed by the same code
// whichever range it falls in.
#pragma once

#include <cstdint>

#include "common/thread_pool.h"
#include "kernels/cpu/weight_matrix.h"
#include "layers/ffn.h"

namespace kubemoe::layers {

// From this many rows of x, products go through sgemm on widened panels (weight_gemm.h); below
// it through the weight-streaming kernels (weight_matmul.h), which read each weight once for
// all rows. Measured with bench/weight_matmul_bench on AVX2: the streaming kernel is
// arithmetic-bound from about 8 rows.
inline constexpr int64_t kGemmMinRows = 16;

// y[m x w.rows] (row stride ldy) = x[m x w.cols] (row stride ldx) * W^T.
void ParallelLinear(ThreadPool& pool, const float* x, int64_t ldx, int64_t m,
                    const cpu::WeightMatrix& w, float* y, int64_t ldy);
inline void ParallelLinear(ThreadPool& pool, const float* x, int64_t m, const LinearWeight& w,
                           float* y) {
  ParallelLinear(pool, x, w.cols(), m, w.matrix(), y, w.rows());
}

// out[m x hidden] = down(silu(x gate^T) * (x up^T)) for x [m x hidden]; gate and up are fused
// in one pass over their weights at small m.
void ParallelSwiGluFfn(ThreadPool& pool, const float* x, int64_t m, const FfnWeights& f,
                       float* out);

}  // namespace kubemoe::layers
