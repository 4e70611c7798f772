// Metadata, the placement ConfigMap, Services, the PodDisruptionBudget, the NetworkPolicy and
// shared pod-spec parts.
#include "operator/api/objects.h"

#include <string>

namespace kubemoe::op::internal {

using nlohmann::json;

json SelectorLabels(const MoEModel& model, const std::string& component) {
  return {{kLabelInstance, model.metadata.name}, {kLabelComponent, component}};
}

json ChildMetadata(const MoEModel& model, const std::string& name, const std::string& component) {
  json labels = SelectorLabels(model, component);
  labels[kLabelName] = "kubemoe";
  labels[kLabelManagedBy] = kManagedBy;
  json owner = {{"apiVersion", kApiVersion},
                {"kind", kKind},
                {"name", model.metadata.name},
                {"uid", model.metadata.uid},
                {"controller", true},
                {"blockOwnerDeletion", true}};
  return {{"name", name},
          {"namespace", model.metadata.namespace_},
          {"labels", labels},
          {"ownerReferences", json::array({owner})}};
}

json PlacementConfigMap(const MoEModel& model, const placement::Placement& placement) {
  json meta = ChildMetadata(model, PlacementConfigMapName(model), kComponentPlacement);
  const std::string version = std::to_string(placement.version);
  meta["annotations"] = {{kPlacementVersionAnnotation, version}};
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", meta},
          {"data",
           {{kPlacementFileKey, placement::ToYaml(placement)}, {kPlacementVersionKey, version}}}};
}

json WorkerService(const MoEModel& model) {
  // Headless: each shard pod gets a stable DNS name NAME-experts-<i>.NAME-experts.NS.svc that
  // the router dials. Not-ready addresses are published so peers can rendezvous (NCCL) while
  // shards are still loading.
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", ChildMetadata(model, WorkerStatefulSetName(model), kComponentExperts)},
          {"spec",
           {{"clusterIP", "None"},
            {"publishNotReadyAddresses", true},
            {"selector", SelectorLabels(model, kComponentExperts)},
            {"ports",
             json::array({{{"name", "grpc"}, {"port", kWorkerGrpcPort},
                           {"targetPort", "grpc"}, {"protocol", "TCP"}},
                          {{"name", "metrics"}, {"port", kWorkerMetricsPort},
                           {"targetPort", "metrics"}, {"protocol", "TCP"}}})}}}};
}

json WorkerDisruptionBudget(const MoEModel& model) {
  // Each shard hosts distinct experts, so voluntary disruptions go one shard at a time.
  return {{"apiVersion", "policy/v1"},
          {"kind", "PodDisruptionBudget"},
          {"metadata", ChildMetadata(model, WorkerStatefulSetName(model), kComponentExperts)},
          {"spec",
           {{"maxUnavailable", 1},
            {"selector", {{"matchLabels", SelectorLabels(model, kComponentExperts)}}}}}};
}

json WorkerNetworkPolicy(const MoEModel& model) {
  const json from_router = {{"podSelector", {{"matchLabels", SelectorLabels(model, kComponentRouter)}}}};
  json rules = json::array();
  if (model.spec.transport == Transport::kNccl) {
    const json from_workers = {
        {"podSelector", {{"matchLabels", SelectorLabels(model, kComponentExperts)}}}};
    rules.push_back({{"from", json::array({from_router, from_workers})}});
  } else {
    // With gRPC the workers never dial each other: only the router reaches them.
    rules.push_back({{"from", json::array({from_router})},
                     {"ports", json::array({{{"protocol", "TCP"}, {"port", kWorkerGrpcPort}}})}});
  }
  // An ingress rule with an empty `from` admits every source, so no peers means no rule at all.
  const json metrics_from = json::parse(model.spec.network_policy.metrics_from_json);
  if (!metrics_from.empty()) {
    rules.push_back(
        {{"from", metrics_from},
         {"ports", json::array({{{"protocol", "TCP"}, {"port", kWorkerMetricsPort}}})}});
  }
  return {{"apiVersion", "networking.k8s.io/v1"},
          {"kind", "NetworkPolicy"},
          {"metadata", ChildMetadata(model, WorkerStatefulSetName(model), kComponentExperts)},
          {"spec",
           {{"podSelector", {{"matchLabels", SelectorLabels(model, kComponentExperts)}}},
            {"policyTypes", json::array({"Ingress"})},
            {"ingress", rules}}}};
}

json RouterService(const MoEModel& model) {
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", ChildMetadata(model, RouterDeploymentName(model), kComponentRouter)},
          {"spec",
           {{"type", "ClusterIP"},
            {"selector", SelectorLabels(model, kComponentRouter)},
            {"ports", json::array({{{"name", "http"}, {"port", kRouterHttpPort},
                                    {"targetPort", "http"}, {"protocol", "TCP"}}})}}}};
}

void AddCommonPodSpec(const MoEModel& model, json& pod_spec, json& container) {
  const ModelSource& src = model.spec.model.source;
  json model_volume = {{"name", "model"}};
  if (!src.pvc_claim_name.empty()) {
    model_volume["persistentVolumeClaim"] = {{"claimName", src.pvc_claim_name}, {"readOnly", true}};
  } else if (!src.host_path.empty()) {
    model_volume["hostPath"] = {{"path", src.host_path}, {"type", "Directory"}};
  } else {
    json image = {{"reference", src.image}};
    if (!model.spec.image.pull_policy.empty()) image["pullPolicy"] = model.spec.image.pull_policy;
    model_volume["image"] = image;
  }
  pod_spec["volumes"] = json::array(
      {model_volume,
       {{"name", "placement"}, {"configMap", {{"name", PlacementConfigMapName(model)}}}},
       {{"name", "tmp"}, {"emptyDir", json::object()}}});
  // The placement ConfigMap is mounted as a directory (not subPath) so updates reach the file.
  container["volumeMounts"] = json::array(
      {{{"name", "model"}, {"mountPath", kModelMountPath}, {"readOnly", true}},
       {{"name", "placement"}, {"mountPath", kPlacementMountPath}, {"readOnly", true}},
       {{"name", "tmp"}, {"mountPath", "/tmp"}}});
  if (!model.spec.node_selector.empty()) pod_spec["nodeSelector"] = model.spec.node_selector;
  if (!model.spec.tolerations_json.empty()) {
    pod_spec["tolerations"] = json::parse(model.spec.tolerations_json);
  }
  if (!model.spec.image.pull_policy.empty()) {
    container["imagePullPolicy"] = model.spec.image.pull_policy;
  }
  pod_spec["securityContext"] = {{"runAsNonRoot", true},
                                 {"runAsUser", 65532},
                                 {"runAsGroup", 65532},
                                 {"fsGroup", 65532},
                                 {"seccompProfile", {{"type", "RuntimeDefault"}}}};
  container["securityContext"] = {{"allowPrivilegeEscalation", false},
                                  {"readOnlyRootFilesystem", true},
                                  {"capabilities", {{"drop", json::array({"ALL"})}}}};
  pod_spec["enableServiceLinks"] = false;
  // Neither the router nor the workers talk to the API server: no token in their pods.
  pod_spec["automountServiceAccountToken"] = false;
}

void AddTls(const MoEModel& model, json& pod_spec, json& container, const std::string& flag) {
  if (model.spec.tls_secret_name.empty()) return;
  pod_spec["volumes"].push_back(
      {{"name", "tls"}, {"secret", {{"secretName", model.spec.tls_secret_name}}}});
  container["volumeMounts"].push_back(
      {{"name", "tls"}, {"mountPath", kTlsMountPath}, {"readOnly", true}});
  container["args"].push_back(flag + "=" + kTlsMountPath);
}

}  // namespace kubemoe::op::internal
