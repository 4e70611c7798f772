// Next-token sampling from rows of logits with the draw given: the CPU twin of
// cuda::SampleTokens (kernels/cuda/sampling.h). SamplingDistribution is also the engine's
// (engine::SamplingDistribution rounds its probabilities to float); the kernel harness checks it
// against a float64 reference.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace kubemoe::cpu {

// One row's settings and its uniform draw. Trivially copyable with the same layout on host and
// device (24 bytes), so an array of them is uploaded as is.
struct SamplingRow {
  float temperature = 0.0f;  // <= 0: greedy (argmax, lowest id on ties)
  int32_t top_k = 0;         // <= 0 or >= vocab: no top-k limit
  float top_p = 1.0f;        // >= 1: no nucleus; <= 0 keeps the most likely token alone
  double u = 0.0;            // uniform in [0, 1), drawn by the caller
};

// The distribution a row samples from: (token, probability) pairs, most likely first (lower id
// first on equal probability), probabilities summing to 1. Steps, as the engine's:
// softmax(logits / temperature) over all tokens in double; keep the top_k most likely (when
// 0 < top_k < vocab); renormalise and keep the shortest prefix whose cumulative probability
// reaches top_p (at least one token; all of them when rounding leaves the total short of top_p);
// renormalise. Greedy settings give the argmax with probability 1. The probabilities stay in
// double (the engine rounds them to float at the end).
// REQUIRES: vocab >= 1; logits not NaN, at least one of them finite; temperature not NaN.
std::vector<std::pair<int32_t, double>> SamplingDistribution(const float* logits, int64_t vocab,
                                                             float temperature, int32_t top_k,
                                                             float top_p);

// The draw rule: the first token of SamplingDistribution whose cumulative probability (summed in
// double, in the distribution's order) exceeds u, or the last token when rounding leaves the
// total at or below u. Greedy rows ignore u.
int32_t SampleToken(const float* logits, int64_t vocab, const SamplingRow& row);

// SampleToken for each of `rows` rows of `vocab` logits at row stride ld: out[r].
void SampleRows(const float* logits, int64_t ld, int64_t rows, int64_t vocab,
                const SamplingRow* params, int32_t* out);

}  // namespace kubemoe::cpu
