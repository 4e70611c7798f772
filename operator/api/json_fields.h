// Checked reads of JSON fields with errors naming the field path ("spec.experts.shards ...").
// Internal to operator/api; includes nlohmann/json.hpp, so only .cc files include it.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace kubemoe::op::internal {

// The object at `parent[key]`: missing or null gives an empty object; a non-object is an error.
StatusOr<const nlohmann::json*> Object(const nlohmann::json& parent, const std::string& key,
                                       const std::string& path);

// Integer field in [lo, hi]; missing or null keeps `out` (the default).
Status Int(const nlohmann::json& parent, const std::string& key, const std::string& path,
           int64_t lo, int64_t hi, int64_t& out);
Status Int32(const nlohmann::json& parent, const std::string& key, const std::string& path,
             int32_t lo, int32_t hi, int32_t& out);
// Required integer field in [lo, hi].
Status RequiredInt32(const nlohmann::json& parent, const std::string& key, const std::string& path,
                     int32_t lo, int32_t hi, int32_t& out);

// String field; missing or null keeps `out`.
Status String(const nlohmann::json& parent, const std::string& key, const std::string& path,
              std::string& out);

// Map of string to string; missing or null leaves `out` empty.
Status StringMap(const nlohmann::json& parent, const std::string& key, const std::string& path,
                 std::map<std::string, std::string>& out);

}  // namespace kubemoe::op::internal
