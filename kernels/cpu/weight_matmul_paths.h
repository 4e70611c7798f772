// The per-path implementations behind weight_matmul.h (dispatch is in weight_matmul.cc). Each
// takes already-validated arguments. The vector paths are compiled with per-function target
// attributes, so they exist in every x86-64 build and run only where the CPU has the features.
#pragma once

#include <cstdint>

#include "kernels/cpu/weight_matrix.h"

namespace kubemoe::cpu::paths {

// Arguments common to both products, one struct so each path has one signature.
struct Product {
  const float* x;
  int64_t ldx;
  int64_t m;
  const WeightMatrix* w;   // WeightMatmul: W; gate-up: gate
  const WeightMatrix* up;  // gate-up only, else nullptr
  float* y;
  int64_t ldy;
  int64_t n_begin;
  int64_t n_end;
};

// WeightRowsToF32: out = rows [row_begin, row_end) of w in f32.
void RowsToF32Scalar(const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* out);

void MatmulScalar(const Product& p);
void GateUpScalar(const Product& p);
#if defined(__x86_64__)
void RowsToF32Avx2(const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* out);
void MatmulAvx2(const Product& p);
void GateUpAvx2(const Product& p);
void MatmulAvx512(const Product& p);
void GateUpAvx512(const Product& p);
#endif

// silu(g) * u, shared by every path's epilogue so they agree on it.
float SiluMul(float g, float u);

}  // namespace kubemoe::cpu::paths
