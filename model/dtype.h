// Element types of checkpoint tensors and the scalar conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kubemoe {

enum class DType { kF32, kBF16, kF16 };

// Size of one element in bytes.
size_t DTypeSize(DType dtype);
// The safetensors spelling: "F32", "BF16", "F16".
const char* DTypeName(DType dtype);
// Parses a safetensors dtype string; only the types above are supported.
StatusOr<DType> ParseDType(std::string_view name);

// bf16 is the upper half of an IEEE f32.
inline float Bf16ToFloat(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  __builtin_memcpy(&f, &u, sizeof f);
  return f;
}
// Round-to-nearest-even, as torch does; NaN stays NaN.
uint16_t FloatToBf16(float value);
float F16ToFloat(uint16_t bits);
uint16_t FloatToF16(float value);

}  // namespace kubemoe
