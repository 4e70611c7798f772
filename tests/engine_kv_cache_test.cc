// The latent KV cache holds exactly kv_lora_rank + qk_rope_head_dim floats per token and layer
// (DeepSeek-V2 paper: (d_c + d_h^R) * l elements per token), and the model fills it so.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/kv_cache.h"
#include "engine/model.h"
#include "model/config.h"
#include "model/dtype.h"
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

TEST(LatentKvCache, Bf16HalvesTheBytesAndRoundsEachValue) {
  const ModelConfig c = Config(2, 16, 8, 4);
  LatentKvCache f32(c, 5), bf16(c, 5, KvCacheDType::kBf16);
  EXPECT_EQ(bf16.dtype(), KvCacheDType::kBf16);
  EXPECT_EQ(LatentKvCache::BytesPerTokenPerLayer(c, KvCacheDType::kBf16), 2 * 24);
  EXPECT_EQ(bf16.AllocatedBytes() * 2, f32.AllocatedBytes());
  std::vector<float> rows(2 * 24);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = 1.0f + 1e-3f * static_cast<float>(i);
  for (LatentKvCache* cache : {&f32, &bf16}) {
    cache->WriteRows(1, 2, rows.data(), 2);  // positions 2 and 3 of layer 1
    std::vector<float> buffer;
    const float* got = cache->RowsF32(1, 4, &buffer);
    for (int64_t i = 0; i < 2 * 24; ++i) {  // positions 0 and 1 were never written
      EXPECT_EQ(got[i], 0.0f);
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      const float want = cache == &f32 ? rows[i] : Bf16ToFloat(FloatToBf16(rows[i]));
      EXPECT_EQ(got[2 * 24 + i], want) << KvCacheDTypeName(cache->dtype()) << " value " << i;
    }
  }
  // The f32 cache hands out its own rows; the bf16 one widens into the buffer.
  std::vector<float> buffer;
  EXPECT_EQ(f32.RowsF32(1, 4, &buffer), f32.LayerRows(1));
  EXPECT_TRUE(buffer.empty());
  EXPECT_NE(bf16.RowsF32(1, 4, &buffer), nullptr);
  EXPECT_EQ(buffer.size(), 4u * 24);
}

TEST(LatentKvCache, ParsesTheFlagValues) {
  EXPECT_EQ(*ParseKvCacheDType("f32"), KvCacheDType::kF32);
  EXPECT_EQ(*ParseKvCacheDType("bf16"), KvCacheDType::kBf16);
  StatusOr<KvCacheDType> bad = ParseKvCacheDType("fp8");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bf16"), std::string::npos);
}

}  // namespace
}  // namespace kubemoe::engine
