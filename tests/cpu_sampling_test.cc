// kernels/cpu/sampling (the CPU twin of the CUDA sampler, whose SamplingDistribution the engine
// shares) against the engine's sampler: the same tokens as engine::Sampler when given the
// uniform draws the Sampler makes (the two draw rules are separate code), and per-row strides
// and settings. The distribution itself is checked against float64 in the kernel harness.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <vector>

#include "engine/sampler.h"
#include "kernels/cpu/sampling.h"

namespace kubemoe {
namespace {

struct Settings {
  float temperature;
  int32_t top_k;
  float top_p;
};

const Settings kSettings[] = {
    {0.0f, 0, 1.0f},     {-1.0f, 5, 0.5f}, {0.7f, 0, 1.0f}, {1.0f, 40, 1.0f}, {0.3f, 0, 0.9f},
    {1.3f, 1024, 0.95f}, {0.8f, 1, 1.0f},  {1.0f, 0, 0.0f}, {0.05f, 7, 0.6f}, {1.5f, 100000, 0.99f},
};

// Logits uniform in [-8, 8], or on a coarse grid with -0 beside +0 and some -inf (ties).
std::vector<float> Logits(std::mt19937_64& rng, int64_t vocab, bool ties) {
  std::vector<float> logits(static_cast<size_t>(vocab));
  std::uniform_real_distribution<float> value(-8.0f, 8.0f);
  std::uniform_int_distribution<int> level(-8, 8);
  std::bernoulli_distribution coin(0.5);
  std::bernoulli_distribution rare(0.05);
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!ties) {
      logits[i] = value(rng);
      continue;
    }
    const int l = level(rng);
    logits[i] = l == 0 && coin(rng) ? -0.0f : 0.5f * static_cast<float>(l);
    if (i > 0 && rare(rng)) logits[i] = -std::numeric_limits<float>::infinity();
  }
  return logits;
}

engine::SamplingParams EngineParams(const Settings& s, uint64_t seed = 0) {
  engine::SamplingParams p;
  p.temperature = s.temperature;
  p.top_k = s.top_k;
  p.top_p = s.top_p;
  p.seed = seed;
  return p;
}

TEST(CpuSampling, SampleTokenMatchesTheEngineSamplerGivenItsDraws) {
  std::mt19937_64 rng(11);
  int sampled = 0;
  int not_first = 0;
  for (int64_t vocab : {1, 5, 500, 4000}) {
    for (bool ties : {false, true}) {
      const std::vector<float> logits = Logits(rng, vocab, ties);
      for (const Settings& s : kSettings) {
        const uint64_t seed = rng();
        engine::Sampler sampler(EngineParams(s, seed));
        // The Sampler's own draws: 53 bits of mt19937_64(seed) per sampled token.
        std::mt19937_64 draws(seed);
        const int32_t most_likely = engine::SamplingDistribution(logits, EngineParams(s))[0].first;
        for (int n = 0; n < 20; ++n) {
          cpu::SamplingRow row{s.temperature, s.top_k, s.top_p, 0.0};
          if (s.temperature > 0.0f) row.u = static_cast<double>(draws() >> 11) * 0x1.0p-53;
          const int32_t want = sampler.Sample(logits);
          const int32_t got = cpu::SampleToken(logits.data(), vocab, row);
          ASSERT_EQ(got, want) << "vocab " << vocab << " ties " << ties << " T " << s.temperature
                               << " top_k " << s.top_k << " top_p " << s.top_p << " u " << row.u;
          if (s.temperature > 0.0f) {
            ++sampled;
            not_first += got != most_likely ? 1 : 0;
          }
        }
      }
    }
  }
  // The draws reach beyond the most likely token, so u is what decided.
  EXPECT_GT(not_first, sampled / 4) << not_first << " of " << sampled;
}

TEST(CpuSampling, SampleRowsUsesEachRowsStrideAndSettings) {
  const int64_t vocab = 4;
  const int64_t ld = 6;
  // Row 0: greedy, ties at the maximum -> the lower id. Row 1: top_k 1 -> the argmax whatever u.
  // Row 2: uniform over 4 tokens, u = 0.6 -> the third (ids in order on equal probability).
  const std::vector<float> logits = {1, 3, 3, 0, 9, 9, 0, 0, 2, 0, 9, 9, 5, 5, 5, 5, 9, 9};
  const cpu::SamplingRow rows[] = {
      {0.0f, 0, 1.0f, 0.9}, {1.0f, 1, 1.0f, 0.99}, {1.0f, 0, 1.0f, 0.6}};
  int32_t out[3] = {-1, -1, -1};
  cpu::SampleRows(logits.data(), ld, 3, vocab, rows, out);
  EXPECT_EQ(out[0], 1);
  EXPECT_EQ(out[1], 2);
  EXPECT_EQ(out[2], 2);
}

}  // namespace
}  // namespace kubemoe
