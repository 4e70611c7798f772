// Tests for model/config: the released DeepSeek-V2 configs, transformers 5's form of them,
// defaults, and field errors.
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
        BadConfig{R"({"model_type": "deepseek_v2", "vocab_size": 100})", "\"bos_token_id\""},
        // Settings that change the computation and that the engine does not implement are refused
        // by name, never ignored. (Every rope_parameters case, quantization_config and mlp_bias
        // used to parse silently, the rope_parameters ones as plain RoPE with theta 10000.)
        BadConfig{R"({"model_type": "deepseek_v2", "topk_method": "noaux_tc"})", "\"topk_method\""},
        BadConfig{R"({"model_type": "deepseek_v2", "scoring_func": "sqrtsoftplus"})",
                  "\"scoring_func\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_scaling": {"rope_type": "dynamic",
                      "factor": 2.0}})",
                  "\"rope_scaling.rope_type\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_scaling": {"type": "yarn", "factor": 4.0,
                      "short_factor": [1.0]}})",
                  "\"rope_scaling.short_factor\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_scaling": {"type": "yarn"}})",
                  "\"rope_scaling.factor\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_parameters": "yarn"})",
                  "\"rope_parameters\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_parameters": {"rope_type": "linear",
                      "rope_theta": 10000.0, "factor": 2.0}})",
                  "\"rope_parameters.rope_type\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_parameters": {"rope_type": "llama3",
                      "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}})",
                  "\"rope_parameters.rope_type\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_parameters": {"rope_type": "yarn"}})",
                  "\"rope_parameters.factor\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_parameters": {"rope_type": "yarn",
                      "factor": 4.0, "attention_factor": 1.2}})",
                  "\"rope_parameters.attention_factor\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_parameters": {"rope_type": "yarn",
                      "factor": 4.0, "truncate": false}})",
                  "\"rope_parameters.truncate\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_parameters": {"rope_type": "default",
                      "partial_rotary_factor": 0.5}})",
                  "\"rope_parameters.partial_rotary_factor\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_parameters": {"rope_type": "default",
                      "factor": 4.0}})",
                  "\"rope_parameters.factor\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_parameters": {"full_attention":
                      {"rope_type": "yarn", "factor": 4.0}}})",
                  "\"rope_parameters.full_attention\""},
        BadConfig{R"({"model_type": "deepseek_v2", "rope_parameters": {"type": "yarn",
                      "rope_type": "default"}})",
                  "\"rope_parameters.rope_type\""},
        BadConfig{R"({"model_type": "deepseek_v2", "quantization_config": {"quant_method": "fp8",
                      "fmt": "e4m3", "weight_block_size": [128, 128]}})",
                  "\"quantization_config\""},
        BadConfig{R"({"model_type": "deepseek_v2", "quantization_config": {}})",
                  "\"quantization_config\""},
        BadConfig{R"({"model_type": "deepseek_v2", "mlp_bias": true})", "\"mlp_bias\""},
        BadConfig{R"({"model_type": "deepseek_v2", "torch_dtype": "float32", "dtype": "bfloat16"})",
                  "\"dtype\""}));

// deepseek-v2-transformers5.json is what transformers 5.24's save_pretrained writes for
// deepseek-v2.json (DeepseekV2Config(**that json, less auto_map)): "rope_parameters" (theta inside,
// and the old "type" beside "rope_type") instead of "rope_theta" and "rope_scaling", "dtype" instead
// of "torch_dtype", plus derived and training-only fields.
TEST(ModelConfigTest, TransformersFiveReleasedConfigReadsAsTheOriginal) {
  StatusOr<ModelConfig> original = LoadModelConfig(kConfigs + "deepseek-v2.json");
  StatusOr<ModelConfig> saved_by_5 = LoadModelConfig(kConfigs + "deepseek-v2-transformers5.json");
  ASSERT_TRUE(original.ok()) << original.status().ToString();
  ASSERT_TRUE(saved_by_5.ok()) << saved_by_5.status().ToString();
  ASSERT_TRUE(saved_by_5->rope_scaling.has_value());  // was silently plain RoPE
  EXPECT_EQ(*saved_by_5->rope_scaling, *original->rope_scaling);
  EXPECT_DOUBLE_EQ(saved_by_5->rope_theta, original->rope_theta);
  EXPECT_EQ(saved_by_5->torch_dtype, "bfloat16");
  EXPECT_EQ(ModelConfigToJson(*saved_by_5), ModelConfigToJson(*original));  // every field
}

// The released config's theta is the default, so this spells out a config whose every RoPE
// field differs from its default, in both forms.
TEST(ModelConfigTest, RopeParametersGiveTheSameRopeAsRopeThetaAndRopeScaling) {
  const std::string base = R"({"model_type": "deepseek_v2", "max_position_embeddings": 8192, )";
  const std::string yarn = R"("factor": 8.0, "original_max_position_embeddings": 1024,
      "beta_fast": 16, "beta_slow": 2, "mscale": 0.9, "mscale_all_dim": 0.8)";
  StatusOr<ModelConfig> four = ParseModelConfig(
      base + R"("rope_theta": 500000.0, "rope_scaling": {"type": "yarn", )" + yarn + "}}", "4");
  StatusOr<ModelConfig> five = ParseModelConfig(
      base + R"("rope_parameters": {"rope_type": "yarn", "rope_theta": 500000, )" + yarn + "}}",
      "5");
  ASSERT_TRUE(four.ok()) << four.status().ToString();
  ASSERT_TRUE(five.ok()) << five.status().ToString();
  const YarnScaling expected{.factor = 8.0,
                             .original_max_position_embeddings = 1024,
                             .beta_fast = 16.0,
                             .beta_slow = 2.0,
                             .mscale = 0.9,
                             .mscale_all_dim = 0.8};
  for (const ModelConfig* c : {&*four, &*five}) {
    EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0) << c->source;
    ASSERT_TRUE(c->rope_scaling.has_value()) << c->source;
    EXPECT_EQ(*c->rope_scaling, expected) << c->source;
  }
  EXPECT_EQ(ModelConfigToJson(*five), ModelConfigToJson(*four));

  // Plain RoPE with a theta of its own.
  StatusOr<ModelConfig> plain = ParseModelConfig(
      base + R"("rope_parameters": {"rope_type": "default", "rope_theta": 250000.0}})", "plain");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_DOUBLE_EQ(plain->rope_theta, 250000.0);
  EXPECT_FALSE(plain->rope_scaling.has_value());

  // transformers 5 fills a missing original_max_position_embeddings from max_position_embeddings.
  StatusOr<ModelConfig> derived = ParseModelConfig(
      base + R"("rope_parameters": {"rope_type": "yarn", "factor": 4.0}})", "derived");
  ASSERT_TRUE(derived.ok()) << derived.status().ToString();
  ASSERT_TRUE(derived->rope_scaling.has_value());
  EXPECT_EQ(derived->rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(derived->rope_theta, 10000.0);
}

TEST(ModelConfigTest, BothRopeFormsMustAgree) {
  const std::string base = R"({"model_type": "deepseek_v2", )";
  const std::string yarn4 = R"("rope_scaling": {"type": "yarn", "factor": 4.0,
      "original_max_position_embeddings": 512})";
  // Agreeing: fine (a config edited by hand, or written by one version and patched by another).
  StatusOr<ModelConfig> agree = ParseModelConfig(
      base + R"("rope_theta": 20000, )" + yarn4 + R"(, "rope_parameters": {"rope_type": "yarn",
          "type": "yarn", "rope_theta": 20000.0, "factor": 4, "original_max_position_embeddings":
          512, "beta_fast": null}})",
      "agree.json");
  ASSERT_TRUE(agree.ok()) << agree.status().ToString();
  EXPECT_DOUBLE_EQ(agree->rope_theta, 20000.0);
  ASSERT_TRUE(agree->rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(agree->rope_scaling->factor, 4.0);

  struct Case {
    std::string json;
    std::vector<std::string> fields;  // each must be named in the error
  };
  const std::vector<Case> cases = {
      {base + R"("rope_theta": 10000, "rope_parameters": {"rope_type": "default",
          "rope_theta": 500000}})",
       {"\"rope_theta\"", "\"rope_parameters.rope_theta\""}},
      {base + R"("rope_scaling": {"type": "yarn", "factor": 4.0, "rope_theta": 1000,
          "original_max_position_embeddings": 512}, "rope_parameters": {"rope_type": "yarn",
          "factor": 4.0, "rope_theta": 2000, "original_max_position_embeddings": 512}})",
       {"\"rope_scaling.rope_theta\"", "\"rope_parameters.rope_theta\""}},
      {base + yarn4 + R"(, "rope_parameters": {"rope_type": "default"}})",
       {"\"rope_scaling\"", "\"rope_parameters\""}},
      {base + yarn4 + R"(, "rope_parameters": {"rope_type": "yarn", "factor": 8.0,
          "original_max_position_embeddings": 512}})",
       {"\"rope_scaling\"", "\"rope_parameters\""}},
  };
  for (const Case& c : cases) {
    StatusOr<ModelConfig> config = ParseModelConfig(c.json, "both.json");
    ASSERT_FALSE(config.ok()) << c.json;
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(config.status().message().find("both.json"), std::string::npos);
    for (const std::string& field : c.fields) {
      EXPECT_NE(config.status().message().find(field), std::string::npos)
          << field << " not in: " << config.status().message();
    }
  }
}

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
