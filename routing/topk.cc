#include "routing/topk.h"

namespace kubemoe::routing {

int32_t SelectTopK(const float* scores, int32_t n, int32_t k, const uint8_t* eligible,
                   int32_t* out) {
  if (k <= 0) return 0;
  int32_t count = 0;
  // Candidates arrive in increasing index order, so a newcomer with a score equal to a kept one
  // ranks after it: strict '>' below is exactly the documented tie-break.
  for (int32_t i = 0; i < n; ++i) {
    if (eligible != nullptr && eligible[i] == 0) continue;
    const float s = scores[i];
    int32_t pos;
    if (count < k) {
      pos = count++;
    } else if (s > scores[out[k - 1]]) {
      pos = k - 1;
    } else {
      continue;
    }
    while (pos > 0 && s > scores[out[pos - 1]]) {
      out[pos] = out[pos - 1];
      --pos;
    }
    out[pos] = i;
  }
  return count;
}

}  // namespace kubemoe::routing
