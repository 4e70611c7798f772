#include "kernels/cpu/sampling.h"

#include <algorithm>
#include <cmath>

namespace kubemoe::cpu {
namespace {

int32_t ArgMax(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

}  // namespace

std::vector<std::pair<int32_t, double>> SamplingDistribution(const float* logits, int64_t vocab,
                                                             float temperature, int32_t top_k,
                                                             float top_p) {
  if (temperature <= 0.0f) return {{ArgMax(logits, vocab), 1.0}};
  const float max = logits[ArgMax(logits, vocab)];
  std::vector<std::pair<int32_t, double>> probs(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) {
    probs[static_cast<size_t>(i)] = {
        static_cast<int32_t>(i), std::exp((static_cast<double>(logits[i]) - max) / temperature)};
  }
  auto better = [](const auto& a, const auto& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  };
  size_t keep = probs.size();
  if (top_k > 0 && static_cast<size_t>(top_k) < keep) {
    keep = static_cast<size_t>(top_k);
    std::partial_sort(probs.begin(), probs.begin() + static_cast<std::ptrdiff_t>(keep), probs.end(),
                      better);
  } else {
    std::sort(probs.begin(), probs.end(), better);
  }
  if (top_p < 1.0f) {
    double kept_sum = 0.0;
    for (size_t i = 0; i < keep; ++i) kept_sum += probs[i].second;
    double mass = 0.0;
    size_t i = 0;
    while (i < keep) {
      mass += probs[i].second / kept_sum;
      ++i;
      if (mass >= top_p) break;
    }
    keep = i;
  }
  double kept = 0.0;
  for (size_t i = 0; i < keep; ++i) kept += probs[i].second;
  probs.resize(keep);
  for (auto& [id, p] : probs) p /= kept;
  return probs;
}

int32_t SampleToken(const float* logits, int64_t vocab, const SamplingRow& row) {
  if (row.temperature <= 0.0f) return ArgMax(logits, vocab);
  const std::vector<std::pair<int32_t, double>> dist =
      SamplingDistribution(logits, vocab, row.temperature, row.top_k, row.top_p);
  double acc = 0.0;
  for (const auto& [id, p] : dist) {
    acc += p;
    if (row.u < acc) return id;
  }
  return dist.back().first;
}

void SampleRows(const float* logits, int64_t ld, int64_t rows, int64_t vocab,
                const SamplingRow* params, int32_t* out) {
  for (int64_t r = 0; r < rows; ++r) out[r] = SampleToken(logits + r * ld, vocab, params[r]);
}

}  // namespace kubemoe::cpu
