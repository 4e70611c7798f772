// Line-oriented driver of kubemoe::Tokenizer for tests/py/tokenizer_python_test.py.
//
// Usage: tokenize_main TOKENIZER_JSON
// Each stdin line is one JSON value; each answer is one stdout line:
//   "text"                                      -> [ids] (encoded with add_special_tokens)
//   {"text": "...", "add_special_tokens": b}    -> [ids]
//   {"ids": [...], "skip_special_tokens": b}    -> "decoded text"
// Errors go to stderr with exit status 1.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "model/tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s TOKENIZER_JSON < lines\n", argv[0]);
    return 2;
  }
  kubemoe::StatusOr<kubemoe::Tokenizer> tokenizer = kubemoe::Tokenizer::FromFile(argv[1]);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s\n", tokenizer.status().ToString().c_str());
    return 1;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    nlohmann::json request = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    nlohmann::json answer;
    if (request.is_string()) {
      answer = tokenizer->Encode(request.get<std::string>(), true);
    } else if (request.is_object() && request.contains("text") && request["text"].is_string()) {
      answer = tokenizer->Encode(request["text"].get<std::string>(),
                                 request.value("add_special_tokens", true));
    } else if (request.is_object() && request.contains("ids") && request["ids"].is_array()) {
      std::vector<int32_t> ids;
      for (const auto& id : request["ids"]) {
        if (!id.is_number_integer()) break;
        ids.push_back(id.get<int32_t>());
      }
      answer = tokenizer->Decode(ids, request.value("skip_special_tokens", false));
    } else {
      std::fprintf(stderr, "cannot understand input line: %s\n", line.c_str());
      return 1;
    }
    std::cout << answer.dump(-1, ' ', /*ensure_ascii=*/true,
                             nlohmann::json::error_handler_t::replace)
              << '\n'
              << std::flush;
  }
  return 0;
}
