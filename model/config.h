// The checked configuration of a DeepSeek-V2-family model, read from a Hugging Face config.json
// (model_type "deepseek_v2"). One struct, built and validated in one place and passed to every
// component (router, worker, CLI).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>
#include <string_view>

#include "common/status.h"

namespace kubemoe {

// YaRN RoPE scaling as DeepSeek-V2 configures it ("rope_scaling": {"type": "yarn", ...}, or in
// transformers 5's form "rope_parameters": {"rope_type": "yarn", ...}).
struct YarnScaling {
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;

  bool operator==(const YarnScaling&) const = default;
};

enum class TopkMethod { kGreedy, kGroupLimitedGreedy };
enum class ScoringFunc { kSoftmax, kSigmoid };

// Defaults are those of the original DeepSeek-V2 modelling code (configuration_deepseek.py), which
// is what a released config.json omits fields against. They differ from transformers' native
// DeepseekV2Config in places (e.g. vocab_size 102400 vs 32000, n_routed_experts null vs 64).
struct ModelConfig {
  std::string source;  // file the config was read from, for error messages
  int64_t vocab_size = 102400;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;      // dense MLP layers
  int64_t moe_intermediate_size = 1407;   // each routed expert; shared = this x n_shared_experts
  int64_t num_hidden_layers = 30;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;       // MLA: informational, every head has its own k/v
  int64_t n_routed_experts = 0;           // 0 = null in JSON: a dense model
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t ep_size = 1;
  double routed_scaling_factor = 1.0;
  int64_t kv_lora_rank = 512;
  std::optional<int64_t> q_lora_rank = 1536;  // nullopt: plain q_proj (DeepSeek-V2-Lite)
  int64_t qk_rope_head_dim = 64;
  int64_t v_head_dim = 128;
  int64_t qk_nope_head_dim = 128;
  // The original code's default is the misspelt "gready", which its gate treats as neither method;
  // we read it as greedy and record the spelling so `inspect` can show it.
  TopkMethod topk_method = TopkMethod::kGreedy;
  std::string topk_method_name = "gready";
  int64_t n_group = 1;     // null in JSON -> 1 (no grouping)
  int64_t topk_group = 1;  // null in JSON -> 1
  int64_t moe_layer_freq = 1;
  int64_t first_k_dense_replace = 0;
  bool norm_topk_prob = false;
  ScoringFunc scoring_func = ScoringFunc::kSoftmax;
  std::string hidden_act = "silu";
  int64_t max_position_embeddings = 2048;
  double initializer_range = 0.02;
  double rms_norm_eps = 1e-6;
  std::optional<int64_t> bos_token_id = 100000;
  std::optional<int64_t> eos_token_id = 100001;
  // Further end-of-sequence ids when config.json gives eos_token_id as a list (its first entry is
  // eos_token_id); generation stops at any of them.
  std::vector<int64_t> extra_eos_token_ids;
  std::optional<int64_t> pad_token_id;
  bool tie_word_embeddings = false;
  // From "rope_theta" and "rope_scaling" (transformers 4, the original release) or
  // "rope_parameters" (transformers 5); see ParseModelConfig.
  double rope_theta = 10000.0;
  std::optional<YarnScaling> rope_scaling;  // only "yarn" is supported
  bool attention_bias = false;
  std::string torch_dtype;  // informational ("bfloat16", ...): "torch_dtype", or 5's "dtype"

  bool is_moe() const { return n_routed_experts > 0; }
  int64_t q_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // The DeepSeek rule: a layer is MoE iff experts exist, layer >= first_k_dense_replace and
  // layer % moe_layer_freq == 0.
  bool IsMoeLayer(int64_t layer) const;
  // eos_token_id or one of extra_eos_token_ids.
  bool IsEosToken(int64_t token) const;
  int64_t NumMoeLayers() const;
};

// Parses and validates config.json text. `source` names the file in error messages. Known fields
// of the wrong type or out of range are errors that name the field and the source.
//
// Both forms Hugging Face writes are read: transformers 4's (and the original release's)
// "rope_theta" + "rope_scaling", and transformers 5's "rope_parameters" (with "rope_type" and the
// theta inside). Where several fields state the same setting they must agree, or the error names
// both.
//
// Fields it does not know are ignored, as transformers ignores them (training-only ones such as
// seq_aux, derived ones such as head_dim). A known setting that would change the computation and
// that the engine does not implement is an error naming the field, never silently dropped: a rope
// type other than "yarn"/"default" or an unknown key inside the RoPE dicts, a topk_method other
// than greedy/group_limited_greedy (e.g. DeepSeek-V3's "noaux_tc"), a scoring_func other than
// softmax/sigmoid, hidden_act other than silu, a quantization_config, mlp_bias true.
// docs/model-config.md lists them.
StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view source);

// Reads `path` (a config.json, or a directory holding one) and parses it.
StatusOr<ModelConfig> LoadModelConfig(const std::string& path);

// Checks the invariants between fields (e.g. topk_group <= n_group, experts divisible into
// groups); ParseModelConfig calls it, and code that builds a config by hand should too.
Status ValidateModelConfig(const ModelConfig& config);

// Serialises to Hugging Face config.json form (architectures, model_type and every field above),
// pretty-printed. ParseModelConfig(ModelConfigToJson(c)) reproduces c.
std::string ModelConfigToJson(const ModelConfig& config);

}  // namespace kubemoe
