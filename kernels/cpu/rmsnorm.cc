#include "kernels/cpu/rmsnorm.h"

#include <cmath>

namespace kubemoe::cpu {

void RmsNorm(const float* in, int64_t ld_in, int64_t rows, int64_t dim, const float* weight,
             float eps, float* out, int64_t ld_out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * ld_in;
    float* y = out + r * ld_out;
    // Accumulate in double: the mean of squares is the one reduction whose rounding shows.
    double sum = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(x[i]) * x[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(dim) + eps));
    for (int64_t i = 0; i < dim; ++i) y[i] = weight[i] * (x[i] * inv);
  }
}

}  // namespace kubemoe::cpu
