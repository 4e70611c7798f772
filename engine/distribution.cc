#include "engine/distribution.h"

#include <algorithm>
#include <cmath>

namespace kubemoe::engine {

void LogSoftmax(std::span<const float> logits, std::vector<double>& out) {
  out.resize(logits.size());
  double max = -INFINITY;
  for (float x : logits) max = std::max(max, static_cast<double>(x));
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - max);
  // (x - max) - log(sum), not x - (max + log(sum)): the latter loses log(sum) next to a huge max.
  const double log_sum = std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i) {
    out[i] = (static_cast<double>(logits[i]) - max) - log_sum;
  }
}

double KlDivergence(std::span<const double> log_p, std::span<const double> log_q) {
  double kl = 0;
  for (size_t i = 0; i < log_p.size(); ++i) kl += std::exp(log_p[i]) * (log_p[i] - log_q[i]);
  return std::max(kl, 0.0);  // identical rows can sum to -1e-17
}

double KlDivergenceOfLogits(std::span<const float> p_logits, std::span<const float> q_logits) {
  std::vector<double> log_p, log_q;
  LogSoftmax(p_logits, log_p);
  LogSoftmax(q_logits, log_q);
  return KlDivergence(log_p, log_q);
}

}  // namespace kubemoe::engine
