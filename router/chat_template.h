// Chat prompts for /v1/chat/completions: the model's own chat template from
// `tokenizer_config.json` when the model directory has one, else DeepSeek-V2-Chat's format.
//
// The template is rendered as Hugging Face transformers' apply_chat_template renders it (see
// router/jinja_template.h for the supported Jinja subset), with the variables
//   messages               the request's messages: [{"role": ..., "content": "..."}, ...]
//   add_generation_prompt  true unless the request asks otherwise
//   bos_token, eos_token   and unk_token / pad_token / sep_token / cls_token / mask_token where
//                          tokenizer_config.json names them (a string or {"content": "..."})
//   tools, documents       null (tools are not supported)
// The rendered text already contains the BOS token, so the HTTP layer tokenizes it without
// adding special tokens again (as vLLM does for chat requests).
//
// Default (kDefaultChatTemplate, DeepSeek-V2-Chat's own template), for messages
// system S, user U1, assistant A1, user U2 and add_generation_prompt:
//   "<bos>S\n\nUser: U1\n\nAssistant: A1<eos>User: U2\n\nAssistant:"
// i.e. a system message is its plain text followed by "\n\n", a user message is
// "User: " + text + "\n\n", an assistant message "Assistant: " + text + eos, messages with other
// roles are left out, and the generation prompt is "Assistant:" (no trailing space).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"
#include "model/tokenizer.h"
#include "router/jinja_template.h"

namespace kubemoe::router {

// DeepSeek-V2-Chat's and DeepSeek-V2-Lite-Chat's `chat_template`, verbatim.
inline constexpr char kDefaultChatTemplate[] =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}"
    "{% endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}"
    "{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ 'Assistant:' }}{% endif %}";

class ChatTemplate {
 public:
  // Reads `model_dir`/tokenizer_config.json when it exists (FromTokenizerConfig), else returns
  // the default template with BOS/EOS spelled as `tokenizer` names them (empty when it has none).
  static StatusOr<ChatTemplate> FromModelDir(const std::string& model_dir,
                                             const Tokenizer& tokenizer);

  // Parses tokenizer_config.json text. Its `chat_template` may be a string or a list of
  // {"name", "template"} (the one named "default" is used); without one the default template is
  // used. BOS/EOS come from the config's bos_token/eos_token, else from `tokenizer` (may be
  // null). InvalidArgument prefixed with `source_name` on malformed JSON, a field of the wrong
  // type, or a template outside the supported subset.
  static StatusOr<ChatTemplate> FromTokenizerConfig(std::string_view json_text,
                                                    std::string_view source_name,
                                                    const Tokenizer* tokenizer);

  // A template from source text with the given special tokens.
  static StatusOr<ChatTemplate> FromSource(std::string_view source, std::string bos_token,
                                           std::string eos_token);

  // Renders `messages` (a JSON array of objects with a string "role" and "content").
  // InvalidArgument when the template raises (e.g. roles that do not alternate) or needs
  // something unsupported; the message is the template's own.
  StatusOr<std::string> Render(const nlohmann::json& messages, bool add_generation_prompt) const;

  const std::string& bos_token() const;
  const std::string& eos_token() const;
  bool is_default() const { return is_default_; }

 private:
  ChatTemplate(JinjaTemplate compiled, nlohmann::json variables, bool is_default)
      : compiled_(std::move(compiled)), variables_(std::move(variables)), is_default_(is_default) {}

  JinjaTemplate compiled_;
  nlohmann::json variables_;  // special tokens and the other fixed variables
  bool is_default_;
};

}  // namespace kubemoe::router
