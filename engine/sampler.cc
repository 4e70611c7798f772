#include "engine/sampler.h"

#include "kernels/cpu/sampling.h"

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
  // One implementation for the engine and the GPU's CPU twin (kernels/cpu/sampling.h), in double;
  // the engine hands out float probabilities.
  const std::vector<std::pair<int32_t, double>> dist =
      cpu::SamplingDistribution(logits.data(), static_cast<int64_t>(logits.size()),
                                params.temperature, params.top_k, params.top_p);
  std::vector<std::pair<int32_t, float>> out(dist.size());
  for (size_t i = 0; i < dist.size(); ++i) {
    out[i] = {dist[i].first, static_cast<float>(dist[i].second)};
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
