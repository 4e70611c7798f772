#include "routing/scoring.h"

#include <cmath>
#include <string>

#include "routing/score_exp.h"

namespace kubemoe::routing {

const char* ScoringFuncName(ScoringFunc func) {
  return func == ScoringFunc::kSoftmax ? "softmax" : "sigmoid";
}

Status ScoreExperts(ScoringFunc func, const float* logits, int32_t n, float* scores, int64_t row) {
  float max_logit = logits[0];
  for (int32_t i = 0; i < n; ++i) {
    if (!std::isfinite(logits[i])) {
      return InvalidArgument("gate logits of token " + std::to_string(row) + ", expert " +
                             std::to_string(i) + " are not finite (" + std::to_string(logits[i]) +
                             "): the hidden state or the gate weight holds NaN/Inf");
    }
    if (logits[i] > max_logit) max_logit = logits[i];
  }
  if (func == ScoringFunc::kSigmoid) {
    for (int32_t i = 0; i < n; ++i) scores[i] = 1.0f / (1.0f + ScoreExp(-logits[i]));
    return Status::Ok();
  }
  float sum = 0.0f;
  for (int32_t i = 0; i < n; ++i) {
    scores[i] = ScoreExp(logits[i] - max_logit);
    sum += scores[i];
  }
  // sum >= 1 because the max term is exp(0), so the division is safe.
  const float inv = 1.0f / sum;
  for (int32_t i = 0; i < n; ++i) scores[i] *= inv;
  return Status::Ok();
}

}  // namespace kubemoe::routing
