// chat_template_main CASES.json: renders chat templates with kubemoe's Jinja subset and prints
// the results, so tests/py/chat_template_test.py can compare them byte for byte with Python's
// jinja2 (as transformers configures it).
//
// CASES.json: {"cases": [case, ...]} where a case is either
//   {"template": "...", "context": {...}}                  rendered by JinjaTemplate directly, or
//   {"tokenizer_config": {...}, "messages": [...], "add_generation_prompt": true}
//                                                         rendered through ChatTemplate.
// Output: one JSON array, per case {"ok": true, "output": "..."} or {"ok": false, "error": "..."},
// ASCII-escaped so every byte survives. Exit status 2 on a malformed CASES.json.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "router/chat_template.h"
#include "router/jinja_template.h"

using nlohmann::json;
namespace router = kubemoe::router;

namespace {

json Result(const kubemoe::StatusOr<std::string>& rendered) {
  if (rendered.ok()) return {{"ok", true}, {"output", *rendered}};
  return {{"ok", false}, {"error", rendered.status().message()}};
}

json RunCase(const json& c) {
  if (c.contains("template")) {
    auto compiled = router::JinjaTemplate::Compile(c.at("template").get<std::string>());
    if (!compiled.ok()) return Result(compiled.status());
    return Result(compiled->Render(c.value("context", json::object())));
  }
  auto chat = router::ChatTemplate::FromTokenizerConfig(c.at("tokenizer_config").dump(),
                                                        "tokenizer_config.json", nullptr);
  if (!chat.ok()) return Result(chat.status());
  return Result(chat->Render(c.at("messages"), c.value("add_generation_prompt", true)));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: chat_template_main CASES.json\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  json spec = json::parse(text.str(), nullptr, false);
  if (spec.is_discarded() || !spec.contains("cases") || !spec["cases"].is_array()) {
    std::cerr << "malformed cases file\n";
    return 2;
  }
  json results = json::array();
  try {
    for (const auto& c : spec["cases"]) results.push_back(RunCase(c));
  } catch (const json::exception& e) {
    std::cerr << "malformed case: " << e.what() << "\n";
    return 2;
  }
  std::cout << results.dump(-1, ' ', /*ensure_ascii=*/true) << "\n";
  return 0;
}
