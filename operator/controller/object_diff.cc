#include "operator/controller/object_diff.h"

#include <nlohmann/json.hpp>

#include "operator/k8s/quantity.h"

namespace kubemoe::op {
namespace {

bool IsEmpty(const nlohmann::json& v) {
  return v.is_null() || ((v.is_object() || v.is_array()) && v.empty());
}

// Where a value sits, as far as quantities go.
enum class Context { kPlain, kQuantityMap, kQuantity };

// The context of the value under `key` in an object whose own context is `parent` and which was
// reached through `parent_key`. The quantity fields of the kinds we write: core/v1
// ResourceRequirements (containers, PVC templates), PodSpec.overhead, EmptyDirVolumeSource.sizeLimit.
Context ChildContext(Context parent, const std::string& parent_key, const std::string& key) {
  if (parent == Context::kQuantityMap) return Context::kQuantity;
  if (parent_key == "resources" && (key == "limits" || key == "requests")) return Context::kQuantityMap;
  if (key == "overhead") return Context::kQuantityMap;
  if (key == "sizeLimit") return Context::kQuantity;
  return Context::kPlain;
}

StatusOr<k8s::Quantity> QuantityOf(const nlohmann::json& v, const char* side) {
  std::string text = v.is_string() ? v.get<std::string>() : v.dump();
  StatusOr<k8s::Quantity> q = k8s::Quantity::Parse(text);
  if (!q.ok()) return InvalidArgument(std::string(side) + " " + q.status().message());
  return q;
}

// Compares; on a difference or an error, *path (when not null) is the path below this value.
StatusOr<bool> Subset(const nlohmann::json& desired, const nlohmann::json& live, std::string* path,
                      Context context, const std::string& key) {
  if (desired.is_object()) {
    if (!live.is_object()) return false;
    for (const auto& [child_key, value] : desired.items()) {
      auto it = live.find(child_key);
      if (it == live.end()) {
        if (IsEmpty(value)) continue;
        if (path) *path += "." + child_key;
        return false;
      }
      StatusOr<bool> same = Subset(value, *it, path, ChildContext(context, key, child_key), child_key);
      if (!same.ok() || !*same) {
        if (path) *path = "." + child_key + *path;
        return same;
      }
    }
    return true;
  }
  if (desired.is_array()) {
    if (!live.is_array() || live.size() != desired.size()) return false;
    for (size_t i = 0; i < desired.size(); ++i) {
      StatusOr<bool> same = Subset(desired[i], live[i], path, Context::kPlain, key);
      if (!same.ok() || !*same) {
        if (path) *path = "[" + std::to_string(i) + "]" + *path;
        return same;
      }
    }
    return true;
  }
  if (context == Context::kQuantity && (desired.is_string() || desired.is_number())) {
    StatusOr<k8s::Quantity> want = QuantityOf(desired, "desired");
    if (!want.ok()) return want.status();
    if (!live.is_string() && !live.is_number()) return false;
    StatusOr<k8s::Quantity> have = QuantityOf(live, "live");
    if (!have.ok()) return have.status();
    return *want == *have;
  }
  // nlohmann compares integers and floats numerically.
  return desired == live;
}

}  // namespace

StatusOr<bool> IsSemanticSubset(const nlohmann::json& desired, const nlohmann::json& live,
                                std::string* where) {
  std::string path;
  StatusOr<bool> same = Subset(desired, live, &path, Context::kPlain, "");
  if (!same.ok()) {
    return InvalidArgument("at " + (path.empty() ? std::string(".") : path) + ": " +
                           same.status().message());
  }
  if (!*same && where) *where = path.empty() ? "." : path;
  return same;
}

}  // namespace kubemoe::op
