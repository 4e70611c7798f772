// Builders for the child objects of a MoEModel (internal to operator/api). Each returns one
// complete object; ComputeDesiredState (reconcile.h) puts them in apply order.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "operator/api/reconcile.h"

namespace kubemoe::op::internal {

// metadata with name, namespace, the standard labels for `component` and the controller owner
// reference to `model`.
nlohmann::json ChildMetadata(const MoEModel& model, const std::string& name,
                             const std::string& component);
// The labels that select a component's pods (instance + component).
nlohmann::json SelectorLabels(const MoEModel& model, const std::string& component);

nlohmann::json PlacementConfigMap(const MoEModel& model, const placement::Placement& placement);
nlohmann::json WorkerService(const MoEModel& model);
nlohmann::json WorkerStatefulSet(const MoEModel& model, uint64_t placement_version);
nlohmann::json WorkerDisruptionBudget(const MoEModel& model);
nlohmann::json RouterDeployment(const MoEModel& model, uint64_t placement_version);
nlohmann::json RouterService(const MoEModel& model);
// Ingress to the expert-shard pods: the gRPC port from this model's router pods only (with NCCL,
// every port from its router and worker pods: NCCL's bootstrap and socket transport use ephemeral
// ports); the metrics port from spec.networkPolicy.metricsFrom (no rule when that is empty).
// REQUIRES: spec.network_policy.enabled.
nlohmann::json WorkerNetworkPolicy(const MoEModel& model);

// Pod-spec pieces shared by workers and router: the model and placement volumes and mounts,
// scheduling constraints, the restricted security settings and no service-account token.
void AddCommonPodSpec(const MoEModel& model, nlohmann::json& pod_spec, nlohmann::json& container);
// With spec.tls: mounts the Secret read-only at kTlsMountPath and adds `flag`=kTlsMountPath to
// the container's args (--tls-dir for workers, --expert-tls-dir for the router). No-op without.
void AddTls(const MoEModel& model, nlohmann::json& pod_spec, nlohmann::json& container,
            const std::string& flag);

// Where the volumes are mounted inside the containers.
inline constexpr char kModelMountPath[] = "/models";
inline constexpr char kPlacementMountPath[] = "/etc/kubemoe/placement";
inline constexpr char kTlsMountPath[] = "/etc/kubemoe/tls";  // spec.tls.secretName

}  // namespace kubemoe::op::internal
