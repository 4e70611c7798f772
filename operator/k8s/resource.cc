#include "operator/k8s/resource.h"

namespace kubemoe::k8s {

// Paths are built by appending to one string: GCC 12 at -O3 reports a false -Wrestrict for
// `"literal" + std::string(...)` chains (GCC bug 105651), and Release builds must compile cleanly.
std::string CollectionPath(const Resource& resource, std::string_view ns) {
  std::string path = resource.group.empty() ? "/api" : "/apis/" + resource.group;
  path += '/';
  path += resource.version;
  if (resource.namespaced && !ns.empty()) {
    path += "/namespaces/";
    path += ns;
  }
  path += '/';
  path += resource.plural;
  return path;
}

std::string ObjectPath(const Resource& resource, std::string_view ns, std::string_view name,
                       std::string_view subresource) {
  std::string path = CollectionPath(resource, ns);
  path += '/';
  path += name;
  if (!subresource.empty()) {
    path += '/';
    path += subresource;
  }
  return path;
}

const Resource& MoEModels() {
  static const Resource r{"kubemoe.io", "v1alpha1", "moemodels", "MoEModel", true};
  return r;
}
const Resource& ConfigMaps() {
  static const Resource r{"", "v1", "configmaps", "ConfigMap", true};
  return r;
}
const Resource& Services() {
  static const Resource r{"", "v1", "services", "Service", true};
  return r;
}
const Resource& Events() {
  static const Resource r{"", "v1", "events", "Event", true};
  return r;
}
const Resource& StatefulSets() {
  static const Resource r{"apps", "v1", "statefulsets", "StatefulSet", true};
  return r;
}
const Resource& Deployments() {
  static const Resource r{"apps", "v1", "deployments", "Deployment", true};
  return r;
}
const Resource& PodDisruptionBudgets() {
  static const Resource r{"policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true};
  return r;
}
const Resource& NetworkPolicies() {
  static const Resource r{"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true};
  return r;
}
const Resource& Leases() {
  static const Resource r{"coordination.k8s.io", "v1", "leases", "Lease", true};
  return r;
}

std::optional<Resource> ResourceFor(std::string_view api_version, std::string_view kind) {
  for (const Resource* r : {&MoEModels(), &ConfigMaps(), &Services(), &Events(), &StatefulSets(),
                            &Deployments(), &PodDisruptionBudgets(), &NetworkPolicies(),
                            &Leases()}) {
    if (r->kind == kind && r->ApiVersion() == api_version) return *r;
  }
  return std::nullopt;
}

}  // namespace kubemoe::k8s
