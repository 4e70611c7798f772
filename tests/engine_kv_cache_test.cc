// The latent KV cache holds exactly kv_lora_rank + qk_rope_head_dim floats per token and layer
// (DeepSeek-V2 paper: (d_c + d_h^R) * l elements per token), and the model fills it so.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/kv_cache.h"
#include "engine/model.h"
#include "model/config.h"
#include "tests/engine_test_util.h"

namespace kubemoe::engine {
namespace {

ModelConfig Config(int64_t layers, int64_t rank, int64_t rope, int64_t heads) {
  ModelConfig c;
  c.num_hidden_layers = layers;
  c.kv_lora_rank = rank;
  c.qk_rope_head_dim = rope;
  c.num_attention_heads = heads;
  return c;
}

TEST(LatentKvCache, AllocationMatchesTheFormula) {
  struct Case {
    ModelConfig config;
    int64_t capacity;
    int64_t per_token_layer_floats;  // written out from the config files, not from the code
  };
  const Case cases[] = {
      {Config(60, 512, 64, 128), 7, 576},  // DeepSeek-V2
      {Config(27, 512, 64, 16), 33, 576},  // DeepSeek-V2-Lite
      {Config(3, 32, 8, 4), 100, 40},      // tiny preset
      {Config(1, 16, 8, 4), 1, 24},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(LatentKvCache::RowFloats(c.config), c.per_token_layer_floats);
    EXPECT_EQ(LatentKvCache::BytesPerTokenPerLayer(c.config), 4 * c.per_token_layer_floats);
    LatentKvCache cache(c.config, c.capacity);
    EXPECT_EQ(cache.AllocatedBytes(),
              c.config.num_hidden_layers * c.capacity * 4 * c.per_token_layer_floats);
  }
}

TEST(LatentKvCache, ForwardAppendsOneRowPerTokenAndLayer) {
  std::unique_ptr<Model> model = testing::TinyModel();
  ASSERT_TRUE(model);
  const ModelConfig& c = model->config();
  LatentKvCache cache(c, 8);
  const std::vector<int32_t> prompt = {5, 17, 300, 42};
  SequenceInput in{&cache, prompt};
  std::vector<float> logits;
  ASSERT_TRUE(model->Forward({&in, 1}, {}, &logits).ok());
  EXPECT_EQ(cache.length(), 4);
  // Rows past the length are untouched (still zero); written rows are not.
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const float* rows = cache.LayerRows(l);
    double written = 0, unwritten = 0;
    for (int64_t i = 0; i < 4 * cache.row_floats(); ++i) written += std::fabs(rows[i]);
    for (int64_t i = 4 * cache.row_floats(); i < 8 * cache.row_floats(); ++i) {
      unwritten += std::fabs(rows[i]);
    }
    EXPECT_GT(written, 0.0);
    EXPECT_EQ(unwritten, 0.0);
  }
  // Too many tokens for the capacity is an error, and the cache is left as it was.
  const std::vector<int32_t> more = {1, 2, 3, 4, 5};
  SequenceInput over{&cache, more};
  Status s = model->Forward({&over, 1}, {}, &logits);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.length(), 4);
}

}  // namespace
}  // namespace kubemoe::engine
