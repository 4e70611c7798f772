// Line-oriented driver of op::ParseMoEModel for tests/py/crd_cel_test.py, which compares its
// verdicts with the CRD's schema and CEL rules.
//
// Usage: moemodel_check_main < lines
// Each stdin line is one MoEModel object as JSON; each answer is one stdout line:
//   {"ok": true}  or  {"ok": false, "error": "<the Status message>"}
// A line that is not JSON is an error on stderr with exit status 1.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "operator/api/moemodel.h"

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    nlohmann::json object = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (object.is_discarded()) {
      std::fprintf(stderr, "not JSON: %s\n", line.c_str());
      return 1;
    }
    kubemoe::StatusOr<kubemoe::op::MoEModel> parsed = kubemoe::op::ParseMoEModel(object);
    nlohmann::json answer = {{"ok", parsed.ok()}};
    if (!parsed.ok()) answer["error"] = parsed.status().ToString();
    std::cout << answer.dump(-1, ' ', /*ensure_ascii=*/true,
                             nlohmann::json::error_handler_t::replace)
              << '\n';
  }
  std::cout << std::flush;
  return 0;
}
