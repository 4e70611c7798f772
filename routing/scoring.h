// Per-token expert scores from the gate's logits: the first step of MoE routing.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace kubemoe::routing {

// How logits become scores (config.json `scoring_func`). DeepSeek-V2 uses softmax.
enum class ScoringFunc { kSoftmax, kSigmoid };

const char* ScoringFuncName(ScoringFunc func);

// Writes scores[i] for the n logits of one token, in fp32.
// softmax: exp(x_i - max) / sum_j exp(x_j - max) (subtracting the max keeps exp from overflowing).
// sigmoid: 1 / (1 + exp(-x_i)), each expert on its own.
// Returns InvalidArgument when a logit is NaN or infinite (such a row has no meaningful ranking);
// `row` only labels the message. REQUIRES: n >= 1; logits and scores hold n floats and may alias.
Status ScoreExperts(ScoringFunc func, const float* logits, int32_t n, float* scores, int64_t row);

}  // namespace kubemoe::routing
