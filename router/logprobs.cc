#include "router/logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kubemoe::router {

LogSoftmax::LogSoftmax(std::span<const float> logits) : logits_(logits) {
  const double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - max);
  log_normalizer_ = max + std::log(sum);
}

double LogSoftmax::operator()(int32_t token) const {
  return static_cast<double>(logits_[static_cast<size_t>(token)]) - log_normalizer_;
}

std::vector<TokenLogprob> LogSoftmax::Top(int32_t n) const {
  const size_t k = std::min(static_cast<size_t>(std::max(n, 0)), logits_.size());
  std::vector<int32_t> ids(logits_.size());
  std::iota(ids.begin(), ids.end(), 0);
  auto more_likely = [this](int32_t a, int32_t b) {
    const float la = logits_[static_cast<size_t>(a)], lb = logits_[static_cast<size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                    more_likely);
  std::vector<TokenLogprob> top;
  top.reserve(k);
  for (size_t i = 0; i < k; ++i) top.push_back({ids[i], (*this)(ids[i])});
  return top;
}

PositionLogprobs ComputeLogprobs(std::span<const float> logits, int32_t token, int32_t top) {
  LogSoftmax log_softmax(logits);
  PositionLogprobs out;
  out.logprob = log_softmax(token);
  if (top > 0) out.top = log_softmax.Top(top);
  return out;
}

}  // namespace kubemoe::router
