// ParseMoEModel: the CRD's defaults, bounds and CEL rules, checked once more in C++.
// Keep the numbers here in step with operator/crd/moemodels.kubemoe.io.yaml (the tests parse the
// samples and the invalid cases the CEL rules name).
#include "operator/api/moemodel.h"

#include <nlohmann/json.hpp>

#include "operator/api/json_fields.h"
#include "operator/api/network_policy_spec.h"
#include "operator/k8s/quantity.h"

namespace kubemoe::op {

using nlohmann::json;
using namespace internal;

const Condition* MoEModelStatus::Find(const std::string& type) const {
  for (const Condition& c : conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

namespace {

constexpr int32_t kMaxShards = 1024;
constexpr int32_t kMaxDevicesPerShard = 64;
constexpr int32_t kMaxExperts = 4096;
constexpr int32_t kMaxLayers = 1024;

// core/v1 ResourceRequirements: limits and requests map resource names to quantities: the shape
// the object builders rely on, and quantities the API server will accept.
Status CheckResources(const json& resources, const std::string& path) {
  if (!resources.is_object()) return InvalidArgument(path + " must be an object");
  for (const char* key : {"limits", "requests"}) {
    if (!resources.contains(key) || resources[key].is_null()) continue;
    const json& map = resources[key];
    if (!map.is_object()) {
      return InvalidArgument(path + "." + key + " must be a map of resource quantities");
    }
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!it.value().is_string() && !it.value().is_number()) {
        return InvalidArgument(path + "." + key + "." + it.key() + " must be a quantity");
      }
      // Caught here, the error is the object's InvalidSpec status, not an apply the API server
      // refuses on every retry.
      StatusOr<k8s::Quantity> quantity = k8s::Quantity::Parse(
          it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
      if (!quantity.ok()) {
        return InvalidArgument(path + "." + key + "." + it.key() + ": " + quantity.status().message());
      }
    }
  }
  return Status::Ok();
}

Status ParseMetadata(const json& object, ObjectMeta& m) {
  StatusOr<const json*> meta = Object(object, "metadata", "");
  if (!meta.ok()) return meta.status();
  const json& md = **meta;
  KUBEMOE_RETURN_IF_ERROR(String(md, "name", "metadata", m.name));
  if (m.name.empty()) return InvalidArgument("metadata.name is required");
  // Child names append "-placement" (10 chars) and must stay DNS labels (<= 63).
  if (m.name.size() > 52) {
    return InvalidArgument("metadata.name must be at most 52 characters (children append "
                           "suffixes such as -placement), got " + std::to_string(m.name.size()));
  }
  m.namespace_ = "default";
  KUBEMOE_RETURN_IF_ERROR(String(md, "namespace", "metadata", m.namespace_));
  KUBEMOE_RETURN_IF_ERROR(String(md, "uid", "metadata", m.uid));
  KUBEMOE_RETURN_IF_ERROR(
      Int(md, "generation", "metadata", 0, std::numeric_limits<int64_t>::max(), m.generation));
  KUBEMOE_RETURN_IF_ERROR(String(md, "resourceVersion", "metadata", m.resource_version));
  return StringMap(md, "labels", "metadata", m.labels);
}

Status ParseModel(const json& spec, const std::string& default_name, ModelSpec& m) {
  StatusOr<const json*> model = Object(spec, "model", "spec");
  if (!model.ok()) return model.status();
  const json& j = **model;
  if (j.empty()) return InvalidArgument("spec.model is required");
  m.name = default_name;
  KUBEMOE_RETURN_IF_ERROR(String(j, "name", "spec.model", m.name));
  KUBEMOE_RETURN_IF_ERROR(
      RequiredInt32(j, "routedExperts", "spec.model", 1, kMaxExperts, m.routed_experts));
  KUBEMOE_RETURN_IF_ERROR(
      RequiredInt32(j, "moeLayers", "spec.model", 1, kMaxLayers, m.moe_layers));
  KUBEMOE_RETURN_IF_ERROR(RequiredInt32(j, "expertsPerToken", "spec.model", 1, kMaxExperts,
                                        m.experts_per_token));
  if (m.experts_per_token > m.routed_experts) {
    return InvalidArgument("spec.model.expertsPerToken (" + std::to_string(m.experts_per_token) +
                           ") must be <= spec.model.routedExperts (" +
                           std::to_string(m.routed_experts) + ")");
  }
  StatusOr<const json*> source = Object(j, "source", "spec.model");
  if (!source.ok()) return source.status();
  const json& s = **source;
  int set = 0;
  for (const char* kind : {"pvc", "hostPath", "image"}) {
    StatusOr<const json*> one = Object(s, kind, "spec.model.source");
    if (!one.ok()) return one.status();
    // Present, even as {}, counts as set (the CRD's has()); {} then lacks its required field.
    if (!s.contains(kind) || s[kind].is_null()) continue;
    ++set;
    const std::string path = std::string("spec.model.source.") + kind;
    std::string* out = nullptr;
    const char* key = nullptr;
    if (std::string(kind) == "pvc") {
      out = &m.source.pvc_claim_name, key = "claimName";
    } else if (std::string(kind) == "hostPath") {
      out = &m.source.host_path, key = "path";
    } else {
      out = &m.source.image, key = "reference";
    }
    KUBEMOE_RETURN_IF_ERROR(String(**one, key, path, *out));
    if (out->empty()) return InvalidArgument(path + "." + key + " is required");
  }
  if (set != 1) {
    return InvalidArgument("spec.model.source must set exactly one of pvc, hostPath, image (got " +
                           std::to_string(set) + ")");
  }
  KUBEMOE_RETURN_IF_ERROR(String(s, "path", "spec.model.source", m.source.path));
  if (m.source.path.find("..") != std::string::npos) {
    return InvalidArgument("spec.model.source.path must not contain \"..\"");
  }
  return Status::Ok();
}

Status ParseRouter(const json& spec, RouterSpec& r) {
  StatusOr<const json*> router = Object(spec, "router", "spec");
  if (!router.ok()) return router.status();
  const json& j = **router;
  KUBEMOE_RETURN_IF_ERROR(Int32(j, "replicas", "spec.router", 1, 64, r.replicas));
  if (j.contains("resources") && !j["resources"].is_null()) {
    KUBEMOE_RETURN_IF_ERROR(CheckResources(j["resources"], "spec.router.resources"));
    r.resources_json = j["resources"].dump();
  }
  StatusOr<const json*> batching = Object(j, "batching", "spec.router");
  if (!batching.ok()) return batching.status();
  const std::string bp = "spec.router.batching";
  KUBEMOE_RETURN_IF_ERROR(Int32(**batching, "maxBatchSize", bp, 1, 4096, r.batching.max_batch_size));
  KUBEMOE_RETURN_IF_ERROR(
      Int32(**batching, "maxBatchTokens", bp, 1, 1 << 20, r.batching.max_batch_tokens));
  KUBEMOE_RETURN_IF_ERROR(
      Int32(**batching, "maxQueueDelayMs", bp, 0, 10000, r.batching.max_queue_delay_ms));
  return Status::Ok();
}

Status ParseExperts(const json& spec, const ModelSpec& model, ExpertsSpec& e) {
  StatusOr<const json*> experts = Object(spec, "experts", "spec");
  if (!experts.ok()) return experts.status();
  const json& j = **experts;
  KUBEMOE_RETURN_IF_ERROR(Int32(j, "shards", "spec.experts", 1, kMaxShards, e.shards));
  KUBEMOE_RETURN_IF_ERROR(
      Int32(j, "devicesPerShard", "spec.experts", 1, kMaxDevicesPerShard, e.devices_per_shard));
  std::string device_type = "gpu";
  KUBEMOE_RETURN_IF_ERROR(String(j, "deviceType", "spec.experts", device_type));
  if (device_type == "gpu") {
    e.device_type = DeviceType::kGpu;
  } else if (device_type == "cpu") {
    e.device_type = DeviceType::kCpu;
  } else {
    return InvalidArgument("spec.experts.deviceType must be \"gpu\" or \"cpu\", got \"" +
                           device_type + "\"");
  }
  std::string policy = "contiguous";
  KUBEMOE_RETURN_IF_ERROR(String(j, "placement", "spec.experts", policy));
  StatusOr<placement::Policy> parsed = placement::ParsePolicy(policy);
  if (!parsed.ok() || *parsed == placement::Policy::kLoadBalanced) {
    return InvalidArgument("spec.experts.placement policy must be \"contiguous\" or \"roundRobin\", got \"" +
                           policy + "\"");
  }
  e.placement = *parsed;
  const int64_t devices = static_cast<int64_t>(e.shards) * e.devices_per_shard;
  if (devices > model.routed_experts) {
    return InvalidArgument("spec.experts.shards x spec.experts.devicesPerShard (" +
                           std::to_string(devices) + ") must be <= spec.model.routedExperts (" +
                           std::to_string(model.routed_experts) + ")");
  }
  if (j.contains("redundant") && !j["redundant"].is_null()) {
    const json& list = j["redundant"];
    if (!list.is_array()) return InvalidArgument("spec.experts.redundant must be a list");
    if (list.size() > 1024) return InvalidArgument("spec.experts.redundant has more than 1024 items");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string path = "spec.experts.redundant[" + std::to_string(i) + "]";
      if (!list[i].is_object()) return InvalidArgument(path + " must be an object");
      placement::RedundantExpert r;
      r.replicas = 2;
      KUBEMOE_RETURN_IF_ERROR(
          RequiredInt32(list[i], "expert", path, 0, model.routed_experts - 1, r.expert));
      if (list[i].contains("layer") && !list[i]["layer"].is_null()) {
        int32_t layer = 0;
        KUBEMOE_RETURN_IF_ERROR(Int32(list[i], "layer", path, 0, model.moe_layers - 1, layer));
        r.layer = layer;
      }
      KUBEMOE_RETURN_IF_ERROR(Int32(list[i], "replicas", path, 1, kMaxShards * 64, r.replicas));
      // Checked after defaulting, as the CRD's rule sees it: the default 2 needs 2 devices.
      if (r.replicas > devices) {
        return InvalidArgument(path + ".replicas (" + std::to_string(r.replicas) +
                               (list[i].contains("replicas") ? "" : ", the default") +
                               ") must be <= spec.experts.shards x spec.experts.devicesPerShard (" +
                               std::to_string(devices) + ")");
      }
      e.redundant.push_back(r);
    }
  }
  return Status::Ok();
}

Status ParseRouting(const json& spec, const ModelSpec& model, const ExpertsSpec& experts,
                    RoutingSpec& r) {
  StatusOr<const json*> routing = Object(spec, "routing", "spec");
  if (!routing.ok()) return routing.status();
  const json& j = **routing;
  const int32_t devices = experts.shards * experts.devices_per_shard;
  KUBEMOE_RETURN_IF_ERROR(Int32(j, "topK", "spec.routing", 1, model.routed_experts, r.top_k));
  if (j.contains("deviceLimit") && !j["deviceLimit"].is_null()) {
    KUBEMOE_RETURN_IF_ERROR(Int32(j, "deviceLimit", "spec.routing", 1, kMaxShards * 64,
                                  r.device_limit));
    if (r.device_limit > devices) {
      return InvalidArgument("spec.routing.deviceLimit (" + std::to_string(r.device_limit) +
                             ") must be <= spec.experts.shards x spec.experts.devicesPerShard (" +
                             std::to_string(devices) + ")");
    }
    // The CRD's CEL rule, a cheap pre-check and NOT the feasibility rule. The exact rule is
    // routing::ValidateDeviceLimit (every deviceLimit devices host >= topK distinct experts),
    // which the router applies at start-up and ComputeDesiredState applies to the computed
    // placement (placement::CheckRoutingFeasible); a placement that fails it is reported as
    // InvalidSpec, never Ready. This check is stricter, not weaker: ComputePlacement gives every
    // device >= floor(E / D) distinct experts and replicas only add, so a spec that passes it
    // always gets a feasible placement, but it also rejects some feasible specs (an uneven split
    // where the smallest devices are few, or replicas that make up the difference).
    const int32_t k = r.top_k > 0 ? r.top_k : model.experts_per_token;
    const int64_t per_device = model.routed_experts / devices;
    if (static_cast<int64_t>(r.device_limit) * per_device < k) {
      return InvalidArgument(
          "spec.routing.deviceLimit (" + std::to_string(r.device_limit) + ") x experts per " +
          "device (" + std::to_string(per_device) + ") must be >= topK (" + std::to_string(k) +
          "): the limited devices could not supply topK experts");
    }
  }
  return Status::Ok();
}

}  // namespace

StatusOr<MoEModelStatus> ParseMoEModelStatus(const json& status) {
  MoEModelStatus s;
  if (status.is_null()) return s;
  if (!status.is_object()) return InvalidArgument("status must be an object");
  const std::string p = "status";
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  KUBEMOE_RETURN_IF_ERROR(Int(status, "observedGeneration", p, 0, kMax, s.observed_generation));
  KUBEMOE_RETURN_IF_ERROR(Int32(status, "readyShards", p, 0, 1 << 30, s.ready_shards));
  KUBEMOE_RETURN_IF_ERROR(Int32(status, "shards", p, 0, 1 << 30, s.shards));
  int64_t version = 0;
  KUBEMOE_RETURN_IF_ERROR(Int(status, "placementVersion", p, 0, kMax, version));
  s.placement_version = static_cast<uint64_t>(version);
  KUBEMOE_RETURN_IF_ERROR(String(status, "routerEndpoint", p, s.router_endpoint));
  KUBEMOE_RETURN_IF_ERROR(String(status, "selector", p, s.selector));
  KUBEMOE_RETURN_IF_ERROR(String(status, "phase", p, s.phase));
  if (status.contains("conditions") && !status["conditions"].is_null()) {
    const json& list = status["conditions"];
    if (!list.is_array()) return InvalidArgument("status.conditions must be a list");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string cp = "status.conditions[" + std::to_string(i) + "]";
      if (!list[i].is_object()) return InvalidArgument(cp + " must be an object");
      Condition c;
      KUBEMOE_RETURN_IF_ERROR(String(list[i], "type", cp, c.type));
      KUBEMOE_RETURN_IF_ERROR(String(list[i], "status", cp, c.status));
      KUBEMOE_RETURN_IF_ERROR(String(list[i], "reason", cp, c.reason));
      KUBEMOE_RETURN_IF_ERROR(String(list[i], "message", cp, c.message));
      KUBEMOE_RETURN_IF_ERROR(Int(list[i], "observedGeneration", cp, 0, kMax,
                                  c.observed_generation));
      KUBEMOE_RETURN_IF_ERROR(String(list[i], "lastTransitionTime", cp, c.last_transition_time));
      if (c.type.empty()) return InvalidArgument(cp + ".type is required");
      s.conditions.push_back(std::move(c));
    }
  }
  return s;
}

StatusOr<MoEModel> ParseMoEModel(const json& object) {
  if (!object.is_object()) return InvalidArgument("a MoEModel must be a JSON object");
  std::string api_version, kind;
  KUBEMOE_RETURN_IF_ERROR(String(object, "apiVersion", "", api_version));
  KUBEMOE_RETURN_IF_ERROR(String(object, "kind", "", kind));
  if (api_version != kApiVersion) {
    return InvalidArgument("apiVersion must be " + std::string(kApiVersion) + ", got \"" +
                           api_version + "\"");
  }
  if (kind != kKind) return InvalidArgument("kind must be MoEModel, got \"" + kind + "\"");
  MoEModel m;
  KUBEMOE_RETURN_IF_ERROR(ParseMetadata(object, m.metadata));
  StatusOr<const json*> spec_or = Object(object, "spec", "");
  if (!spec_or.ok()) return spec_or.status();
  const json& spec = **spec_or;
  MoEModelSpec& s = m.spec;
  KUBEMOE_RETURN_IF_ERROR(ParseModel(spec, m.metadata.name, s.model));
  KUBEMOE_RETURN_IF_ERROR(ParseRouter(spec, s.router));
  KUBEMOE_RETURN_IF_ERROR(ParseExperts(spec, s.model, s.experts));
  KUBEMOE_RETURN_IF_ERROR(ParseRouting(spec, s.model, s.experts, s.routing));

  std::string transport = "grpc";
  KUBEMOE_RETURN_IF_ERROR(String(spec, "transport", "spec", transport));
  if (transport == "grpc") {
    s.transport = Transport::kGrpc;
  } else if (transport == "nccl") {
    s.transport = Transport::kNccl;
  } else {
    return InvalidArgument("spec.transport must be \"grpc\" or \"nccl\", got \"" + transport + "\"");
  }
  if (s.transport == Transport::kNccl && s.experts.device_type != DeviceType::kGpu) {
    return InvalidArgument("spec.transport nccl requires spec.experts.deviceType gpu");
  }

  StatusOr<const json*> tls = Object(spec, "tls", "spec");
  if (!tls.ok()) return tls.status();
  if (spec.contains("tls") && !spec["tls"].is_null()) {  // {} is an error, not "no TLS"
    KUBEMOE_RETURN_IF_ERROR(String(**tls, "secretName", "spec.tls", s.tls_secret_name));
    if (s.tls_secret_name.empty()) return InvalidArgument("spec.tls.secretName must be set");
    if (s.tls_secret_name.size() > 253) {
      return InvalidArgument("spec.tls.secretName must be at most 253 characters");
    }
    if (s.transport != Transport::kGrpc) {
      return InvalidArgument("spec.tls applies to transport grpc only (NCCL has no TLS)");
    }
  }

  StatusOr<const json*> image = Object(spec, "image", "spec");
  if (!image.ok()) return image.status();
  s.image.router = "ghcr.io/kubemoe/kubemoe-router:0.1.0";
  s.image.worker = "ghcr.io/kubemoe/kubemoe-worker:0.1.0";
  KUBEMOE_RETURN_IF_ERROR(String(**image, "router", "spec.image", s.image.router));
  KUBEMOE_RETURN_IF_ERROR(String(**image, "worker", "spec.image", s.image.worker));
  KUBEMOE_RETURN_IF_ERROR(String(**image, "pullPolicy", "spec.image", s.image.pull_policy));
  if (!s.image.pull_policy.empty() && s.image.pull_policy != "Always" &&
      s.image.pull_policy != "IfNotPresent" && s.image.pull_policy != "Never") {
    return InvalidArgument("spec.image.pullPolicy must be Always, IfNotPresent or Never");
  }
  if (s.image.router.empty() || s.image.worker.empty()) {
    return InvalidArgument("spec.image.router and spec.image.worker must not be empty");
  }

  if (spec.contains("resources") && !spec["resources"].is_null()) {
    KUBEMOE_RETURN_IF_ERROR(CheckResources(spec["resources"], "spec.resources"));
    s.resources_json = spec["resources"].dump();
  }
  KUBEMOE_RETURN_IF_ERROR(StringMap(spec, "nodeSelector", "spec", s.node_selector));
  if (spec.contains("tolerations") && !spec["tolerations"].is_null()) {
    if (!spec["tolerations"].is_array()) return InvalidArgument("spec.tolerations must be a list");
    for (size_t i = 0; i < spec["tolerations"].size(); ++i) {
      if (!spec["tolerations"][i].is_object()) {
        return InvalidArgument("spec.tolerations[" + std::to_string(i) + "] must be an object");
      }
    }
    s.tolerations_json = spec["tolerations"].dump();
  }
  KUBEMOE_RETURN_IF_ERROR(ParseNetworkPolicySpec(spec, s.network_policy));

  if (object.contains("status")) {
    StatusOr<MoEModelStatus> status = ParseMoEModelStatus(object["status"]);
    if (!status.ok()) return status.status();
    m.status = std::move(*status);
  }
  return m;
}

placement::PlacementSpec PlacementSpecOf(const MoEModelSpec& spec) {
  placement::PlacementSpec p;
  p.routed_experts = spec.model.routed_experts;
  p.moe_layers = spec.model.moe_layers;
  p.shards = spec.experts.shards;
  p.devices_per_shard = spec.experts.devices_per_shard;
  p.policy = spec.experts.placement;
  p.redundant = spec.experts.redundant;
  p.top_k = spec.EffectiveTopK();
  p.device_limit = spec.routing.device_limit;
  return p;
}

}  // namespace kubemoe::op
