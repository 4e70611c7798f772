// Fuzzes the chat template interpreter (router/jinja_template.h): any template text must compile
// or be refused with InvalidArgument, and any compiled template must render or fail cleanly
// within its output and step budgets, never crash or hang.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "router/jinja_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view source(reinterpret_cast<const char*>(data), size);
  auto compiled = kubemoe::router::JinjaTemplate::Compile(source);
  if (!compiled.ok()) {
    if (compiled.status().code() != kubemoe::StatusCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  static const nlohmann::json* context =
      new nlohmann::json{{"messages",
                          {{{"role", "system"}, {"content", "S"}},
                           {{"role", "user"}, {"content", "ünï ✓"}},
                           {{"role", "assistant"}, {"content", ""}}}},
                         {"add_generation_prompt", true},
                         {"bos_token", "<s>"},
                         {"eos_token", "</s>"},
                         {"n", 3},
                         {"none_value", nullptr},
                         {"items", {1, "two", false}}};
  auto out = compiled->Render(*context, /*max_output_bytes=*/1 << 16);
  if (out.ok() && out->size() > (1u << 16)) __builtin_trap();
  return 0;
}
