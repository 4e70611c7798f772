#include "local/local_plan.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/thread_pool.h"
#include "local/yaml_json.h"
#include "operator/api/reconcile.h"

namespace kubemoe::local {
namespace {

using nlohmann::json;

const json* FindKind(const std::vector<json>& objects, const std::string& kind) {
  for (const json& o : objects) {
    if (o.value("kind", "") == kind) return &o;
  }
  return nullptr;
}

std::string FlagName(const std::string& arg) { return arg.substr(0, arg.find('=')); }

// Replaces the value of every flag in `values` (each must be present once) and appends `added`.
StatusOr<std::vector<std::string>> Substitute(const std::vector<std::string>& pod_args,
                                              const std::map<std::string, std::string>& values,
                                              const std::vector<std::string>& added,
                                              const std::string& what) {
  std::vector<std::string> out;
  std::set<std::string> replaced;
  for (const std::string& arg : pod_args) {
    auto it = values.find(FlagName(arg));
    if (it == values.end()) {
      out.push_back(arg);
    } else {
      out.push_back(it->first + "=" + it->second);
      replaced.insert(it->first);
    }
  }
  for (const auto& [flag, value] : values) {
    if (!replaced.count(flag)) {
      return Internal(what + "'s pod template has no " + flag + " argument to replace");
    }
  }
  out.insert(out.end(), added.begin(), added.end());
  return out;
}

StatusOr<std::vector<std::string>> ContainerArgs(const json& workload, const std::string& what,
                                                 std::map<std::string, std::string>* env) {
  try {
    const json& c = workload.at("spec").at("template").at("spec").at("containers").at(0);
    if (env != nullptr && c.contains("env")) {
      for (const json& e : c.at("env")) {
        if (e.contains("value")) (*env)[e.at("name").get<std::string>()] = e.at("value");
      }
    }
    return c.at("args").get<std::vector<std::string>>();
  } catch (const json::exception& e) {
    return Internal(what + " has no container args: " + e.what());
  }
}

}  // namespace

const std::set<std::string>& SubstitutedFlags() {
  static const std::set<std::string> kFlags = {"--model-dir",   "--placement",   "--shard-index",
                                               "--grpc-port",   "--metrics-port", "--http-port"};
  return kFlags;
}

const std::set<std::string>& AddedFlags() {
  static const std::set<std::string> kFlags = {"--http-address", "--expert-addresses",
                                               "--listen-address", "--threads"};
  return kFlags;
}

StatusOr<op::MoEModel> ParseMoEModelYaml(const std::string& text, const std::string& source) {
  StatusOr<json> object = YamlToJson(text, source);
  if (!object.ok()) return object.status();
  if (!object->is_object()) return InvalidArgument(source + ": not a MoEModel object");
  json& meta = (*object)["metadata"];
  if (!meta.is_object()) return InvalidArgument(source + ": metadata must be an object");
  if (!meta.contains("namespace")) meta["namespace"] = "default";
  StatusOr<op::MoEModel> model = op::ParseMoEModel(*object);
  if (!model.ok()) return Status(model.status().code(), source + ": " + model.status().message());
  return model;
}

StatusOr<LocalPlan> PlanLocalCluster(const op::MoEModel& model, const LocalSettings& s) {
  const auto shards = static_cast<size_t>(model.spec.experts.shards);
  if (s.worker_grpc_ports.size() != shards || s.worker_metrics_ports.size() != shards) {
    return InvalidArgument("need one gRPC and one metrics port per shard (" +
                           std::to_string(shards) + ")");
  }
  StatusOr<op::DesiredState> desired = op::ComputeDesiredState(model);
  if (!desired.ok()) return desired.status();
  const json* config_map = FindKind(desired->objects, "ConfigMap");
  const json* stateful_set = FindKind(desired->objects, "StatefulSet");
  const json* deployment = FindKind(desired->objects, "Deployment");
  if (config_map == nullptr || stateful_set == nullptr || deployment == nullptr) {
    return Internal("the operator's desired state lacks the ConfigMap, StatefulSet or Deployment");
  }
  LocalPlan plan;
  plan.placement_version = desired->placement.version;
  plan.placement_yaml = config_map->at("data").value(op::kPlacementFileKey, "");
  const std::string placement_file = s.run_dir + "/placement.yaml";

  std::map<std::string, std::string> worker_env;
  auto worker_args = ContainerArgs(*stateful_set, "the worker StatefulSet", &worker_env);
  if (!worker_args.ok()) return worker_args.status();
  auto router_args = ContainerArgs(*deployment, "the router Deployment", nullptr);
  if (!router_args.ok()) return router_args.status();
  plan.worker_pod_args = *worker_args;
  plan.router_pod_args = *router_args;

  const int cores = s.cores > 0 ? s.cores : AvailableCores();
  const std::string threads =
      "--threads=" + std::to_string(std::max(1, cores / static_cast<int>(shards + 1)));
  std::string addresses;
  for (size_t i = 0; i < shards; ++i) {
    auto args = Substitute(*worker_args,
                           {{"--model-dir", s.model_dir},
                            {"--placement", placement_file},
                            {"--shard-index", std::to_string(i)},
                            {"--grpc-port", std::to_string(s.worker_grpc_ports[i])},
                            {"--metrics-port", std::to_string(s.worker_metrics_ports[i])}},
                           {"--listen-address=127.0.0.1", threads}, "the worker StatefulSet");
    if (!args.ok()) return args.status();
    ProcessSpec w{"worker-" + std::to_string(i), std::move(*args), worker_env};
    w.env.erase("KUBEMOE_SHARD_INDEX");
    plan.workers.push_back(std::move(w));
    // Appended piecewise: `"," + std::string(...)` trips GCC 12's false -Wrestrict at -O3.
    if (i) addresses += ',';
    addresses += "127.0.0.1:";
    addresses += std::to_string(s.worker_grpc_ports[i]);
  }
  auto args = Substitute(*router_args,
                         {{"--model-dir", s.model_dir},
                          {"--placement", placement_file},
                          {"--http-port", std::to_string(s.http_port)}},
                         {"--http-address=127.0.0.1", "--expert-addresses=" + addresses, threads},
                         "the router Deployment");
  if (!args.ok()) return args.status();
  plan.router = ProcessSpec{"router", std::move(*args), {}};
  return plan;
}

}  // namespace kubemoe::local
