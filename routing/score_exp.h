// The exponential that expert scoring uses, one definition for the CPU (routing/scoring.cc) and
// the GPU (kernels/cuda/gating.cu), so both compute bit-identical scores and therefore select
// identical experts: libm's expf and CUDA's expf may differ in the last bit, and a one-ulp
// difference between two near-equal scores flips a top-K choice.
//
// Only IEEE single-precision add, multiply and floor are used, each rounded separately (the GPU
// side spells them as __fadd_rn / __fmul_rn, and routing/ is built with -ffp-contract=off, so
// no fused multiply-add changes a rounding on either side). Error against exp: under 2 ulp over
// the range softmax and sigmoid use.
#pragma once

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define KUBEMOE_HOST_DEVICE __host__ __device__
#else
#define KUBEMOE_HOST_DEVICE
#endif

namespace kubemoe::routing {

namespace score_exp_detail {

KUBEMOE_HOST_DEVICE inline float Add(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

KUBEMOE_HOST_DEVICE inline float Mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

KUBEMOE_HOST_DEVICE inline float Floor(float x) {
#ifdef __CUDA_ARCH__
  return floorf(x);
#else
  return __builtin_floorf(x);
#endif
}

KUBEMOE_HOST_DEVICE inline float Infinity() {
#ifdef __CUDA_ARCH__
  return __int_as_float(0x7f800000);
#else
  return __builtin_huge_valf();
#endif
}

// 2^n as a float for n in [-126, 127] (a normal number: exact).
KUBEMOE_HOST_DEVICE inline float Pow2(int32_t n) {
  const uint32_t bits = static_cast<uint32_t>(n + 127) << 23;
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

}  // namespace score_exp_detail

// e^x. Returns 0 below -104 (under the smallest subnormal), +inf above 88.8 and NaN for NaN.
// Method: n = floor(x / ln2 + 1/2), r = x - n ln2 (ln2 in two parts, the first with few enough
// bits that n * ln2_hi is exact), e^r by its Taylor polynomial to degree 7 (|r| <= 0.347, where
// the truncation error is below 6e-9 relative), then scaled by 2^n in at most two exact steps.
KUBEMOE_HOST_DEVICE inline float ScoreExp(float x) {
  using namespace score_exp_detail;
  if (!(x == x)) return x;  // NaN
  if (x > 88.8f) return Infinity();
  if (x < -104.0f) return 0.0f;
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;  // 11 significant bits
  constexpr float kLn2Lo = 1.42860682030941723e-6f;
  const float n = Floor(Add(Mul(x, kLog2e), 0.5f));
  const float r = Add(Add(x, -Mul(n, kLn2Hi)), -Mul(n, kLn2Lo));
  float p = 1.0f / 5040.0f;
  p = Add(Mul(p, r), 1.0f / 720.0f);
  p = Add(Mul(p, r), 1.0f / 120.0f);
  p = Add(Mul(p, r), 1.0f / 24.0f);
  p = Add(Mul(p, r), 1.0f / 6.0f);
  p = Add(Mul(p, r), 0.5f);
  p = Add(Mul(p, r), 1.0f);
  p = Add(Mul(p, r), 1.0f);
  const int32_t k = static_cast<int32_t>(n);
  if (k > 127) return Mul(Mul(p, Pow2(127)), Pow2(k - 127));
  if (k < -126) return Mul(Mul(p, Pow2(-126)), Pow2(k + 126));  // one rounding into subnormals
  return Mul(p, Pow2(k));
}

}  // namespace kubemoe::routing
