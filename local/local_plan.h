// `kubemoe up`'s plan: the processes a MoEModel becomes on one machine. The arguments come from
// the operator's own desired-state functions (operator/api/reconcile.h), so the local cluster runs
// the router and workers exactly as the pods would, except for the substitutions listed here:
//
//   flag                 pod value                               local value
//   --model-dir          /models/<source.path>                   the local checkpoint directory
//   --placement          /etc/kubemoe/placement/placement.yaml   <run dir>/placement.yaml
//   --shard-index        $(KUBEMOE_SHARD_INDEX)                  the shard's index
//   --grpc-port          50051                                   a free loopback port per shard
//   --metrics-port       9090                                    a free loopback port per shard
//   --http-port          8000                                    the port asked for
// and these flags are added (pods get the same information from Kubernetes DNS and Services):
//   router: --http-address=127.0.0.1 --expert-addresses=127.0.0.1:<grpc port of shard i>,...
//   worker: --listen-address=127.0.0.1
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "operator/api/moemodel.h"

namespace kubemoe::local {

struct LocalSettings {
  std::string model_dir;  // checkpoint directory on this machine
  std::string run_dir;    // where placement.yaml and logs go
  int http_port = 8000;
  std::vector<int> worker_grpc_ports;     // one per shard
  std::vector<int> worker_metrics_ports;  // one per shard
  // Cores the router and workers share on this machine (0: AvailableCores()). Each process gets
  // --threads = cores / processes (at least 1), as pods with CPU limits would, so the processes
  // do not each start a thread per core and crowd each other out.
  int cores = 0;
};

struct ProcessSpec {
  std::string name;                   // "router", "worker-0", ...
  std::vector<std::string> args;      // flags, without the program name
  std::map<std::string, std::string> env;  // plain values from the pod template
};

struct LocalPlan {
  std::string placement_yaml;  // write to <run dir>/placement.yaml
  uint64_t placement_version = 0;
  ProcessSpec router;
  std::vector<ProcessSpec> workers;  // index = shard
  // The pod templates' own arguments, for comparison (tests, --dry-run).
  std::vector<std::string> router_pod_args;
  std::vector<std::string> worker_pod_args;
};

// The flags whose values the local plan replaces, and the flags it adds.
const std::set<std::string>& SubstitutedFlags();
const std::set<std::string>& AddedFlags();

// Computes the operator's desired state for `model` and turns its router Deployment and worker
// StatefulSet into local processes. Errors: the desired state cannot be computed (the operator's
// message), the ports do not match the shard count, or a pod template lacks a flag to replace.
StatusOr<LocalPlan> PlanLocalCluster(const op::MoEModel& model, const LocalSettings& settings);

// Reads a MoEModel from YAML text (a manifests/samples file) and checks it as the operator would
// (ParseMoEModel). A missing namespace becomes "default".
StatusOr<op::MoEModel> ParseMoEModelYaml(const std::string& text, const std::string& source);

}  // namespace kubemoe::local
