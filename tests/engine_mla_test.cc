// The absorbed MLA form (scores against the latent cache, W_UK folded into the query, W_UV after
// the weighted sum) equals the decompressed form (kv_b_proj expands the cache), for prefill and
// token-by-token decode, with and without q_lora_rank.
#include <gtest/gtest.h>

#include <vector>

#include "engine/model.h"
#include "tests/engine_test_util.h"

namespace kubemoe::engine {
namespace {

using Form = ForwardOptions::Form;

std::vector<float> AllLogits(Model& model, const std::vector<int32_t>& tokens, Form form,
                             bool one_at_a_time, std::vector<float>* cache_rows) {
  const ModelConfig& c = model.config();
  LatentKvCache cache(c, static_cast<int64_t>(tokens.size()));
  std::vector<float> all, step;
  if (one_at_a_time) {
    for (const int32_t& t : tokens) {
      SequenceInput in{&cache, std::span<const int32_t>(&t, 1)};
      EXPECT_TRUE(model.Forward({&in, 1}, {.attention = form}, &step).ok());
      all.insert(all.end(), step.begin(), step.end());
    }
  } else {
    SequenceInput in{&cache, tokens};
    EXPECT_TRUE(model.Forward({&in, 1}, {.attention = form, .all_logits = true}, &all).ok());
  }
  const float* rows = cache.LayerRows(c.num_hidden_layers - 1);
  cache_rows->assign(rows, rows + cache.length() * cache.row_floats());
  return all;
}

void ExpectFormsAgree(Model& model) {
  const std::vector<int32_t> tokens = {7, 300, 1100, 42, 42, 9, 615, 3, 88};
  std::vector<float> cache_ref, cache;
  const std::vector<float> ref = AllLogits(model, tokens, Form::kDecompressed, false, &cache_ref);
  ASSERT_EQ(ref.size(), tokens.size() * static_cast<size_t>(model.config().vocab_size));
  EXPECT_LE(testing::RelError(AllLogits(model, tokens, Form::kAbsorbed, false, &cache), ref), 1e-5);
  // The last layer's latent rows: equal up to the rounding of earlier layers' attention.
  EXPECT_LE(testing::RelError(cache, cache_ref), 1e-6);
  // Decode: each step attends over the cache written by the previous ones.
  EXPECT_LE(testing::RelError(AllLogits(model, tokens, Form::kAbsorbed, true, &cache), ref), 1e-5);
  EXPECT_LE(testing::RelError(cache, cache_ref), 1e-6);
  EXPECT_LE(testing::RelError(AllLogits(model, tokens, Form::kDecompressed, true, &cache), ref),
            1e-5);
  // The logits are not degenerate: positions differ from each other.
  const auto v = static_cast<size_t>(model.config().vocab_size);
  std::vector<float> first(ref.begin(), ref.begin() + static_cast<std::ptrdiff_t>(v));
  std::vector<float> last(ref.end() - static_cast<std::ptrdiff_t>(v), ref.end());
  EXPECT_GT(testing::RelError(first, last), 1e-2);
}

TEST(Mla, AbsorbedEqualsDecompressedWithQLora) {
  std::unique_ptr<Model> model = testing::TinyModel();
  ASSERT_TRUE(model);
  ASSERT_TRUE(model->config().q_lora_rank.has_value());
  ExpectFormsAgree(*model);
}

TEST(Mla, AbsorbedEqualsDecompressedWithPlainQProj) {
  std::unique_ptr<Model> model = testing::TinyModel([](ModelConfig& c) {
    c.q_lora_rank = std::nullopt;
    c.kv_lora_rank = 24;
    c.v_head_dim = 12;  // v and k_nope of different sizes
  });
  ASSERT_TRUE(model);
  ExpectFormsAgree(*model);
}

}  // namespace
}  // namespace kubemoe::engine
