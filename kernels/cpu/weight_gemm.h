// Larger-M products with weights in any WeightMatrix format: y = x * W^T through OpenBLAS's
// sgemm on panels of W rows widened to f32. For prefill, where each weight is used by many rows
// of x, the time is arithmetic, and sgemm's blocked kernel beats the weight-streaming kernels
// (weight_matmul.h), which are made for few rows. Widening a panel costs one pass over its
// weights, small beside the 2 * M flops each weight then takes part in.
//
// Threads: like weight_matmul.h, each call covers output columns [n_begin, n_end) and starts no
// threads of its own (OpenBLAS must be limited to one thread: SetBlasThreads(1)); calls on
// disjoint ranges may run concurrently, each with its own scratch.
#pragma once

#include <cstdint>

#include "kernels/cpu/weight_matrix.h"

namespace kubemoe::cpu {

// Rows of W widened per sgemm call.
inline constexpr int64_t kWeightGemmPanelRows = 64;

// Floats of scratch WeightGemm needs for a weight of `cols` columns.
inline int64_t WeightGemmScratchFloats(int64_t cols) { return kWeightGemmPanelRows * cols; }

// y[i, n] = sum_k x[i, k] * W[n, k] for i < m and n_begin <= n < n_end (row strides ldx, ldy),
// f32 accumulation. f32 weights are read in place; other formats are widened through scratch
// (WeightGemmScratchFloats(w.cols) floats; unused for f32).
// REQUIRES: 0 <= n_begin <= n_end <= w.rows; y overlaps neither x, W nor scratch.
void WeightGemm(const float* x, int64_t ldx, int64_t m, const WeightMatrix& w, float* y,
                int64_t ldy, int64_t n_begin, int64_t n_end, float* scratch);

// Limits OpenBLAS to `threads` threads for every later call in this process (the engine's
// thread pool runs the parallel parts itself and calls sgemm from each of its threads).
void SetBlasThreads(int threads);

}  // namespace kubemoe::cpu
