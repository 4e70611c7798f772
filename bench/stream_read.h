// The STREAM-style read the benchmarks compare weight streaming with: a sum over an f32 array
// far larger than the caches, with the widest loads this CPU has.
#pragma once

#include <cstdint>

namespace kubemoe::bench {

// Sum of a[0, n) (n a multiple of 32), in 4 x 8 AVX2 lanes when the CPU has AVX2. prefetch:
// bytes ahead to hint (0: none, hardware prefetch only, as STREAM itself).
float StreamSum(const float* a, int64_t n, int64_t prefetch);

// "avx2 loads" or "portable loads": what StreamSum uses on this CPU.
const char* StreamSumLabel();

}  // namespace kubemoe::bench
