// Bulk element-type conversion of weight tensors to f32 (CPU). The CUDA twin is
// kernels/cuda/convert.h; the kernel harness (tests/kernel_ops/convert_cases.cc) compares the two.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kubemoe::cpu {

// out[i] = bf16 value in[i] widened to f32 (exact). in and out must not overlap.
void Bf16ToF32(const uint16_t* in, float* out, size_t n);
// out[i] = IEEE half in[i] widened to f32 (exact, subnormals included).
void F16ToF32(const uint16_t* in, float* out, size_t n);

}  // namespace kubemoe::cpu
