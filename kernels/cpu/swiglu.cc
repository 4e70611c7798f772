#include "kernels/cpu/swiglu.h"

#include <cmath>

#include "kernels/cpu/gemm.h"

namespace kubemoe::cpu {

void SiluMulInPlace(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void SwiGluFfn(const float* x, int64_t tokens, int64_t hidden, int64_t inter, const float* w_gate,
               const float* w_up, const float* w_down, float* scratch, float* out,
               bool accumulate) {
  float* gate = scratch;
  float* up = scratch + tokens * inter;
  Linear(x, tokens, hidden, w_gate, inter, gate);
  Linear(x, tokens, hidden, w_up, inter, up);
  SiluMulInPlace(gate, up, tokens * inter);
  Linear(gate, tokens, inter, w_down, hidden, out, accumulate);
}

}  // namespace kubemoe::cpu
