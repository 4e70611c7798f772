// REST paths of Kubernetes resources: /api/v1/... for the core group, /apis/GROUP/VERSION/...
// for the others, with or without a namespace, and the resources the operator touches.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kubemoe::k8s {

struct Resource {
  std::string group;    // "" for the core group
  std::string version;  // "v1"
  std::string plural;   // "configmaps"
  std::string kind;     // "ConfigMap"
  bool namespaced = true;

  // "v1" or "apps/v1".
  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }
};

// The collection: /api/v1/namespaces/NS/configmaps, or /api/v1/configmaps when `ns` is empty
// (all namespaces) or the resource is cluster-scoped.
std::string CollectionPath(const Resource& resource, std::string_view ns);
// One object, optionally a subresource: .../configmaps/NAME[/status].
std::string ObjectPath(const Resource& resource, std::string_view ns, std::string_view name,
                       std::string_view subresource = "");

// The resources the operator reads and writes.
const Resource& MoEModels();
const Resource& ConfigMaps();
const Resource& Services();
const Resource& Events();
const Resource& StatefulSets();
const Resource& Deployments();
const Resource& PodDisruptionBudgets();
const Resource& NetworkPolicies();
const Resource& Leases();

// The resource of an object with this apiVersion and kind, among those above; nullopt otherwise.
std::optional<Resource> ResourceFor(std::string_view api_version, std::string_view kind);

}  // namespace kubemoe::k8s
