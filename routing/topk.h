// Deterministic top-K selection shared by every routing rule.
//
// Tie-breaking (the one order used for experts, groups and devices alike): a candidate ranks
// before another when its score is higher, or when the scores are exactly equal and its index is
// lower. The order is total for finite scores, so the selection never depends on the algorithm,
// the platform or the thread count.
#pragma once

#include <cstdint>

namespace kubemoe::routing {

// True when candidate a (score sa, index ia) ranks before candidate b.
inline bool RanksBefore(float sa, int32_t ia, float sb, int32_t ib) {
  return sa > sb || (sa == sb && ia < ib);
}

// Writes to out the indices of the best min(k, eligible count) of scores[0..n) in rank order
// (best first) and returns how many it wrote. eligible may be null (all candidates eligible);
// otherwise only i with eligible[i] != 0 are candidates. Costs O(n * k), which beats sorting for
// the small k routing uses. REQUIRES: k >= 0; out holds k ints; scores are not NaN.
int32_t SelectTopK(const float* scores, int32_t n, int32_t k, const uint8_t* eligible,
                   int32_t* out);

}  // namespace kubemoe::routing
