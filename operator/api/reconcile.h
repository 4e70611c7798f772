// The declarative half of the operator: pure functions from a MoEModel (and what the informer
// caches saw) to the objects that should exist, the status to write and the Events to emit.
// The controller (operator/controller/) only diffs and applies what these return; nothing here
// talks to the API server, reads the clock or keeps state, so it is tested with golden files.
//
// Include <nlohmann/json.hpp> before using DesiredState::objects or ObservedChildren (this header
// only forward-declares nlohmann::json).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/status.h"
#include "operator/api/moemodel.h"  // struct MoEModel, ParseMoEModel
#include "placement/placement.h"

namespace kubemoe::op {

// Ports the router and workers listen on (flags are set from these in the pod templates).
inline constexpr int kRouterHttpPort = 8000;
inline constexpr int kWorkerGrpcPort = 50051;
inline constexpr int kWorkerMetricsPort = 9090;

// Label keys and values on every object the operator creates.
inline constexpr char kLabelName[] = "app.kubernetes.io/name";            // "kubemoe"
inline constexpr char kLabelInstance[] = "app.kubernetes.io/instance";    // metadata.name
inline constexpr char kLabelComponent[] = "app.kubernetes.io/component";  // see below
inline constexpr char kLabelManagedBy[] = "app.kubernetes.io/managed-by";
inline constexpr char kManagedBy[] = "kubemoe-operator";
inline constexpr char kComponentExperts[] = "expert-shard";
inline constexpr char kComponentRouter[] = "router";
inline constexpr char kComponentPlacement[] = "placement";
// Pod-template and ConfigMap annotation carrying the placement version (decimal): a change rolls
// the pods.
inline constexpr char kPlacementVersionAnnotation[] = "kubemoe.io/placement-version";
// ConfigMap keys.
inline constexpr char kPlacementFileKey[] = "placement.yaml";
inline constexpr char kPlacementVersionKey[] = "version";
// Field manager for server-side apply.
inline constexpr char kFieldManager[] = "kubemoe-operator";

// Child object names, derived from the MoEModel name.
std::string PlacementConfigMapName(const MoEModel& model);  // NAME-placement
std::string WorkerStatefulSetName(const MoEModel& model);   // NAME-experts (also headless Service, PDB)
std::string RouterDeploymentName(const MoEModel& model);    // NAME-router (also its Service)

// The scale subresource's label selector for the expert-shard pods, as a string:
// "app.kubernetes.io/instance=NAME,app.kubernetes.io/component=expert-shard".
std::string ExpertSelector(const MoEModel& model);

// router Service DNS name and port: "NAME-router.NAMESPACE.svc:8000".
std::string RouterEndpoint(const MoEModel& model);

// A child by apiVersion, kind and name (in the model's namespace).
struct ChildRef {
  std::string api_version;
  std::string kind;
  std::string name;
  bool operator==(const ChildRef&) const = default;
};

struct DesiredState {
  placement::Placement placement;
  // Complete objects (apiVersion, kind, metadata with labels and ownerReferences, spec) in this
  // order: ConfigMap NAME-placement, Service NAME-experts (headless), NetworkPolicy NAME-experts
  // (unless spec.networkPolicy.enabled is false), StatefulSet NAME-experts, PodDisruptionBudget
  // NAME-experts, Deployment NAME-router, Service NAME-router. Apply in order: the ConfigMap
  // exists before pods that mount it, the NetworkPolicy before the pods it guards.
  std::vector<nlohmann::json> objects;
  // Children that must not exist: the NetworkPolicy NAME-experts when spec.networkPolicy.enabled
  // is false. The reconciler deletes each one it finds that this model controls.
  std::vector<ChildRef> absent;
};

// Computes the placement and every child object for `model`. Pure: the same model gives the same
// bytes. Fails (InvalidArgument naming the spec field) when the placement cannot be computed,
// e.g. routing.deviceLimit too small for top-K. REQUIRES: model came from ParseMoEModel.
StatusOr<DesiredState> ComputeDesiredState(const MoEModel& model);

// What the informer caches hold for this model's workloads. Borrowed pointers into the caches;
// nullptr = not (yet) seen. Objects are as the API server returns them, status included.
struct ObservedChildren {
  const nlohmann::json* stateful_set = nullptr;  // StatefulSet NAME-experts
  const nlohmann::json* deployment = nullptr;    // Deployment NAME-router
};

// Condition types and phases.
inline constexpr char kConditionReady[] = "Ready";
inline constexpr char kConditionProgressing[] = "Progressing";
inline constexpr char kConditionDegraded[] = "Degraded";

// The status to write (the whole .status object). Pure. Kubernetes condition semantics:
// lastTransitionTime is copied from model.status when a condition's status did not change and is
// `now_rfc3339` otherwise; every condition carries reason, message and observedGeneration =
// metadata.generation.
//   Ready:       True when every shard is ready on the current placement version and the router
//                has >= 1 available replica.
//   Progressing: True while the StatefulSet or Deployment has not caught up with the desired
//                generation, replicas or placement version.
//   Degraded:    True when the workloads are up to date but fewer shards (or no router replicas)
//                are ready than desired; or when the desired state cannot be computed (pass the
//                error as `desired_error`, `desired` is then ignored).
// phase: Ready | Progressing | Degraded | Pending (no workloads observed yet).
nlohmann::json ComputeStatus(const MoEModel& model, const DesiredState& desired,
                             const ObservedChildren& observed, const std::string& now_rfc3339,
                             const Status& desired_error = Status::Ok());

// An Event to record on the MoEModel (core/v1 Event type, reason, message).
struct EventSpec {
  std::string type;  // "Normal" | "Warning"
  std::string reason;
  std::string message;
  bool operator==(const EventSpec&) const = default;
};

// The Events for the move from `before` to `after` (both parsed statuses). Pure. One Event per
// condition whose status changed (Ready -> Normal "Ready" / Warning "NotReady", Degraded True ->
// Warning with the condition's reason, Progressing True -> Normal "Progressing") and one Normal
// "PlacementChanged" when placementVersion changed from a non-zero value. Nothing when equal.
std::vector<EventSpec> TransitionEvents(const MoEModelStatus& before, const MoEModelStatus& after);

}  // namespace kubemoe::op
