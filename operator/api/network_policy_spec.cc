// ParseNetworkPolicySpec: spec.networkPolicy, checked as operator/crd/ checks it (keep in step).
#include "operator/api/network_policy_spec.h"

#include <map>
#include <string>

#include "operator/api/json_fields.h"

namespace kubemoe::op::internal {

using nlohmann::json;

namespace {

// Item limits, as the CRD's maxItems.
constexpr size_t kMaxPeers = 32;
constexpr size_t kMaxExpressions = 32;
constexpr size_t kMaxValues = 64;
constexpr size_t kMaxExcept = 32;

// A list of strings at parent[key] (absent or null: not set); at most `max` items.
StatusOr<json> StringList(const json& parent, const std::string& key, const std::string& path,
                          size_t max) {
  const json& list = parent[key];
  const std::string field = path + "." + key;
  if (!list.is_array()) return InvalidArgument(field + " must be a list of strings");
  if (list.size() > max) {
    return InvalidArgument(field + " has more than " + std::to_string(max) + " items");
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_string()) {
      return InvalidArgument(field + "[" + std::to_string(i) + "] must be a string");
    }
  }
  return list;
}

bool Has(const json& object, const char* key) {
  return object.contains(key) && !object[key].is_null();
}

// A meta/v1 LabelSelector, pruned to matchLabels and matchExpressions.
StatusOr<json> LabelSelector(const json& selector, const std::string& path) {
  if (!selector.is_object()) return InvalidArgument(path + " must be an object");
  json out = json::object();
  if (Has(selector, "matchLabels")) {
    std::map<std::string, std::string> labels;
    KUBEMOE_RETURN_IF_ERROR(StringMap(selector, "matchLabels", path, labels));
    out["matchLabels"] = labels;
  }
  if (Has(selector, "matchExpressions")) {
    const json& list = selector["matchExpressions"];
    const std::string field = path + ".matchExpressions";
    if (!list.is_array()) return InvalidArgument(field + " must be a list");
    if (list.size() > kMaxExpressions) {
      return InvalidArgument(field + " has more than " + std::to_string(kMaxExpressions) + " items");
    }
    json expressions = json::array();
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string item = field + "[" + std::to_string(i) + "]";
      if (!list[i].is_object()) return InvalidArgument(item + " must be an object");
      std::string key, op;
      KUBEMOE_RETURN_IF_ERROR(String(list[i], "key", item, key));
      KUBEMOE_RETURN_IF_ERROR(String(list[i], "operator", item, op));
      if (key.empty()) return InvalidArgument(item + ".key is required");
      if (op != "In" && op != "NotIn" && op != "Exists" && op != "DoesNotExist") {
        return InvalidArgument(item + ".operator must be In, NotIn, Exists or DoesNotExist, got \"" +
                               op + "\"");
      }
      json expression = {{"key", key}, {"operator", op}};
      if (Has(list[i], "values")) {
        StatusOr<json> values = StringList(list[i], "values", item, kMaxValues);
        if (!values.ok()) return values.status();
        expression["values"] = *values;
      }
      const bool has_values = expression.contains("values") && !expression["values"].empty();
      if ((op == "In" || op == "NotIn") != has_values) {
        return InvalidArgument(item + ": In and NotIn need values; Exists and DoesNotExist take none");
      }
      expressions.push_back(std::move(expression));
    }
    out["matchExpressions"] = std::move(expressions);
  }
  return out;
}

// A networking.k8s.io/v1 NetworkPolicyPeer, pruned to the fields the CRD knows.
StatusOr<json> Peer(const json& peer, const std::string& path) {
  if (!peer.is_object()) return InvalidArgument(path + " must be an object");
  json out = json::object();
  for (const char* key : {"podSelector", "namespaceSelector"}) {
    if (!Has(peer, key)) continue;
    StatusOr<json> selector = LabelSelector(peer[key], path + "." + key);
    if (!selector.ok()) return selector.status();
    out[key] = *selector;
  }
  if (Has(peer, "ipBlock")) {
    const json& block = peer["ipBlock"];
    const std::string field = path + ".ipBlock";
    if (!block.is_object()) return InvalidArgument(field + " must be an object");
    std::string cidr;
    KUBEMOE_RETURN_IF_ERROR(String(block, "cidr", field, cidr));
    if (cidr.empty()) return InvalidArgument(field + ".cidr is required");
    json ip = {{"cidr", cidr}};
    if (Has(block, "except")) {
      StatusOr<json> except = StringList(block, "except", field, kMaxExcept);
      if (!except.ok()) return except.status();
      ip["except"] = *except;
    }
    out["ipBlock"] = std::move(ip);
  }
  // The CRD's two CEL rules on a peer.
  if (out.empty()) {
    return InvalidArgument(path + " must set podSelector, namespaceSelector or ipBlock");
  }
  if (out.contains("ipBlock") && out.size() > 1) {
    return InvalidArgument(path + ": ipBlock cannot be combined with podSelector or namespaceSelector");
  }
  return out;
}

}  // namespace

Status ParseNetworkPolicySpec(const json& spec, NetworkPolicySpec& out) {
  StatusOr<const json*> policy = Object(spec, "networkPolicy", "spec");
  if (!policy.ok()) return policy.status();
  const json& j = **policy;
  const std::string path = "spec.networkPolicy";
  if (Has(j, "enabled")) {
    if (!j["enabled"].is_boolean()) return InvalidArgument(path + ".enabled must be a boolean");
    out.enabled = j["enabled"].get<bool>();
  }
  if (Has(j, "metricsFrom")) {
    const json& list = j["metricsFrom"];
    if (!list.is_array()) return InvalidArgument(path + ".metricsFrom must be a list");
    if (list.size() > kMaxPeers) {
      return InvalidArgument(path + ".metricsFrom has more than " + std::to_string(kMaxPeers) +
                             " items");
    }
    json peers = json::array();
    for (size_t i = 0; i < list.size(); ++i) {
      StatusOr<json> peer = Peer(list[i], path + ".metricsFrom[" + std::to_string(i) + "]");
      if (!peer.ok()) return peer.status();
      peers.push_back(std::move(*peer));
    }
    out.metrics_from_json = peers.dump();
  }
  return Status::Ok();
}

}  // namespace kubemoe::op::internal
