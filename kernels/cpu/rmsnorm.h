// RMSNorm (DeepSeek-V2 / LLaMA form) on CPU, in fp32.
#pragma once

#include <cstdint>

namespace kubemoe::cpu {

// For each of `rows` rows of `dim` floats (row stride ld_in / ld_out):
// out = weight * x / sqrt(mean(x^2) + eps). in and out may be the same array.
void RmsNorm(const float* in, int64_t ld_in, int64_t rows, int64_t dim, const float* weight,
             float eps, float* out, int64_t ld_out);

}  // namespace kubemoe::cpu
