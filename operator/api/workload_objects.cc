// The worker StatefulSet and the router Deployment.
#include <string>

#include "operator/api/objects.h"

namespace kubemoe::op::internal {

using nlohmann::json;

namespace {

std::string ModelDir(const MoEModel& model) {
  const std::string& path = model.spec.model.source.path;
  std::string dir = kModelMountPath;
  if (path.empty() || path == "/") return dir;
  return dir + (path.front() == '/' ? "" : "/") + path;
}

std::string PlacementFile() { return std::string(kPlacementMountPath) + "/" + kPlacementFileKey; }

const char* TransportName(Transport t) { return t == Transport::kNccl ? "nccl" : "grpc"; }

json PodTemplateMetadata(const MoEModel& model, const std::string& component, uint64_t version) {
  json labels = SelectorLabels(model, component);
  labels[kLabelName] = "kubemoe";
  labels[kLabelManagedBy] = kManagedBy;
  // A new placement version changes the template, which rolls the pods.
  return {{"labels", labels},
          {"annotations", {{kPlacementVersionAnnotation, std::to_string(version)}}}};
}

}  // namespace

json WorkerStatefulSet(const MoEModel& model, uint64_t placement_version) {
  const MoEModelSpec& s = model.spec;
  const bool gpu = s.experts.device_type == DeviceType::kGpu;
  json container = {
      {"name", "worker"},
      {"image", s.image.worker},
      {"args",
       json::array({"--model-dir=" + ModelDir(model), "--placement=" + PlacementFile(),
                    "--placement-version=" + std::to_string(placement_version),
                    "--shard-index=$(KUBEMOE_SHARD_INDEX)",
                    "--devices=" + std::to_string(s.experts.devices_per_shard),
                    std::string("--device-type=") + (gpu ? "gpu" : "cpu"),
                    std::string("--transport=") + TransportName(s.transport),
                    "--grpc-port=" + std::to_string(kWorkerGrpcPort),
                    "--metrics-port=" + std::to_string(kWorkerMetricsPort)})},
      // The shard index is the pod ordinal: the downward API label apps.kubernetes.io/pod-index
      // (Kubernetes >= 1.28). The worker falls back to the ordinal suffix of KUBEMOE_POD_NAME
      // when the label is absent (the variable is then empty).
      {"env",
       json::array(
           {{{"name", "KUBEMOE_SHARD_INDEX"},
             {"valueFrom",
              {{"fieldRef", {{"fieldPath", "metadata.labels['apps.kubernetes.io/pod-index']"}}}}}},
            {{"name", "KUBEMOE_POD_NAME"},
             {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}},
            {{"name", "KUBEMOE_MODEL_NAME"}, {"value", s.model.name}}})},
      {"ports", json::array({{{"name", "grpc"}, {"containerPort", kWorkerGrpcPort},
                              {"protocol", "TCP"}},
                             {{"name", "metrics"}, {"containerPort", kWorkerMetricsPort},
                              {"protocol", "TCP"}}})},
      // Loading a large checkpoint takes minutes: the startup probe allows up to 20 of them
      // before liveness applies.
      {"startupProbe",
       {{"grpc", {{"port", kWorkerGrpcPort}}}, {"periodSeconds", 10}, {"failureThreshold", 120}}},
      {"readinessProbe",
       {{"grpc", {{"port", kWorkerGrpcPort}}}, {"periodSeconds", 5}, {"failureThreshold", 3}}},
      {"livenessProbe",
       {{"grpc", {{"port", kWorkerGrpcPort}}}, {"periodSeconds", 10}, {"failureThreshold", 6}}}};
  json resources = s.resources_json.empty() ? json::object() : json::parse(s.resources_json);
  if (gpu) {
    // One GPU per device of the shard, whatever the user wrote.
    const std::string count = std::to_string(s.experts.devices_per_shard);
    resources["limits"]["nvidia.com/gpu"] = count;
    if (resources.contains("requests")) resources["requests"]["nvidia.com/gpu"] = count;
  }
  if (!resources.empty()) container["resources"] = resources;

  json pod_spec = {{"terminationGracePeriodSeconds", 30}};
  AddCommonPodSpec(model, pod_spec, container);
  AddTls(model, pod_spec, container, "--tls-dir");
  if (!s.tls_secret_name.empty()) {
    // Kubelet gRPC probes speak plaintext and present no client certificate, which a TLS
    // worker refuses: probe /healthz and /readyz on the metrics port instead.
    container["startupProbe"].erase("grpc");
    container["startupProbe"]["httpGet"] = {{"path", "/healthz"}, {"port", "metrics"}};
    container["readinessProbe"].erase("grpc");
    container["readinessProbe"]["httpGet"] = {{"path", "/readyz"}, {"port", "metrics"}};
    container["livenessProbe"].erase("grpc");
    container["livenessProbe"]["httpGet"] = {{"path", "/healthz"}, {"port", "metrics"}};
  }
  if (s.transport == Transport::kNccl) {
    // NCCL uses shared memory between local ranks; the default 64 MiB /dev/shm is too small.
    pod_spec["volumes"].push_back({{"name", "dshm"}, {"emptyDir", {{"medium", "Memory"}}}});
    container["volumeMounts"].push_back({{"name", "dshm"}, {"mountPath", "/dev/shm"}});
  }
  pod_spec["containers"] = json::array({container});

  return {{"apiVersion", "apps/v1"},
          {"kind", "StatefulSet"},
          {"metadata", ChildMetadata(model, WorkerStatefulSetName(model), kComponentExperts)},
          {"spec",
           {{"replicas", s.experts.shards},
            {"serviceName", WorkerStatefulSetName(model)},
            // Shards are independent: start and replace them all at once, not in order.
            {"podManagementPolicy", "Parallel"},
            {"updateStrategy", {{"type", "RollingUpdate"}}},
            {"selector", {{"matchLabels", SelectorLabels(model, kComponentExperts)}}},
            {"template",
             {{"metadata", PodTemplateMetadata(model, kComponentExperts, placement_version)},
              {"spec", pod_spec}}}}}};
}

json RouterDeployment(const MoEModel& model, uint64_t placement_version) {
  const MoEModelSpec& s = model.spec;
  json args = json::array(
      {"--model-dir=" + ModelDir(model), "--served-model-name=" + s.model.name,
       "--placement=" + PlacementFile(),
       "--placement-version=" + std::to_string(placement_version),
       "--experts-service=" + WorkerStatefulSetName(model) + "." + model.metadata.namespace_ +
           ".svc",
       "--experts-statefulset=" + WorkerStatefulSetName(model),
       "--shards=" + std::to_string(s.experts.shards),
       "--expert-port=" + std::to_string(kWorkerGrpcPort),
       std::string("--transport=") + TransportName(s.transport),
       "--http-port=" + std::to_string(kRouterHttpPort),
       "--max-batch-size=" + std::to_string(s.router.batching.max_batch_size),
       "--max-batch-tokens=" + std::to_string(s.router.batching.max_batch_tokens),
       "--max-queue-delay-ms=" + std::to_string(s.router.batching.max_queue_delay_ms)});
  if (s.routing.top_k > 0) args.push_back("--top-k=" + std::to_string(s.routing.top_k));
  if (s.routing.device_limit > 0) {
    args.push_back("--device-limit=" + std::to_string(s.routing.device_limit));
  }
  json container = {
      {"name", "router"},
      {"image", s.image.router},
      {"args", args},
      {"ports", json::array({{{"name", "http"}, {"containerPort", kRouterHttpPort},
                              {"protocol", "TCP"}}})},
      {"startupProbe",
       {{"httpGet", {{"path", "/healthz"}, {"port", "http"}}},
        {"periodSeconds", 10},
        {"failureThreshold", 120}}},
      {"readinessProbe",
       {{"httpGet", {{"path", "/readyz"}, {"port", "http"}}}, {"periodSeconds", 5}}},
      {"livenessProbe",
       {{"httpGet", {{"path", "/healthz"}, {"port", "http"}}}, {"periodSeconds", 10}}}};
  if (!s.router.resources_json.empty()) {
    container["resources"] = json::parse(s.router.resources_json);
  }
  json pod_spec = {{"terminationGracePeriodSeconds", 30}};
  AddCommonPodSpec(model, pod_spec, container);
  AddTls(model, pod_spec, container, "--expert-tls-dir");
  pod_spec["containers"] = json::array({container});

  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", ChildMetadata(model, RouterDeploymentName(model), kComponentRouter)},
          {"spec",
           {{"replicas", s.router.replicas},
            // Never fewer ready routers than asked for while rolling (no dropped requests).
            {"strategy",
             {{"type", "RollingUpdate"},
              {"rollingUpdate", {{"maxUnavailable", 0}, {"maxSurge", 1}}}}},
            {"selector", {{"matchLabels", SelectorLabels(model, kComponentRouter)}}},
            {"template",
             {{"metadata", PodTemplateMetadata(model, kComponentRouter, placement_version)},
              {"spec", pod_spec}}}}}};
}

}  // namespace kubemoe::op::internal
