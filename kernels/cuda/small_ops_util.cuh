// Host-side helpers shared by the small ops (rmsnorm, rope, embedding, sampling): grid sizes and
// the pointer checks their argument validation needs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kubemoe::cuda {

// Blocks for a grid-stride loop over `items` independent pieces of work (rows, tokens): one per
// piece up to a cap that keeps every multiprocessor busy many times over, at least 1.
inline unsigned GridFor(int64_t items) {
  constexpr int64_t kMaxBlocks = int64_t{1} << 20;
  if (items < 1) return 1;
  return static_cast<unsigned>(items < kMaxBlocks ? items : kMaxBlocks);
}

// Elements spanned by `rows` rows of `cols` elements at stride `ld` (0 when rows == 0).
inline int64_t SpanElements(int64_t rows, int64_t ld, int64_t cols) {
  return rows == 0 ? 0 : (rows - 1) * ld + cols;
}

inline bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Whether the byte ranges [a, a + a_bytes) and [b, b + b_bytes) share a byte.
inline bool Overlaps(const void* a, int64_t a_bytes, const void* b, int64_t b_bytes) {
  const auto a0 = reinterpret_cast<uintptr_t>(a);
  const auto b0 = reinterpret_cast<uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && a0 < b0 + static_cast<uintptr_t>(b_bytes) &&
         b0 < a0 + static_cast<uintptr_t>(a_bytes);
}

}  // namespace kubemoe::cuda
