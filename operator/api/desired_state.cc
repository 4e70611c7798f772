// ComputeDesiredState and the child names.
#include <nlohmann/json.hpp>

#include "operator/api/objects.h"
#include "operator/api/reconcile.h"

namespace kubemoe::op {

using nlohmann::json;

std::string PlacementConfigMapName(const MoEModel& model) {
  return model.metadata.name + "-placement";
}
std::string WorkerStatefulSetName(const MoEModel& model) { return model.metadata.name + "-experts"; }
std::string RouterDeploymentName(const MoEModel& model) { return model.metadata.name + "-router"; }

std::string ExpertSelector(const MoEModel& model) {
  return std::string(kLabelInstance) + "=" + model.metadata.name + "," + kLabelComponent + "=" +
         kComponentExperts;
}

std::string RouterEndpoint(const MoEModel& model) {
  return RouterDeploymentName(model) + "." + model.metadata.namespace_ +
         ".svc:" + std::to_string(kRouterHttpPort);
}

StatusOr<DesiredState> ComputeDesiredState(const MoEModel& model) {
  StatusOr<placement::Placement> computed = placement::ComputePlacement(PlacementSpecOf(model.spec));
  if (!computed.ok()) {
    // Placement errors name placement fields; point the user at the spec.
    return InvalidArgument("spec: cannot place experts: " + computed.status().message());
  }
  DesiredState out;
  out.placement = std::move(*computed);
  const uint64_t version = out.placement.version;
  out.objects.push_back(internal::PlacementConfigMap(model, out.placement));
  out.objects.push_back(internal::WorkerService(model));
  if (model.spec.network_policy.enabled) {
    out.objects.push_back(internal::WorkerNetworkPolicy(model));
  } else {
    out.absent.push_back({"networking.k8s.io/v1", "NetworkPolicy", WorkerStatefulSetName(model)});
  }
  out.objects.push_back(internal::WorkerStatefulSet(model, version));
  out.objects.push_back(internal::WorkerDisruptionBudget(model));
  out.objects.push_back(internal::RouterDeployment(model, version));
  out.objects.push_back(internal::RouterService(model));
  return out;
}

}  // namespace kubemoe::op
