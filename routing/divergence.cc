#include "routing/divergence.h"

namespace kubemoe::routing {

bool SelectionDiffers(const int32_t* a, const int32_t* b, int32_t k) {
  // Without repeats, equal sizes and a subset of b mean equal sets. k is small: O(k^2) is fine.
  for (int32_t i = 0; i < k; ++i) {
    bool found = false;
    for (int32_t j = 0; j < k && !found; ++j) found = a[i] == b[j];
    if (!found) return true;
  }
  return false;
}

int64_t CountDifferingTokens(std::span<const int32_t> a, std::span<const int32_t> b, int32_t k) {
  int64_t differing = 0;
  for (size_t row = 0; row + static_cast<size_t>(k) <= a.size(); row += static_cast<size_t>(k)) {
    differing += SelectionDiffers(a.data() + row, b.data() + row, k) ? 1 : 0;
  }
  return differing;
}

}  // namespace kubemoe::routing
