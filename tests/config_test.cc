// Tests for model/config: the released DeepSeek-V2 configs, defaults, and field errors.
#include "model/config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/temp_dir.h"

namespace kubemoe {
namespace {

const std::string kConfigs = std::string(KUBEMOE_SOURCE_DIR) + "/tests/data/configs/";

TEST(ModelConfigTest, ParsesReleasedDeepSeekV2) {
  StatusOr<ModelConfig> config = LoadModelConfig(kConfigs + "deepseek-v2.json");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const ModelConfig& c = *config;
  EXPECT_EQ(c.vocab_size, 102400);
  EXPECT_EQ(c.hidden_size, 5120);
  EXPECT_EQ(c.intermediate_size, 12288);
  EXPECT_EQ(c.moe_intermediate_size, 1536);
  EXPECT_EQ(c.num_hidden_layers, 60);
  EXPECT_EQ(c.num_attention_heads, 128);
  EXPECT_EQ(c.n_routed_experts, 160);
  EXPECT_EQ(c.n_shared_experts, 2);
  EXPECT_EQ(c.num_experts_per_tok, 6);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 16.0);
  EXPECT_EQ(c.topk_method, TopkMethod::kGroupLimitedGreedy);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 3);
  ASSERT_TRUE(c.q_lora_rank.has_value());
  EXPECT_EQ(*c.q_lora_rank, 1536);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.q_head_dim(), 192);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 40.0);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rope_scaling->mscale_all_dim, 0.707);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSoftmax);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_FALSE(c.IsMoeLayer(0));  // first_k_dense_replace = 1
  EXPECT_TRUE(c.IsMoeLayer(1));
  EXPECT_EQ(c.NumMoeLayers(), 59);
}

TEST(ModelConfigTest, ParsesReleasedDeepSeekV2Lite) {
  StatusOr<ModelConfig> config = LoadModelConfig(kConfigs + "deepseek-v2-lite.json");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->hidden_size, 2048);
  EXPECT_FALSE(config->q_lora_rank.has_value());  // null: plain q_proj
  EXPECT_EQ(config->n_routed_experts, 64);
  EXPECT_EQ(config->topk_method, TopkMethod::kGreedy);
  EXPECT_EQ(config->NumMoeLayers(), 26);
}

TEST(ModelConfigTest, MissingFieldsTakeTheOriginalDeepSeekDefaults) {
  StatusOr<ModelConfig> config = ParseModelConfig(R"({"model_type": "deepseek_v2"})", "mem");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->vocab_size, 102400);
  EXPECT_EQ(config->moe_intermediate_size, 1407);
  EXPECT_EQ(config->num_hidden_layers, 30);
  EXPECT_EQ(config->q_lora_rank, 1536);
  EXPECT_EQ(config->topk_method_name, "gready");  // the original's spelling, read as greedy
  EXPECT_EQ(config->topk_method, TopkMethod::kGreedy);
  EXPECT_FALSE(config->is_moe());  // n_routed_experts defaults to null
  EXPECT_EQ(config->bos_token_id, 100000);
  EXPECT_FALSE(config->rope_scaling.has_value());
}

TEST(ModelConfigTest, RoundTripsThroughJson) {
  StatusOr<ModelConfig> original = LoadModelConfig(kConfigs + "deepseek-v2.json");
  ASSERT_TRUE(original.ok());
  StatusOr<ModelConfig> again = ParseModelConfig(ModelConfigToJson(*original), "round-trip");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(ModelConfigToJson(*again), ModelConfigToJson(*original));
  EXPECT_EQ(again->q_lora_rank, original->q_lora_rank);
  EXPECT_EQ(again->rope_scaling->beta_fast, original->rope_scaling->beta_fast);
}

struct BadConfig {
  const char* json;
  const char* expected_in_message;
};

class ModelConfigErrorTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(ModelConfigErrorTest, NamesTheFieldAndTheSource) {
  StatusOr<ModelConfig> config = ParseModelConfig(GetParam().json, "some/config.json");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("some/config.json"), std::string::npos)
      << config.status().message();
  EXPECT_NE(config.status().message().find(GetParam().expected_in_message), std::string::npos)
      << config.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Fields, ModelConfigErrorTest,
    ::testing::Values(
        BadConfig{"{", "not valid JSON"}, BadConfig{"[1, 2]", "JSON object"},
        BadConfig{R"({"model_type": "llama"})", "\"model_type\""},
        BadConfig{R"({"model_type": "deepseek_v2", "hidden_size": "5120"})", "\"hidden_size\""},
        BadConfig{R"({"model_type": "deepseek_v2", "hidden_size": 0})", "\"hidden_size\""},
        BadConfig{R"({"model_type": "deepseek_v2", "hidden_size": 1.5})", "\"hidden_size\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rms_norm_eps": -1})", "\"rms_norm_eps\""},
        BadConfig{R"({"model_type": "deepseek_v2", "norm_topk_prob": 1})", "\"norm_topk_prob\""},
        BadConfig{R"({"model_type": "deepseek_v2", "topk_method": "best"})", "\"topk_method\""},
        BadConfig{R"({"model_type": "deepseek_v2", "scoring_func": "relu"})", "\"scoring_func\""},
        BadConfig{R"({"model_type": "deepseek_v2", "hidden_act": "gelu"})", "\"hidden_act\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_scaling": {"type": "linear"}})",
                  "\"rope_scaling.type\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_scaling": {"type": "yarn", "factor": "x"}})",
                  "\"rope_scaling.factor\""},
        BadConfig{R"({"model_type": "deepseek_v2", "qk_rope_head_dim": 63})", "\"qk_rope_head_dim\""},
        BadConfig{R"({"model_type": "deepseek_v2", "n_routed_experts": 8, "num_experts_per_tok": 9})",
                  "\"num_experts_per_tok\""},
        BadConfig{R"({"model_type": "deepseek_v2", "n_routed_experts": 10, "num_experts_per_tok": 2,
                      "topk_method": "group_limited_greedy", "n_group": 3, "topk_group": 1})",
                  "\"n_group\""},
        BadConfig{R"({"model_type": "deepseek_v2", "n_routed_experts": 8, "num_experts_per_tok": 2,
                      "topk_method": "group_limited_greedy", "n_group": 4, "topk_group": 5})",
                  "\"topk_group\""},
        BadConfig{R"({"model_type": "deepseek_v2", "n_routed_experts": 8, "num_experts_per_tok": 6,
                      "topk_method": "group_limited_greedy", "n_group": 4, "topk_group": 2})",
                  "fewer than num_experts_per_tok"},
        BadConfig{R"({"model_type": "deepseek_v2", "vocab_size": 100})", "\"bos_token_id\""}));

TEST(ModelConfigTest, MissingFileIsNotFound) {
  StatusOr<ModelConfig> config = LoadModelConfig(kConfigs + "no-such.json");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kNotFound);
}

TEST(ModelConfigTest, EosTokenIdListKeepsEveryEntry) {
  // Some configs list several end-of-sequence ids; only the first used to be kept.
  const std::string base = R"({"model_type": "deepseek_v2", "vocab_size": 100, "bos_token_id": 0, )";
  StatusOr<ModelConfig> c = ParseModelConfig(base + R"("eos_token_id": [2, 7, 9]})", "eos.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->eos_token_id, 2);
  EXPECT_EQ(c->extra_eos_token_ids, (std::vector<int64_t>{7, 9}));
  EXPECT_TRUE(c->IsEosToken(2) && c->IsEosToken(7) && c->IsEosToken(9));
  EXPECT_FALSE(c->IsEosToken(3));
  // Written back as the same list.
  StatusOr<ModelConfig> again = ParseModelConfig(ModelConfigToJson(*c), "again.json");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->extra_eos_token_ids, (std::vector<int64_t>{7, 9}));
  EXPECT_FALSE(ParseModelConfig(base + R"("eos_token_id": [2, 100]})", "eos.json").ok());
  EXPECT_FALSE(ParseModelConfig(base + R"("eos_token_id": [2, -1]})", "eos.json").ok());
  EXPECT_FALSE(ParseModelConfig(
                   R"({"model_type": "deepseek_v2", "vocab_size": 100, "bos_token_id": [0, 1]})",
                   "bos.json")
                   .ok());
}

TEST(ModelConfigTest, DirectoryWithoutConfigJsonSaysItIsMissing) {
  TempDir dir;  // a model directory that lacks config.json (used to read as "not valid JSON")
  StatusOr<ModelConfig> config = LoadModelConfig(dir.path());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kNotFound);
  EXPECT_NE(config.status().message().find("has no config.json"), std::string::npos)
      << config.status().message();
  EXPECT_EQ(config.status().message().find("JSON"), std::string::npos);
}

}  // namespace
}  // namespace kubemoe
