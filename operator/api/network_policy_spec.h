// spec.networkPolicy of a MoEModel: parsing (internal to operator/api; moemodel.cc calls it).
#pragma once

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "operator/api/moemodel.h"

namespace kubemoe::op::internal {

// Reads spec.networkPolicy into `out`, filling the CRD's defaults (enabled true; metricsFrom
// every pod in every namespace when absent or null; an explicit [] stays empty = no one).
// Checks what the CRD checks: each metricsFrom item is a networking.k8s.io/v1 NetworkPolicyPeer
// with at least one of podSelector, namespaceSelector, ipBlock, and ipBlock alone; selectors are
// LabelSelectors (matchExpressions operators In and NotIn with values, Exists and DoesNotExist
// without); ipBlock has a cidr. Not checked here (the API server then refuses the apply, and the
// reconciler logs and retries it): label and CIDR syntax.
// Keeps only the fields the CRD schema knows (the API server prunes the rest), so the peers can be
// copied into the NetworkPolicy as they are. Errors are InvalidArgument naming the field path.
Status ParseNetworkPolicySpec(const nlohmann::json& spec, NetworkPolicySpec& out);

}  // namespace kubemoe::op::internal
