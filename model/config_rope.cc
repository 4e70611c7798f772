#include "model/config_rope.h"

#include <algorithm>
#include <array>
#include <string>
#include <utility>
#include <vector>

namespace kubemoe::config_internal {
namespace {

// What one of the two dicts ("rope_scaling" or "rope_parameters") says.
struct RopeDict {
  std::optional<double> theta;      // its own "rope_theta", if it has one
  std::optional<YarnScaling> yarn;  // nullopt: rope type "default", plain RoPE
};

// Keys either dict may hold whatever its rope type.
constexpr std::array<std::string_view, 4> kCommonKeys = {"type", "rope_type", "rope_theta",
                                                         "partial_rotary_factor"};
// Keys only YaRN reads.
constexpr std::array<std::string_view, 8> kYarnKeys = {
    "factor",           "original_max_position_embeddings",
    "beta_fast",        "beta_slow",
    "mscale",           "mscale_all_dim",
    "attention_factor", "truncate"};

bool Contains(const auto& keys, const std::string& key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// A number as JSON writes it (shortest form that reads back the same), for messages.
std::string Number(double value) { return json(value).dump(); }

std::string Describe(const std::optional<YarnScaling>& yarn) {
  if (!yarn) return "plain RoPE";
  return "yarn factor " + Number(yarn->factor) + ", original_max_position_embeddings " +
         std::to_string(yarn->original_max_position_embeddings) + ", beta_fast " +
         Number(yarn->beta_fast) + ", beta_slow " + Number(yarn->beta_slow) + ", mscale " +
         Number(yarn->mscale) + ", mscale_all_dim " + Number(yarn->mscale_all_dim);
}

Status Disagree(std::string_view source, const std::string& a, const std::string& a_value,
                const std::string& b, const std::string& b_value) {
  return InvalidArgument(std::string(source) + ": fields \"" + a + "\" (" + a_value + ") and \"" +
                         b + "\" (" + b_value + ") disagree; keep one of them");
}

// The dict's rope type, from "type" (the original release, transformers 4) or "rope_type"
// (transformers >= 4.45 and 5, which keeps an old "type" beside it); the two must agree.
// `*key` is the key the type came from, for messages. Empty when neither is present.
Status ReadType(const FieldReader& dict, std::string* type, const char** key) {
  std::string old_type, rope_type;
  KUBEMOE_RETURN_IF_ERROR(dict.String("type", &old_type));
  KUBEMOE_RETURN_IF_ERROR(dict.String("rope_type", &rope_type));
  if (!old_type.empty() && !rope_type.empty() && old_type != rope_type) {
    return Disagree(dict.source(), dict.prefix() + "type", "\"" + old_type + "\"",
                    dict.prefix() + "rope_type", "\"" + rope_type + "\"");
  }
  *key = rope_type.empty() && !old_type.empty() ? "type" : "rope_type";
  *type = rope_type.empty() ? old_type : rope_type;
  return Status::Ok();
}

Status ReadYarn(const FieldReader& dict, int64_t default_original_max, YarnScaling* yarn) {
  // The original code and both transformers versions require factor; no default is safe.
  if (dict.Find("factor") == nullptr) return dict.Error("factor", "is required for YaRN");
  yarn->original_max_position_embeddings = default_original_max;
  KUBEMOE_RETURN_IF_ERROR(dict.Double("factor", &yarn->factor, 1.0, 1e6));
  KUBEMOE_RETURN_IF_ERROR(
      dict.Int("original_max_position_embeddings", &yarn->original_max_position_embeddings, 1));
  KUBEMOE_RETURN_IF_ERROR(dict.Double("beta_fast", &yarn->beta_fast, 0.0, 1e6));
  KUBEMOE_RETURN_IF_ERROR(dict.Double("beta_slow", &yarn->beta_slow, 0.0, 1e6));
  KUBEMOE_RETURN_IF_ERROR(dict.Double("mscale", &yarn->mscale, 0.0, 1e6));
  KUBEMOE_RETURN_IF_ERROR(dict.Double("mscale_all_dim", &yarn->mscale_all_dim, 0.0, 1e6));
  if (dict.Find("attention_factor") != nullptr) {
    return dict.Error("attention_factor",
                      "is not supported: the engine scales YaRN's cos/sin and attention from "
                      "mscale and mscale_all_dim, as DeepSeek-V2 does; an explicit "
                      "attention_factor would replace that");
  }
  bool truncate = true;
  KUBEMOE_RETURN_IF_ERROR(dict.Bool("truncate", &truncate));
  if (!truncate) {
    return dict.Error("truncate",
                      "must be true: the engine rounds YaRN's correction range to whole "
                      "dimensions, as DeepSeek-V2 does");
  }
  return Status::Ok();
}

// Reads root[name] when it is present and not null. `type_required`: whether a dict without
// "type"/"rope_type" is an error (rope_scaling: the original code reads its "type") or plain
// RoPE (rope_parameters: transformers 5 defaults rope_type to "default").
Status ReadDict(const FieldReader& root, const char* name, bool type_required,
                int64_t default_original_max, std::optional<RopeDict>* out) {
  const json* value = root.Find(name);
  if (value == nullptr || value->is_null()) return Status::Ok();
  if (!value->is_object()) return root.Error(name, "must be an object or null");
  json present = json::object();  // transformers reads these keys with .get(): null = absent
  for (const auto& [key, item] : value->items()) {
    if (!item.is_null()) present[key] = item;
  }
  FieldReader dict(present, root.source(), std::string(name) + ".");
  std::string type;
  const char* type_key = "rope_type";
  KUBEMOE_RETURN_IF_ERROR(ReadType(dict, &type, &type_key));
  if (type.empty()) {
    if (type_required) return dict.Error("type", "is required (\"yarn\" for DeepSeek-V2)");
    type = "default";
  }
  if (type != "yarn" && type != "default") {
    return dict.Error(type_key,
                      "must be \"yarn\" (the scaling DeepSeek-V2 uses) or \"default\" (plain "
                      "RoPE), got \"" +
                          type + "\"");
  }
  const bool yarn = type == "yarn";
  for (const auto& [key, item] : present.items()) {
    if (Contains(kCommonKeys, key) || (yarn && Contains(kYarnKeys, key))) continue;
    if (Contains(kYarnKeys, key)) {
      return dict.Error(key,
                        "is a YaRN setting but the rope type is \"default\"; set the type "
                        "to \"yarn\" or remove it");
    }
    return dict.Error(key,
                      "is not a RoPE setting the engine implements (it understands YaRN "
                      "and plain RoPE); refusing rather than ignoring it");
  }
  double partial_rotary_factor = 1.0;
  KUBEMOE_RETURN_IF_ERROR(dict.Double("partial_rotary_factor", &partial_rotary_factor, 0.0, 1.0));
  if (partial_rotary_factor != 1.0) {
    return dict.Error("partial_rotary_factor",
                      "must be 1 (DeepSeek-V2 rotates all qk_rope_head_dim dimensions), got " +
                          Number(partial_rotary_factor));
  }
  RopeDict result;
  if (dict.Find("rope_theta") != nullptr) {
    double theta = 0.0;
    KUBEMOE_RETURN_IF_ERROR(dict.Double("rope_theta", &theta, 1e-6, 1e12));
    result.theta = theta;
  }
  if (yarn) {
    YarnScaling scaling;
    KUBEMOE_RETURN_IF_ERROR(ReadYarn(dict, default_original_max, &scaling));
    result.yarn = scaling;
  }
  *out = std::move(result);
  return Status::Ok();
}

}  // namespace

Status ReadRope(const FieldReader& root, ModelConfig* c) {
  // A YaRN rope_scaling without original_max_position_embeddings takes the original code's
  // default (4096); transformers 5 fills a missing one from max_position_embeddings.
  std::optional<RopeDict> scaling, parameters;
  KUBEMOE_RETURN_IF_ERROR(ReadDict(root, "rope_scaling", /*type_required=*/true,
                                   YarnScaling{}.original_max_position_embeddings, &scaling));
  KUBEMOE_RETURN_IF_ERROR(ReadDict(root, "rope_parameters", /*type_required=*/false,
                                   c->max_position_embeddings, &parameters));
  if (scaling && parameters && scaling->yarn != parameters->yarn) {
    return Disagree(root.source(), "rope_scaling", Describe(scaling->yarn), "rope_parameters",
                    Describe(parameters->yarn));
  }

  std::vector<std::pair<std::string, double>> thetas;  // every place that states rope_theta
  if (root.Find("rope_theta") != nullptr) {
    double theta = 0.0;
    KUBEMOE_RETURN_IF_ERROR(root.Double("rope_theta", &theta, 1e-6, 1e12));
    thetas.emplace_back("rope_theta", theta);
  }
  if (scaling && scaling->theta) thetas.emplace_back("rope_scaling.rope_theta", *scaling->theta);
  if (parameters && parameters->theta) {
    thetas.emplace_back("rope_parameters.rope_theta", *parameters->theta);
  }
  for (size_t i = 1; i < thetas.size(); ++i) {
    if (thetas[i].second != thetas[0].second) {
      return Disagree(root.source(), thetas[0].first, Number(thetas[0].second), thetas[i].first,
                      Number(thetas[i].second));
    }
  }
  if (!thetas.empty()) c->rope_theta = thetas[0].second;
  c->rope_scaling.reset();
  if (parameters) {
    c->rope_scaling = parameters->yarn;
  } else if (scaling) {
    c->rope_scaling = scaling->yarn;
  }
  return Status::Ok();
}

}  // namespace kubemoe::config_internal
