// The MoEModel custom resource (moemodels.kubemoe.io/v1alpha1) as checked C++ values.
//
// The CRD schema (operator/crd/moemodels.kubemoe.io.yaml) applies defaults and bounds in the API
// server; ParseMoEModel checks the same rules again (objects may come from files or old servers)
// and fills the same defaults, so every consumer sees one checked struct.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/status.h"
#include "placement/placement.h"

namespace kubemoe::op {

inline constexpr char kGroup[] = "kubemoe.io";
inline constexpr char kVersion[] = "v1alpha1";
inline constexpr char kApiVersion[] = "kubemoe.io/v1alpha1";
inline constexpr char kKind[] = "MoEModel";
inline constexpr char kPlural[] = "moemodels";

struct ObjectMeta {
  std::string name;
  std::string namespace_;
  std::string uid;
  int64_t generation = 0;
  std::string resource_version;
  std::map<std::string, std::string> labels;
};

// Where the checkpoint comes from. Exactly one of pvc_claim_name, host_path, image is set.
struct ModelSource {
  std::string pvc_claim_name;  // a PersistentVolumeClaim in the model's namespace
  std::string host_path;       // a directory on the node (single-node and test clusters)
  std::string image;           // an OCI image holding the checkpoint (Kubernetes image volume)
  std::string path;            // the checkpoint directory inside that volume ("" = its root)
};

// The operator cannot read the checkpoint, so the spec states the shape placement needs; the
// workers check it against config.json at start-up and fail loudly on a mismatch.
struct ModelSpec {
  std::string name;             // served model name (OpenAI "model"); defaults to metadata.name
  ModelSource source;
  int32_t routed_experts = 0;   // config.json n_routed_experts
  int32_t moe_layers = 0;       // layers with routed experts
  int32_t experts_per_token = 0;  // config.json num_experts_per_tok (K)
};

struct BatchingSpec {
  int32_t max_batch_size = 64;      // sequences per step
  int32_t max_batch_tokens = 8192;  // tokens per step (prefill + decode)
  int32_t max_queue_delay_ms = 5;   // how long a step waits to fill
};

struct RouterSpec {
  int32_t replicas = 1;
  std::string resources_json;  // core/v1 ResourceRequirements as JSON text ("" = none)
  BatchingSpec batching;
};

enum class DeviceType { kGpu, kCpu };

struct ExpertsSpec {
  int32_t shards = 1;
  int32_t devices_per_shard = 1;
  DeviceType device_type = DeviceType::kGpu;
  placement::Policy placement = placement::Policy::kContiguous;
  std::vector<placement::RedundantExpert> redundant;
};

struct RoutingSpec {
  int32_t device_limit = 0;  // 0 = not set (no device limit)
  int32_t top_k = 0;         // 0 = not set (the model's experts_per_token)
};

enum class Transport { kGrpc, kNccl };

struct ImageSpec {
  std::string router;
  std::string worker;
  std::string pull_policy;  // "" = Kubernetes default
};

// The NetworkPolicy the operator writes for the expert-shard pods (see objects.h WorkerNetworkPolicy).
struct NetworkPolicySpec {
  bool enabled = true;  // false: no policy (an existing one is deleted)
  // JSON array of networking.k8s.io/v1 NetworkPolicyPeer allowed to reach the workers' metrics
  // port. Default: pods labelled app.kubernetes.io/name=prometheus (as prometheus-operator and
  // the prometheus chart label the Prometheus server) in any namespace. "[]" = no one.
  std::string metrics_from_json =
      R"([{"namespaceSelector":{},"podSelector":{"matchLabels":{"app.kubernetes.io/name":"prometheus"}}}])";
};

struct MoEModelSpec {
  ModelSpec model;
  RouterSpec router;
  ExpertsSpec experts;
  RoutingSpec routing;
  Transport transport = Transport::kGrpc;
  ImageSpec image;
  std::string resources_json;      // worker ResourceRequirements as JSON text ("" = none)
  std::map<std::string, std::string> node_selector;
  std::string tolerations_json;    // JSON array of core/v1 Toleration ("" = none)
  NetworkPolicySpec network_policy;
  // spec.tls.secretName: a Secret with tls.crt, tls.key, ca.crt for mutual TLS between the router
  // and the workers (gRPC transport). Empty: plaintext.
  std::string tls_secret_name;

  // routing.top_k when set, else model.experts_per_token.
  int32_t EffectiveTopK() const { return routing.top_k > 0 ? routing.top_k : model.experts_per_token; }
};

// metav1.Condition.
struct Condition {
  std::string type;
  std::string status;  // "True" | "False" | "Unknown"
  std::string reason;
  std::string message;
  int64_t observed_generation = 0;
  std::string last_transition_time;  // RFC 3339
};

struct MoEModelStatus {
  int64_t observed_generation = 0;
  std::vector<Condition> conditions;
  int32_t ready_shards = 0;
  int32_t shards = 0;
  uint64_t placement_version = 0;
  std::string router_endpoint;
  std::string selector;
  std::string phase;  // "", Pending, Progressing, Ready, Degraded

  // The condition of this type, or nullptr.
  const Condition* Find(const std::string& type) const;
};

struct MoEModel {
  ObjectMeta metadata;
  MoEModelSpec spec;
  MoEModelStatus status;  // empty when the object has no status yet
};

// Parses a MoEModel object as the API server returns it (apiVersion, kind, metadata, spec,
// status). Fills schema defaults, checks bounds and cross-field rules. Errors are
// InvalidArgument naming the field path, e.g. "spec.experts.shards must be >= 1, got 0".
// Never throws.
StatusOr<MoEModel> ParseMoEModel(const nlohmann::json& object);

// Parses only a status object ({} gives an empty status). Never throws.
StatusOr<MoEModelStatus> ParseMoEModelStatus(const nlohmann::json& status);

// The placement inputs of a parsed spec.
placement::PlacementSpec PlacementSpecOf(const MoEModelSpec& spec);

}  // namespace kubemoe::op
