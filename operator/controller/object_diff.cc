#include "operator/controller/object_diff.h"

#include <nlohmann/json.hpp>

namespace kubemoe::op {
namespace {

bool IsEmpty(const nlohmann::json& v) {
  return v.is_null() || ((v.is_object() || v.is_array()) && v.empty());
}

bool Subset(const nlohmann::json& desired, const nlohmann::json& live, std::string* path) {
  if (desired.is_object()) {
    if (!live.is_object()) return false;
    for (const auto& [key, value] : desired.items()) {
      auto it = live.find(key);
      if (it == live.end()) {
        if (IsEmpty(value)) continue;
        if (path) *path += "." + key;
        return false;
      }
      if (!Subset(value, *it, path)) {
        if (path) *path = "." + key + *path;
        return false;
      }
    }
    return true;
  }
  if (desired.is_array()) {
    if (!live.is_array() || live.size() != desired.size()) return false;
    for (size_t i = 0; i < desired.size(); ++i) {
      if (!Subset(desired[i], live[i], path)) {
        if (path) *path = "[" + std::to_string(i) + "]" + *path;
        return false;
      }
    }
    return true;
  }
  if (desired.is_number() && live.is_number()) {
    // nlohmann compares integers and floats numerically.
    return desired == live;
  }
  return desired == live;
}

}  // namespace

bool IsSemanticSubset(const nlohmann::json& desired, const nlohmann::json& live, std::string* where) {
  std::string path;
  bool same = Subset(desired, live, where ? &path : nullptr);
  if (!same && where) *where = path.empty() ? "." : path;
  return same;
}

}  // namespace kubemoe::op
