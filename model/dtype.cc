#include "model/dtype.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu/convert.h"

namespace kubemoe {

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
  }
  return 0;
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
  }
  return "?";
}

StatusOr<DType> ParseDType(std::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "BF16") return DType::kBF16;
  if (name == "F16") return DType::kF16;
  return InvalidArgument("unsupported dtype \"" + std::string(name) +
                         "\" (supported: F32, BF16, F16)");
}

uint16_t FloatToBf16(float value) {
  uint32_t u;
  std::memcpy(&u, &value, sizeof u);
  if (std::isnan(value)) return static_cast<uint16_t>((u >> 16) | 0x40);  // keep it a quiet NaN
  const uint32_t rounding_bias = 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>((u + rounding_bias) >> 16);
}

float F16ToFloat(uint16_t bits) {
  float f;
  cpu::F16ToF32(&bits, &f, 1);
  return f;
}

uint16_t FloatToF16(float value) {
  uint32_t u;
  std::memcpy(&u, &value, sizeof u);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t abs = u & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00;           // NaN
  if (abs >= 0x477ff000) return sign | 0x7c00;          // overflow (incl. rounding) -> inf
  if (abs < 0x38800000) {                               // result is subnormal or zero
    if (abs < 0x33000000) return sign;                  // below half the smallest subnormal
    const uint32_t mantissa = (abs & 0x7fffff) | 0x800000;
    const int shift = 126 - static_cast<int>(abs >> 23);  // 14..24
    const uint32_t half = 1u << (shift - 1);
    uint32_t result = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    if (rest > half || (rest == half && (result & 1))) ++result;
    return sign | static_cast<uint16_t>(result);
  }
  // Normal: rebias exponent, round mantissa to 10 bits (nearest even).
  uint32_t result = abs - 0x38000000;
  result += 0xfff + ((result >> 13) & 1);
  return sign | static_cast<uint16_t>(result >> 13);
}

}  // namespace kubemoe
