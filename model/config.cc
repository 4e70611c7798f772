#include "model/config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/config_fields.h"
#include "model/config_rope.h"

namespace kubemoe {
namespace {

using config_internal::FieldReader;
using nlohmann::json;

// bos/eos may be an integer, null, or (in some configs) a list; we keep the first.
// A token id, or a list of them (first -> *out, the rest -> *rest; a list is refused when rest
// is null).
Status ReadTokenId(const FieldReader& fields, const char* name, std::optional<int64_t>* out,
                   std::vector<int64_t>* rest = nullptr) {
  const json* value = fields.Find(name);
  if (value != nullptr && value->is_array()) {
    if (rest == nullptr && value->size() > 1) return fields.Error(name, "must be one id, not a list");
    out->reset();
    if (rest != nullptr) rest->clear();
    for (size_t i = 0; i < value->size(); ++i) {
      const json& id = (*value)[i];
      if (!id.is_number_integer() || id.get<int64_t>() < 0) {
        return fields.Error(name, "must hold non-negative integers");
      }
      if (i == 0) {
        *out = id.get<int64_t>();
      } else {
        rest->push_back(id.get<int64_t>());
      }
    }
    return Status::Ok();
  }
  return fields.OptionalInt(name, out, 0);
}

// "torch_dtype" (transformers 4) or "dtype" (transformers 5); they must agree when both are set.
Status ReadDtype(const FieldReader& f, std::string* out) {
  std::string torch_dtype, dtype;
  KUBEMOE_RETURN_IF_ERROR(f.String("torch_dtype", &torch_dtype));
  KUBEMOE_RETURN_IF_ERROR(f.String("dtype", &dtype));
  if (!torch_dtype.empty() && !dtype.empty() && torch_dtype != dtype) {
    return InvalidArgument(std::string(f.source()) + ": fields \"torch_dtype\" (\"" + torch_dtype +
                           "\") and \"dtype\" (\"" + dtype + "\") disagree; keep one of them");
  }
  if (!torch_dtype.empty() || !dtype.empty()) *out = torch_dtype.empty() ? dtype : torch_dtype;
  return Status::Ok();
}

// Fields that ModelConfig has no place for but that would change what the model computes: a
// config that sets them is refused by name rather than run as if they were absent. (Fields that
// only matter for training, such as aux_loss_alpha, seq_aux or attention_dropout, and derived
// ones transformers writes, such as head_dim and qk_head_dim, are ignored.)
Status RefuseUnimplemented(const FieldReader& f) {
  for (const char* name : {"quantization_config", "compression_config"}) {
    const json* value = f.Find(name);
    if (value != nullptr && !value->is_null()) {
      return f.Error(name, "is set, but quantized checkpoints are not supported; use the "
                           "unquantized (bf16, fp16 or fp32) checkpoint");
    }
  }
  bool mlp_bias = false;  // transformers 5's DeepseekV2Config: biases on every MLP projection
  KUBEMOE_RETURN_IF_ERROR(f.Bool("mlp_bias", &mlp_bias));
  if (mlp_bias) {
    return f.Error("mlp_bias", "must be false: the engine's MLPs and experts have no biases");
  }
  return Status::Ok();
}

Status ReadFields(const FieldReader& f, ModelConfig* c) {
  KUBEMOE_RETURN_IF_ERROR(f.Int("vocab_size", &c->vocab_size, 1));
  KUBEMOE_RETURN_IF_ERROR(f.Int("hidden_size", &c->hidden_size, 1));
  KUBEMOE_RETURN_IF_ERROR(f.Int("intermediate_size", &c->intermediate_size, 1));
  KUBEMOE_RETURN_IF_ERROR(f.Int("moe_intermediate_size", &c->moe_intermediate_size, 1));
  KUBEMOE_RETURN_IF_ERROR(f.Int("num_hidden_layers", &c->num_hidden_layers, 1, 100000));
  KUBEMOE_RETURN_IF_ERROR(f.Int("num_attention_heads", &c->num_attention_heads, 1, 100000));
  c->num_key_value_heads = c->num_attention_heads;
  KUBEMOE_RETURN_IF_ERROR(f.NullableInt("num_key_value_heads", &c->num_key_value_heads,
                                        c->num_attention_heads, 1));
  KUBEMOE_RETURN_IF_ERROR(f.NullableInt("n_routed_experts", &c->n_routed_experts, 0, 0));
  KUBEMOE_RETURN_IF_ERROR(f.NullableInt("n_shared_experts", &c->n_shared_experts, 0, 0));
  KUBEMOE_RETURN_IF_ERROR(f.NullableInt("num_experts_per_tok", &c->num_experts_per_tok, 0, 0));
  KUBEMOE_RETURN_IF_ERROR(f.Int("ep_size", &c->ep_size, 1));
  KUBEMOE_RETURN_IF_ERROR(f.Double("routed_scaling_factor", &c->routed_scaling_factor, 0.0, 1e6));
  KUBEMOE_RETURN_IF_ERROR(f.Int("kv_lora_rank", &c->kv_lora_rank, 1));
  KUBEMOE_RETURN_IF_ERROR(f.OptionalInt("q_lora_rank", &c->q_lora_rank, 1));
  KUBEMOE_RETURN_IF_ERROR(f.Int("qk_rope_head_dim", &c->qk_rope_head_dim, 0));
  KUBEMOE_RETURN_IF_ERROR(f.Int("v_head_dim", &c->v_head_dim, 1));
  KUBEMOE_RETURN_IF_ERROR(f.Int("qk_nope_head_dim", &c->qk_nope_head_dim, 0));
  KUBEMOE_RETURN_IF_ERROR(f.String("topk_method", &c->topk_method_name));
  if (c->topk_method_name == "greedy" || c->topk_method_name == "gready") {
    c->topk_method = TopkMethod::kGreedy;
  } else if (c->topk_method_name == "group_limited_greedy") {
    c->topk_method = TopkMethod::kGroupLimitedGreedy;
  } else {
    std::string problem = "must be \"greedy\" or \"group_limited_greedy\", got \"" +
                          c->topk_method_name + "\"";
    if (c->topk_method_name == "noaux_tc") {
      problem += " (DeepSeek-V3's bias-corrected routing with e_score_correction_bias, which the "
                 "engine does not implement)";
    }
    return f.Error("topk_method", problem);
  }
  KUBEMOE_RETURN_IF_ERROR(f.NullableInt("n_group", &c->n_group, 1, 1));
  KUBEMOE_RETURN_IF_ERROR(f.NullableInt("topk_group", &c->topk_group, 1, 1));
  KUBEMOE_RETURN_IF_ERROR(f.Int("moe_layer_freq", &c->moe_layer_freq, 1));
  KUBEMOE_RETURN_IF_ERROR(f.Int("first_k_dense_replace", &c->first_k_dense_replace, 0));
  KUBEMOE_RETURN_IF_ERROR(f.Bool("norm_topk_prob", &c->norm_topk_prob));
  std::string scoring = "softmax";
  KUBEMOE_RETURN_IF_ERROR(f.String("scoring_func", &scoring));
  if (scoring == "softmax") {
    c->scoring_func = ScoringFunc::kSoftmax;
  } else if (scoring == "sigmoid") {
    c->scoring_func = ScoringFunc::kSigmoid;
  } else {
    return f.Error("scoring_func", "must be \"softmax\" or \"sigmoid\", got \"" + scoring + "\"");
  }
  KUBEMOE_RETURN_IF_ERROR(f.String("hidden_act", &c->hidden_act));
  if (c->hidden_act != "silu") {
    return f.Error("hidden_act", "must be \"silu\" (SwiGLU experts), got \"" + c->hidden_act + "\"");
  }
  KUBEMOE_RETURN_IF_ERROR(f.Int("max_position_embeddings", &c->max_position_embeddings, 1,
                                std::numeric_limits<int64_t>::max()));
  KUBEMOE_RETURN_IF_ERROR(f.Double("initializer_range", &c->initializer_range, 0.0, 1e3));
  KUBEMOE_RETURN_IF_ERROR(f.Double("rms_norm_eps", &c->rms_norm_eps, 0.0, 1.0));
  KUBEMOE_RETURN_IF_ERROR(ReadTokenId(f, "bos_token_id", &c->bos_token_id));
  KUBEMOE_RETURN_IF_ERROR(
      ReadTokenId(f, "eos_token_id", &c->eos_token_id, &c->extra_eos_token_ids));
  KUBEMOE_RETURN_IF_ERROR(ReadTokenId(f, "pad_token_id", &c->pad_token_id));
  KUBEMOE_RETURN_IF_ERROR(f.Bool("tie_word_embeddings", &c->tie_word_embeddings));
  KUBEMOE_RETURN_IF_ERROR(config_internal::ReadRope(f, c));  // after max_position_embeddings
  KUBEMOE_RETURN_IF_ERROR(f.Bool("attention_bias", &c->attention_bias));
  KUBEMOE_RETURN_IF_ERROR(ReadDtype(f, &c->torch_dtype));
  return RefuseUnimplemented(f);
}

std::string FieldError(const ModelConfig& c, const std::string& field, const std::string& problem) {
  return c.source + ": field \"" + field + "\" " + problem;
}

}  // namespace

bool ModelConfig::IsEosToken(int64_t token) const {
  if (eos_token_id && token == *eos_token_id) return true;
  return std::find(extra_eos_token_ids.begin(), extra_eos_token_ids.end(), token) !=
         extra_eos_token_ids.end();
}

bool ModelConfig::IsMoeLayer(int64_t layer) const {
  return is_moe() && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
}

int64_t ModelConfig::NumMoeLayers() const {
  int64_t count = 0;
  for (int64_t layer = 0; layer < num_hidden_layers; ++layer) count += IsMoeLayer(layer) ? 1 : 0;
  return count;
}

Status ValidateModelConfig(const ModelConfig& c) {
  if (c.is_moe()) {
    if (c.num_experts_per_tok < 1 || c.num_experts_per_tok > c.n_routed_experts) {
      return InvalidArgument(FieldError(
          c, "num_experts_per_tok",
          "must be in [1, n_routed_experts=" + std::to_string(c.n_routed_experts) + "], got " +
              std::to_string(c.num_experts_per_tok)));
    }
    if (c.topk_method == TopkMethod::kGroupLimitedGreedy) {
      if (c.n_routed_experts % c.n_group != 0) {
        return InvalidArgument(FieldError(c, "n_group",
                                          "must divide n_routed_experts=" +
                                              std::to_string(c.n_routed_experts) + ", got " +
                                              std::to_string(c.n_group)));
      }
      if (c.topk_group > c.n_group) {
        return InvalidArgument(FieldError(c, "topk_group",
                                          "must be <= n_group=" + std::to_string(c.n_group) +
                                              ", got " + std::to_string(c.topk_group)));
      }
      const int64_t reachable = c.topk_group * (c.n_routed_experts / c.n_group);
      if (reachable < c.num_experts_per_tok) {
        return InvalidArgument(FieldError(
            c, "topk_group",
            "keeps " + std::to_string(reachable) + " experts, fewer than num_experts_per_tok=" +
                std::to_string(c.num_experts_per_tok)));
      }
    }
  }
  if (c.rope_scaling && c.qk_rope_head_dim == 0) {
    return InvalidArgument(FieldError(c, "rope_scaling", "is set but qk_rope_head_dim is 0"));
  }
  if (c.qk_rope_head_dim % 2 != 0) {
    return InvalidArgument(FieldError(c, "qk_rope_head_dim",
                                      "must be even (RoPE rotates pairs), got " +
                                          std::to_string(c.qk_rope_head_dim)));
  }
  if (c.q_head_dim() == 0) {
    return InvalidArgument(FieldError(c, "qk_nope_head_dim", "and qk_rope_head_dim are both 0"));
  }
  for (int64_t id : c.extra_eos_token_ids) {
    if (id >= c.vocab_size) {
      return InvalidArgument(FieldError(c, "eos_token_id",
                                        "must be < vocab_size=" + std::to_string(c.vocab_size) +
                                            ", got " + std::to_string(id)));
    }
  }
  for (const auto& [name, id] : {std::pair{"bos_token_id", c.bos_token_id},
                                 std::pair{"eos_token_id", c.eos_token_id},
                                 std::pair{"pad_token_id", c.pad_token_id}}) {
    if (id && *id >= c.vocab_size) {
      return InvalidArgument(FieldError(c, name,
                                        "must be < vocab_size=" + std::to_string(c.vocab_size) +
                                            ", got " + std::to_string(*id)));
    }
  }
  return Status::Ok();
}

StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view source) {
  ModelConfig config;
  config.source = std::string(source);
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {  // parse errors, and numbers too large for a double
    return InvalidArgument(config.source + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) return InvalidArgument(config.source + ": must hold a JSON object");
  FieldReader fields(root, config.source);
  std::string model_type;
  KUBEMOE_RETURN_IF_ERROR(fields.String("model_type", &model_type));
  if (model_type != "deepseek_v2") {
    return InvalidArgument(config.source + ": field \"model_type\" must be \"deepseek_v2\", got \"" +
                           model_type + "\"");
  }
  try {
    KUBEMOE_RETURN_IF_ERROR(ReadFields(fields, &config));
  } catch (const json::exception& e) {  // defensive: a type we did not anticipate
    return InvalidArgument(config.source + ": " + e.what());
  }
  KUBEMOE_RETURN_IF_ERROR(ValidateModelConfig(config));
  return config;
}

StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  std::string file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    // A directory opens as a stream on Linux and then reads as nothing: say what is missing.
    file += "/config.json";
    if (!std::filesystem::exists(file, ec)) {
      return NotFound(path + " has no config.json (a model directory needs the Hugging Face "
                             "config.json next to its *.safetensors)");
    }
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return NotFound(file + ": cannot open config (expected a config.json or its directory)");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return DataLoss(file + ": read error");
  return ParseModelConfig(text.str(), file);
}

std::string ModelConfigToJson(const ModelConfig& c) {
  auto nullable = [](int64_t v) { return v == 0 ? json(nullptr) : json(v); };
  auto optional = [](const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); };
  json j = {
      {"architectures", {"DeepseekV2ForCausalLM"}},
      {"model_type", "deepseek_v2"},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"moe_intermediate_size", c.moe_intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"n_routed_experts", nullable(c.n_routed_experts)},
      {"n_shared_experts", nullable(c.n_shared_experts)},
      {"num_experts_per_tok", nullable(c.num_experts_per_tok)},
      {"ep_size", c.ep_size},
      {"routed_scaling_factor", c.routed_scaling_factor},
      {"kv_lora_rank", c.kv_lora_rank},
      {"q_lora_rank", optional(c.q_lora_rank)},
      {"qk_rope_head_dim", c.qk_rope_head_dim},
      {"v_head_dim", c.v_head_dim},
      {"qk_nope_head_dim", c.qk_nope_head_dim},
      {"topk_method", c.topk_method_name},
      {"n_group", c.n_group},
      {"topk_group", c.topk_group},
      {"moe_layer_freq", c.moe_layer_freq},
      {"first_k_dense_replace", c.first_k_dense_replace},
      {"norm_topk_prob", c.norm_topk_prob},
      {"scoring_func", c.scoring_func == ScoringFunc::kSoftmax ? "softmax" : "sigmoid"},
      {"hidden_act", c.hidden_act},
      {"max_position_embeddings", c.max_position_embeddings},
      {"initializer_range", c.initializer_range},
      {"rms_norm_eps", c.rms_norm_eps},
      {"bos_token_id", optional(c.bos_token_id)},
      {"eos_token_id", c.eos_token_id && !c.extra_eos_token_ids.empty()
                           ? [&] {
                               json ids = json::array({*c.eos_token_id});
                               for (int64_t id : c.extra_eos_token_ids) ids.push_back(id);
                               return ids;
                             }()
                           : optional(c.eos_token_id)},
      {"pad_token_id", optional(c.pad_token_id)},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"rope_theta", c.rope_theta},
      {"attention_bias", c.attention_bias},
      {"attention_dropout", 0.0},
      {"use_cache", true},
  };
  if (c.rope_scaling) {
    const YarnScaling& y = *c.rope_scaling;
    j["rope_scaling"] = {{"type", "yarn"},
                         {"factor", y.factor},
                         {"original_max_position_embeddings", y.original_max_position_embeddings},
                         {"beta_fast", y.beta_fast},
                         {"beta_slow", y.beta_slow},
                         {"mscale", y.mscale},
                         {"mscale_all_dim", y.mscale_all_dim}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  if (!c.torch_dtype.empty()) j["torch_dtype"] = c.torch_dtype;
  return j.dump(2) + "\n";
}

}  // namespace kubemoe
