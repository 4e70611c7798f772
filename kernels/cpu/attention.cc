#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/gemm.h"

namespace kubemoe::cpu {

void Attention(const float* q, int64_t ldq, int64_t n_q, const int64_t* kv_limit, const float* k,
               int64_t ldk, const float* v, int64_t ldv, int64_t n_kv, int64_t d_k, int64_t d_v,
               float scale, float* out, int64_t ldo, float* scratch) {
  if (n_q == 0) return;
  // Only the keys some row can see take part in the products.
  const int64_t used = std::min(n_kv, *std::max_element(kv_limit, kv_limit + n_q));
  float* scores = scratch;  // [n_q x used], row stride `used`
  LinearStrided(q, ldq, n_q, d_k, k, ldk, used, scores, used);
  for (int64_t i = 0; i < n_q; ++i) {
    float* row = scores + i * used;
    const int64_t limit = kv_limit[i];
    float max = -INFINITY;
    for (int64_t j = 0; j < limit; ++j) {
      row[j] *= scale;
      max = std::max(max, row[j]);
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < limit; ++j) {
      row[j] = std::exp(row[j] - max);
      sum += row[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < limit; ++j) row[j] *= inv;
    std::fill(row + limit, row + used, 0.0f);  // masked (future) positions
  }
  MatMulStrided(scores, used, n_q, used, v, ldv, d_v, out, ldo);
}

}  // namespace kubemoe::cpu
