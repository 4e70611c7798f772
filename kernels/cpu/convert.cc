#include "kernels/cpu/convert.h"

#include <cstring>

namespace kubemoe::cpu {

void Bf16ToF32(const uint16_t* in, float* out, size_t n) {
  // Written as a shift on integers so the compiler vectorises it.
  for (size_t i = 0; i < n; ++i) {
    const uint32_t u = static_cast<uint32_t>(in[i]) << 16;
    std::memcpy(&out[i], &u, sizeof u);
  }
}

void F16ToF32(const uint16_t* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t sign = static_cast<uint32_t>(in[i] & 0x8000) << 16;
    uint32_t exponent = (in[i] >> 10) & 0x1f;
    uint32_t mantissa = in[i] & 0x3ff;
    uint32_t u;
    if (exponent == 0x1f) {
      u = sign | 0x7f800000 | (mantissa << 13);
    } else if (exponent != 0) {
      u = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
      u = sign;
    } else {
      exponent = 113;
      while ((mantissa & 0x400) == 0) {
        mantissa <<= 1;
        --exponent;
      }
      u = sign | (exponent << 23) | ((mantissa & 0x3ff) << 13);
    }
    std::memcpy(&out[i], &u, sizeof u);
  }
}

}  // namespace kubemoe::cpu
