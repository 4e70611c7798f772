#include "kernels/cpu/weight_gemm.h"

#include <cblas.h>

#include <algorithm>

#include "kernels/cpu/weight_matmul.h"

namespace kubemoe::cpu {

void WeightGemm(const float* x, int64_t ldx, int64_t m, const WeightMatrix& w, float* y,
                int64_t ldy, int64_t n_begin, int64_t n_end, float* scratch) {
  if (m == 0) return;
  const int64_t k = w.cols;
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kWeightGemmPanelRows) {
    const int64_t n1 = std::min(n_end, n0 + kWeightGemmPanelRows);
    const float* panel = scratch;
    if (w.format == WeightFormat::kF32) {
      panel = w.f32 + n0 * k;
    } else {
      WeightRowsToF32(w, n0, n1, scratch);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
                static_cast<blasint>(n1 - n0), static_cast<blasint>(k), 1.0f, x,
                static_cast<blasint>(ldx), panel, static_cast<blasint>(k), 0.0f, y + n0,
                static_cast<blasint>(ldy));
  }
}

void SetBlasThreads(int threads) { openblas_set_num_threads(std::max(threads, 1)); }

}  // namespace kubemoe::cpu
