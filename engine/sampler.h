// Next-token sampling from logits: greedy, or temperature with top-k and top-p (nucleus)
// filtering, reproducible from a seed.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace kubemoe::engine {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy (argmax, lowest id on ties)
  float top_p = 1.0f;        // keep the smallest set of most likely tokens whose mass >= top_p
  int32_t top_k = 0;         // <= 0: no top-k limit
  uint64_t seed = 0;
};

// The distribution Sample draws from: (token, probability) pairs, most likely first (lower id
// first on equal probability), probabilities summing to 1. Steps: softmax(logits / temperature)
// over all tokens; keep the top_k most likely (when top_k > 0); renormalise and keep the
// shortest prefix whose cumulative probability reaches top_p (at least one token); renormalise.
// Greedy parameters give the single argmax token with probability 1.
std::vector<std::pair<int32_t, float>> SamplingDistribution(std::span<const float> logits,
                                                            const SamplingParams& params);

// One sequence's sampler. The random stream is std::mt19937_64 seeded with params.seed, so a
// sequence of Sample calls on the same logits gives the same tokens on every platform.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

  // Draws a token id from SamplingDistribution(logits, params). REQUIRES: logits not empty.
  int32_t Sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace kubemoe::engine
