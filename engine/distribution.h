// Next-token distributions from logit rows, in double: log-softmax and the KL divergence between
// two rows. Used to measure what a routing choice costs (kubemoe eval, the router's sampled
// estimate of the device limit's cost).
#pragma once

#include <span>
#include <vector>

namespace kubemoe::engine {

// out[i] = log softmax(logits)[i], with the log-sum-exp taken after subtracting the maximum.
// REQUIRES: logits not empty and finite.
void LogSoftmax(std::span<const float> logits, std::vector<double>& out);

// KL(p || q) in nats between the log-probability rows log_p and log_q (same length), clamped at
// 0 against rounding.
double KlDivergence(std::span<const double> log_p, std::span<const double> log_q);

// KL(softmax(p_logits) || softmax(q_logits)). REQUIRES: same length, not empty, finite.
double KlDivergenceOfLogits(std::span<const float> p_logits, std::span<const float> q_logits);

}  // namespace kubemoe::engine
