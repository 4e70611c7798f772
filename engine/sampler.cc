#include "engine/sampler.h"

#include <algorithm>
#include <cmath>

namespace kubemoe::engine {
namespace {

int32_t ArgMax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

}  // namespace

std::vector<std::pair<int32_t, float>> SamplingDistribution(std::span<const float> logits,
                                                            const SamplingParams& params) {
  if (params.temperature <= 0.0f) return {{ArgMax(logits), 1.0f}};
  const auto n = static_cast<int32_t>(logits.size());
  // Softmax over the full vocabulary in double, so filtering does not depend on rounding order.
  const float max = logits[static_cast<size_t>(ArgMax(logits))];
  std::vector<std::pair<int32_t, double>> probs(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    const double p =
        std::exp((static_cast<double>(logits[static_cast<size_t>(i)]) - max) / params.temperature);
    probs[static_cast<size_t>(i)] = {i, p};
  }
  auto better = [](const auto& a, const auto& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  };
  size_t keep = probs.size();
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < keep) {
    keep = static_cast<size_t>(params.top_k);
    std::partial_sort(probs.begin(), probs.begin() + static_cast<std::ptrdiff_t>(keep), probs.end(),
                      better);
  } else {
    std::sort(probs.begin(), probs.end(), better);
  }
  if (params.top_p < 1.0f) {
    // Nucleus over what top-k kept, renormalised (as Hugging Face's warpers chain them).
    double kept_sum = 0.0;
    for (size_t i = 0; i < keep; ++i) kept_sum += probs[i].second;
    double mass = 0.0;
    size_t i = 0;
    while (i < keep) {
      mass += probs[i].second / kept_sum;
      ++i;
      if (mass >= params.top_p) break;
    }
    keep = i;
  }
  double kept = 0.0;
  for (size_t i = 0; i < keep; ++i) kept += probs[i].second;
  std::vector<std::pair<int32_t, float>> out(keep);
  for (size_t i = 0; i < keep; ++i) {
    out[i] = {probs[i].first, static_cast<float>(probs[i].second / kept)};
  }
  return out;
}

int32_t Sampler::Sample(std::span<const float> logits) {
  if (params_.temperature <= 0.0f) return ArgMax(logits);
  const std::vector<std::pair<int32_t, float>> dist = SamplingDistribution(logits, params_);
  // 53 random bits -> a double in [0, 1): defined by the engine alone, unlike the std
  // distributions, whose algorithms differ between standard libraries.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  double acc = 0.0;
  for (const auto& [id, p] : dist) {
    acc += p;
    if (u < acc) return id;
  }
  return dist.back().first;
}

}  // namespace kubemoe::engine
