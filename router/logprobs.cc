#include "router/logprobs.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "engine/distribution.h"

namespace kubemoe::router {

PositionLogprobs ComputeLogprobs(std::span<const float> logits, int32_t token, int32_t top) {
  std::vector<double> log_probs;
  engine::LogSoftmax(logits, log_probs);
  PositionLogprobs out;
  out.logprob = log_probs[static_cast<size_t>(token)];
  const size_t k = std::min(static_cast<size_t>(std::max(top, 0)), logits.size());
  if (k == 0) return out;
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  auto more_likely = [&logits](int32_t a, int32_t b) {
    const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                    more_likely);
  out.top.reserve(k);
  for (size_t i = 0; i < k; ++i)
    out.top.push_back({ids[i], log_probs[static_cast<size_t>(ids[i])]});
  return out;
}

}  // namespace kubemoe::router
