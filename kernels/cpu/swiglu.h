// SwiGLU feed-forward pieces (DeepSeek-V2 dense MLP, routed and shared experts) on CPU.
#pragma once

#include <cstdint>

namespace kubemoe::cpu {

// gate[i] = silu(gate[i]) * up[i] for n elements, silu(g) = g / (1 + exp(-g)).
void SiluMulInPlace(float* gate, const float* up, int64_t n);

// Floats of scratch SwiGluFfn needs for `tokens` rows with intermediate size `inter`.
inline int64_t SwiGluScratchFloats(int64_t tokens, int64_t inter) { return 2 * tokens * inter; }

// out[t x hidden] = down(silu(x W_gate^T) * (x W_up^T)) for `tokens` rows of x[t x hidden], with
// w_gate, w_up [inter x hidden] and w_down [hidden x inter] (Hugging Face layout). With
// accumulate, the result is added to out. scratch holds SwiGluScratchFloats(tokens, inter) floats.
void SwiGluFfn(const float* x, int64_t tokens, int64_t hidden, int64_t inter, const float* w_gate,
               const float* w_up, const float* w_down, float* scratch, float* out,
               bool accumulate = false);

}  // namespace kubemoe::cpu
