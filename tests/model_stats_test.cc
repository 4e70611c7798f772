// Tests for model/model_stats: parameter counts and KV-cache sizes of the released configs.
#include "model/model_stats.h"

#include <gtest/gtest.h>

#include "model/tensor_names.h"

namespace kubemoe {
namespace {

const std::string kConfigs = std::string(KUBEMOE_SOURCE_DIR) + "/tests/data/configs/";

ModelConfig Load(const char* name) {
  StatusOr<ModelConfig> config = LoadModelConfig(kConfigs + name);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return *config;
}

// The exact expectations were computed by a separate Python formula over the config values
// (sum of tensor sizes per the reference modelling code), not by this code.
TEST(ModelStatsTest, DeepSeekV2Is236BTotal21BActivated) {
  const ParameterCounts p = CountParameters(Load("deepseek-v2.json"));
  EXPECT_EQ(p.total, 235741434880);
  EXPECT_EQ(p.activated, 21375800320);
  EXPECT_EQ(p.activated_without_embedding, 20851512320);
  EXPECT_NEAR(static_cast<double>(p.total) / 1e9, 236, 0.5);       // paper: 236B
  EXPECT_NEAR(static_cast<double>(p.activated) / 1e9, 21, 0.5);    // paper: 21B
}

TEST(ModelStatsTest, DeepSeekV2LiteIs15Point7BTotal) {
  const ParameterCounts p = CountParameters(Load("deepseek-v2-lite.json"));
  EXPECT_EQ(p.total, 15706484224);
  EXPECT_EQ(p.activated, 2661150208);
  EXPECT_NEAR(static_cast<double>(p.total) / 1e9, 15.7, 0.05);  // paper: 15.7B
  // The paper's 2.4B activated matches the count without the embedding lookup.
  EXPECT_NEAR(static_cast<double>(p.activated_without_embedding) / 1e9, 2.4, 0.06);
}

TEST(ModelStatsTest, CountsAgreeWithTheCheckpointTensorList) {
  for (const char* name : {"deepseek-v2.json", "deepseek-v2-lite.json"}) {
    const ModelConfig config = Load(name);
    int64_t sum = 0;
    for (const TensorSpec& spec : CheckpointTensors(config)) {
      int64_t n = 1;
      for (int64_t d : spec.shape) n *= d;
      sum += n;
    }
    EXPECT_EQ(sum, CountParameters(config).total) << name;
  }
}

TEST(ModelStatsTest, MlaCachesLatentPlusRopeKeyPerLayer) {
  const KvCacheStats s = ComputeKvCacheStats(Load("deepseek-v2.json"));
  EXPECT_EQ(s.mla_elements_per_token, (512 + 64) * 60);
  EXPECT_EQ(s.mha_elements_per_token, 2 * 128 * 128 * 60);
  // The paper's Table 1: MLA ~ (9/2) d_h l against MHA's 2 n_h d_h l, i.e. 2.25 / n_h.
  EXPECT_NEAR(s.mla_over_mha, 2.25 / 128, 1e-12);
}

TEST(ModelStatsTest, TiedEmbeddingsHaveNoSeparateHead) {
  ModelConfig config = Load("deepseek-v2-lite.json");
  const int64_t untied = CountParameters(config).total;
  config.tie_word_embeddings = true;
  EXPECT_EQ(CountParameters(config).total, untied - config.vocab_size * config.hidden_size);
  EXPECT_EQ(CountParameters(config).lm_head, 0);
}

}  // namespace
}  // namespace kubemoe
