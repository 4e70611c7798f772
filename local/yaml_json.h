// YAML documents as nlohmann::json, with YAML 1.2 core-schema scalars (what the Kubernetes API
// server accepts from kubectl): quoted scalars stay strings; plain true/false, null/~, integers
// and floats become JSON values.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace kubemoe::local {

// Parses one YAML document. InvalidArgument naming `source` and the position on a syntax error.
// Never throws.
StatusOr<nlohmann::json> YamlToJson(const std::string& text, const std::string& source);

}  // namespace kubemoe::local
