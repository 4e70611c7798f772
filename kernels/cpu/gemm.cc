#include "kernels/cpu/gemm.h"

#include <cblas.h>

namespace kubemoe::cpu {

void LinearStrided(const float* x, int64_t ldx, int64_t m, int64_t k, const float* w, int64_t ldw,
                   int64_t n, float* y, int64_t ldy, bool accumulate) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, x, static_cast<blasint>(ldx),
              w, static_cast<blasint>(ldw), accumulate ? 1.0f : 0.0f, y, static_cast<blasint>(ldy));
}

void MatMulStrided(const float* x, int64_t ldx, int64_t m, int64_t k, const float* b, int64_t ldb,
                   int64_t n, float* y, int64_t ldy) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, x, static_cast<blasint>(ldx),
              b, static_cast<blasint>(ldb), 0.0f, y, static_cast<blasint>(ldy));
}

}  // namespace kubemoe::cpu
