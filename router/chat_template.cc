#include "router/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace kubemoe::router {
namespace {

using nlohmann::json;

// The special-token variables transformers passes to a chat template (its special_tokens_map).
constexpr const char* kSpecialTokenNames[] = {"bos_token", "eos_token", "unk_token", "pad_token",
                                              "sep_token", "cls_token", "mask_token"};

// A tokenizer_config.json token: a string, {"content": "..."} (AddedToken), or null / absent.
Status ReadToken(const json& config, const std::string& name, std::string_view source,
                 std::optional<std::string>* out) {
  auto it = config.find(name);
  if (it == config.end() || it->is_null()) return Status::Ok();
  if (it->is_string()) {
    *out = it->get<std::string>();
    return Status::Ok();
  }
  if (it->is_object()) {
    auto content = it->find("content");
    if (content != it->end() && content->is_string()) {
      *out = content->get<std::string>();
      return Status::Ok();
    }
  }
  return InvalidArgument(std::string(source) + ": " + name +
                         " must be a string or an object with a string \"content\"");
}

std::string TokenSpelling(const Tokenizer* tokenizer, std::optional<int32_t> id) {
  if (!tokenizer || !id) return "";
  return tokenizer->TokenText(*id).value_or("");
}

}  // namespace

StatusOr<ChatTemplate> ChatTemplate::FromSource(std::string_view source, std::string bos_token,
                                                std::string eos_token) {
  auto compiled = JinjaTemplate::Compile(source);
  if (!compiled.ok()) return compiled.status();
  json variables = {{"bos_token", std::move(bos_token)}, {"eos_token", std::move(eos_token)}};
  return ChatTemplate(std::move(compiled).value(), std::move(variables),
                      source == kDefaultChatTemplate);
}

StatusOr<ChatTemplate> ChatTemplate::FromTokenizerConfig(std::string_view json_text,
                                                         std::string_view source_name,
                                                         const Tokenizer* tokenizer) {
  const std::string where(source_name);
  json config = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return InvalidArgument(where + ": not a JSON object");
  }
  json variables = json::object();
  for (const char* name : kSpecialTokenNames) {
    std::optional<std::string> token;
    KUBEMOE_RETURN_IF_ERROR(ReadToken(config, name, where, &token));
    if (token) variables[name] = *token;
  }
  if (!variables.contains("bos_token")) {
    variables["bos_token"] =
        TokenSpelling(tokenizer, tokenizer ? tokenizer->BosId() : std::nullopt);
  }
  if (!variables.contains("eos_token")) {
    variables["eos_token"] =
        TokenSpelling(tokenizer, tokenizer ? tokenizer->EosId() : std::nullopt);
  }

  std::string source = kDefaultChatTemplate;
  auto it = config.find("chat_template");
  if (it != config.end() && !it->is_null()) {
    if (it->is_string()) {
      source = it->get<std::string>();
    } else if (it->is_array()) {  // named templates: transformers uses "default" for chat
      bool found = false;
      for (const auto& entry : *it) {
        if (entry.is_object() && entry.value("name", json()) == "default" &&
            entry.contains("template") && entry["template"].is_string()) {
          source = entry["template"].get<std::string>();
          found = true;
        }
      }
      if (!found) return InvalidArgument(where + ": chat_template list has no \"default\" entry");
    } else {
      return InvalidArgument(where + ": chat_template must be a string or a list of templates");
    }
  }
  auto compiled = JinjaTemplate::Compile(source);
  if (!compiled.ok()) return InvalidArgument(where + ": " + compiled.status().message());
  return ChatTemplate(std::move(compiled).value(), std::move(variables),
                      source == kDefaultChatTemplate);
}

StatusOr<ChatTemplate> ChatTemplate::FromModelDir(const std::string& model_dir,
                                                  const Tokenizer& tokenizer) {
  std::filesystem::path path = std::filesystem::path(model_dir) / "tokenizer_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return FromSource(kDefaultChatTemplate, TokenSpelling(&tokenizer, tokenizer.BosId()),
                      TokenSpelling(&tokenizer, tokenizer.EosId()));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return NotFound(path.string() + ": cannot read");
  return FromTokenizerConfig(text.str(), path.string(), &tokenizer);
}

StatusOr<std::string> ChatTemplate::Render(const nlohmann::json& messages,
                                           bool add_generation_prompt) const {
  json context = variables_;
  context["messages"] = messages;
  context["add_generation_prompt"] = add_generation_prompt;
  context["tools"] = nullptr;
  context["documents"] = nullptr;
  return compiled_.Render(context);
}

const std::string& ChatTemplate::bos_token() const {
  return variables_.at("bos_token").get_ref<const std::string&>();
}
const std::string& ChatTemplate::eos_token() const {
  return variables_.at("eos_token").get_ref<const std::string&>();
}

}  // namespace kubemoe::router
