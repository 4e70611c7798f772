// Tests for kernels/cpu/convert: the CPU conversions against independent scalar formulas. The
// CUDA twins are compared with them in the kernel harness (tests/kernel_ops/convert_cases.cc).
#include "kernels/cpu/convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "model/dtype.h"

namespace kubemoe {
namespace {

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// Every 16-bit pattern, so special values (inf, NaN, subnormals, -0) are all covered.
std::vector<uint16_t> AllPatterns() {
  std::vector<uint16_t> v(65536);
  for (uint32_t i = 0; i < 65536; ++i) v[i] = static_cast<uint16_t>(i);
  return v;
}

TEST(ConvertTest, Bf16IsTheHighHalfOfF32) {
  const auto in = AllPatterns();
  std::vector<float> out(in.size());
  cpu::Bf16ToF32(in.data(), out.data(), in.size());
  for (size_t i = 0; i < in.size(); ++i) ASSERT_EQ(Bits(out[i]), uint32_t{in[i]} << 16) << i;
}

TEST(ConvertTest, F16MatchesTheIeeeFormula) {
  const auto in = AllPatterns();
  std::vector<float> out(in.size());
  cpu::F16ToF32(in.data(), out.data(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const int sign = (in[i] >> 15) ? -1 : 1;
    const int exponent = (in[i] >> 10) & 0x1f;
    const int mantissa = in[i] & 0x3ff;
    if (exponent == 31) {
      ASSERT_TRUE(mantissa ? std::isnan(out[i]) : std::isinf(out[i])) << i;
      continue;
    }
    // value = sign x 2^(e-15) x (1 + m/1024) for normals, sign x 2^-14 x m/1024 for subnormals
    const double expected = exponent == 0 ? sign * std::ldexp(mantissa / 1024.0, -14)
                                          : sign * std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
    ASSERT_EQ(out[i], static_cast<float>(expected)) << i;
    ASSERT_EQ(std::signbit(out[i]), sign < 0) << i;
  }
}

TEST(ConvertTest, RoundTripsThroughTheScalarEncoders) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int i = 0; i < 10000; ++i) {
    const float x = normal(rng);
    const uint16_t bf = FloatToBf16(x);
    EXPECT_LE(std::fabs(Bf16ToFloat(bf) - x), std::fabs(x) * (1.0f / 256)) << x;
    const uint16_t h = FloatToF16(x);
    EXPECT_LE(std::fabs(F16ToFloat(h) - x), std::fabs(x) * (1.0f / 2048) + 6e-8f) << x;
  }
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToF16(1.0f), 0x3c00);
  EXPECT_EQ(FloatToF16(65504.0f), 0x7bff);   // largest half
  EXPECT_EQ(FloatToF16(1e6f), 0x7c00);       // overflow -> inf
  EXPECT_EQ(FloatToF16(5.960464477539063e-08f), 0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToBf16(1.00390625f), 0x3f80);  // exact tie rounds to even
}


}  // namespace
}  // namespace kubemoe
