// Log-probabilities from one row of logits: the raw log-softmax (no temperature, top-k or top-p),
// as vLLM reports them by default, computed by engine::LogSoftmax (engine/distribution.h: in
// double, after subtracting the maximum). Plain C++; the scheduler calls it on the rows it needs.
#pragma once

#include <cstdint>
#include <span>

#include "router/generation_service.h"

namespace kubemoe::router {

// The logprob of `token` and of the `top` most likely tokens (fewer when the vocabulary is
// smaller), most likely first, lower id first on equal logits. REQUIRES: logits not empty and
// finite, 0 <= token < logits.size().
PositionLogprobs ComputeLogprobs(std::span<const float> logits, int32_t token, int32_t top);

}  // namespace kubemoe::router
