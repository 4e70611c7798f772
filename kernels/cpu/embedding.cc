#include "kernels/cpu/embedding.h"

#include <cstring>
#include <limits>

namespace kubemoe::cpu {

int64_t EmbedBf16(const uint16_t* table, int64_t vocab, int64_t hidden, const int32_t* ids,
                  int64_t tokens, float* out, int64_t ld_out) {
  int64_t bad = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    float* y = out + t * ld_out;
    const int64_t id = ids[t];
    if (id < 0 || id >= vocab) {
      ++bad;
      for (int64_t j = 0; j < hidden; ++j) y[j] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    const uint16_t* row = table + id * hidden;
    for (int64_t j = 0; j < hidden; ++j) {
      const uint32_t bits = uint32_t{row[j]} << 16;
      std::memcpy(&y[j], &bits, sizeof bits);
    }
  }
  return bad;
}

}  // namespace kubemoe::cpu
