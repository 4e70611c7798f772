// Log-probabilities from one row of logits: the raw log-softmax (no temperature, top-k or top-p),
// as vLLM reports them by default. Plain C++; the scheduler calls it on the rows it needs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "router/generation_service.h"

namespace kubemoe::router {

// log_softmax(logits) without materialising it: the log-sum-exp is accumulated in double after
// subtracting the maximum, so no logit can overflow it and any float logit gives a finite value.
class LogSoftmax {
 public:
  // REQUIRES: logits not empty; `logits` must outlive this object.
  explicit LogSoftmax(std::span<const float> logits);

  // log p(token). REQUIRES: 0 <= token < logits.size().
  double operator()(int32_t token) const;
  // The `n` most likely tokens (fewer when the vocabulary is smaller), most likely first, lower
  // id first on equal logits.
  std::vector<TokenLogprob> Top(int32_t n) const;

 private:
  std::span<const float> logits_;
  double log_normalizer_ = 0;  // log(sum(exp(logits)))
};

// The logprob of `token` and of the `top` most likely tokens at one position.
PositionLogprobs ComputeLogprobs(std::span<const float> logits, int32_t token, int32_t top);

}  // namespace kubemoe::router
