#include "bench/stream_read.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kubemoe::bench {
namespace {

#if defined(__x86_64__)
__attribute__((target("avx2"))) float SumAvx2(const float* a, int64_t n, int64_t prefetch) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (int64_t i = 0; i + 32 <= n; i += 32) {  // 128 bytes a step
    if (prefetch > 0) {
      _mm_prefetch(reinterpret_cast<const char*>(a + i) + prefetch, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(a + i) + prefetch + 64, _MM_HINT_T0);
    }
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + i + 24));
  }
  const __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  float t = 0;
  for (float l : lanes) t += l;
  return t;
}
#endif

float SumPortable(const float* a, int64_t n) {
  float s[8] = {};
  for (int64_t i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

bool HasAvx2() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

}  // namespace

float StreamSum(const float* a, int64_t n, int64_t prefetch) {
#if defined(__x86_64__)
  if (HasAvx2()) return SumAvx2(a, n, prefetch);
#endif
  (void)prefetch;
  return SumPortable(a, n);
}

const char* StreamSumLabel() { return HasAvx2() ? "avx2 loads" : "portable loads"; }

}  // namespace kubemoe::bench
