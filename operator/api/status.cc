// ComputeStatus and TransitionEvents: Kubernetes condition semantics without a clock or a client.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>

#include "operator/api/reconcile.h"

namespace kubemoe::op {

using nlohmann::json;

namespace {

int64_t IntAt(const json& object, const json::json_pointer& ptr, int64_t fallback = 0) {
  if (!object.contains(ptr)) return fallback;
  const json& v = object.at(ptr);
  return v.is_number_integer() ? v.get<int64_t>() : fallback;
}

std::string StringAt(const json& object, const json::json_pointer& ptr) {
  if (!object.contains(ptr)) return "";
  const json& v = object.at(ptr);
  return v.is_string() ? v.get<std::string>() : "";
}

// What one workload (StatefulSet or Deployment) tells about its rollout.
struct Workload {
  bool present = false;
  bool up_to_date = false;  // controller caught up with spec, template and replicas
  int64_t ready = 0;        // readyReplicas (StatefulSet) or availableReplicas (Deployment)
  int64_t updated = 0;
};

Workload Observe(const json* object, int64_t want_replicas, uint64_t version,
                 const char* ready_field) {
  Workload w;
  if (object == nullptr || !object->is_object()) return w;
  const json& o = *object;
  w.present = true;
  w.ready = IntAt(o, json::json_pointer(std::string("/status/") + ready_field));
  w.updated = IntAt(o, json::json_pointer("/status/updatedReplicas"));
  const bool generation_seen = IntAt(o, json::json_pointer("/status/observedGeneration")) >=
                               IntAt(o, json::json_pointer("/metadata/generation"));
  const std::string annotation = StringAt(
      o, json::json_pointer("/spec/template/metadata/annotations/kubemoe.io~1placement-version"));
  const std::string current = StringAt(o, json::json_pointer("/status/currentRevision"));
  const std::string update = StringAt(o, json::json_pointer("/status/updateRevision"));
  w.up_to_date = generation_seen && annotation == std::to_string(version) &&
                 IntAt(o, json::json_pointer("/spec/replicas"), 1) == want_replicas &&
                 w.updated >= want_replicas && (current.empty() || current == update);
  return w;
}

struct Verdict {
  std::string status;
  std::string reason;
  std::string message;
};

json ConditionJson(const MoEModel& model, const std::string& type, const Verdict& v,
                   const std::string& now) {
  std::string since = now;
  if (const Condition* old = model.status.Find(type);
      old != nullptr && old->status == v.status && !old->last_transition_time.empty()) {
    since = old->last_transition_time;
  }
  return {{"type", type},
          {"status", v.status},
          {"reason", v.reason},
          {"message", v.message},
          {"observedGeneration", model.metadata.generation},
          {"lastTransitionTime", since}};
}

// True when the previous status already reported a finished rollout of this generation and
// placement: a shortfall now is a degradation, not progress.
bool Settled(const MoEModel& model, uint64_t version) {
  const MoEModelStatus& s = model.status;
  if (s.observed_generation != model.metadata.generation || s.placement_version != version) {
    return false;
  }
  const Condition* ready = s.Find(kConditionReady);
  const Condition* degraded = s.Find(kConditionDegraded);
  return (ready != nullptr && ready->status == "True") ||
         (degraded != nullptr && degraded->status == "True" && degraded->reason != "InvalidSpec");
}

}  // namespace

json ComputeStatus(const MoEModel& model, const DesiredState& desired,
                   const ObservedChildren& observed, const std::string& now_rfc3339,
                   const Status& desired_error) {
  const int32_t shards = model.spec.experts.shards;
  json status = {{"observedGeneration", model.metadata.generation},
                 {"shards", shards},
                 {"selector", ExpertSelector(model)},
                 {"routerEndpoint", RouterEndpoint(model)}};
  Verdict ready, progressing, degraded;
  std::string phase;
  int64_t ready_shards = 0;
  if (!desired_error.ok()) {
    // Nothing new is applied; keep reporting the last placement that was.
    status["placementVersion"] = model.status.placement_version;
    ready = {"False", "InvalidSpec", desired_error.message()};
    progressing = {"False", "InvalidSpec", "the spec cannot be reconciled; fix it to continue"};
    degraded = {"True", "InvalidSpec", desired_error.message()};
    phase = "Degraded";
    ready_shards = std::min<int64_t>(model.status.ready_shards, shards);
  } else {
    const uint64_t version = desired.placement.version;
    status["placementVersion"] = version;
    Workload experts = Observe(observed.stateful_set, shards, version, "readyReplicas");
    Workload router =
        Observe(observed.deployment, model.spec.router.replicas, version, "availableReplicas");
    ready_shards = std::clamp<int64_t>(experts.ready, 0, shards);
    const std::string counts = std::to_string(ready_shards) + "/" + std::to_string(shards) +
                               " expert shards ready, " + std::to_string(router.ready) +
                               " router replicas available, placement version " +
                               std::to_string(version);
    const bool complete = experts.up_to_date && router.up_to_date;
    const bool shortfall = ready_shards < shards || router.ready < 1;
    if (!experts.present && !router.present) {
      phase = "Pending";
      ready = {"False", "Pending", "waiting for the expert StatefulSet and router Deployment"};
      progressing = {"True", "Creating", "creating the expert shards and the router"};
      degraded = {"False", "AsExpected", "no failure observed"};
    } else if (!shortfall && complete) {
      phase = "Ready";
      ready = {"True", "AllShardsReady", counts};
      progressing = {"False", "RolloutComplete", counts};
      degraded = {"False", "AsExpected", counts};
    } else if (shortfall && complete && Settled(model, version)) {
      phase = "Degraded";
      const std::string reason = ready_shards < shards ? "ShardsUnavailable" : "RouterUnavailable";
      ready = {"False", reason, counts};
      progressing = {"False", "RolloutComplete", counts};
      degraded = {"True", reason, counts};
    } else {
      phase = "Progressing";
      const std::string reason = complete ? "WaitingForReadiness" : "RollingOut";
      ready = {"False", reason, counts};
      progressing = {"True", reason, counts};
      degraded = {"False", "AsExpected", counts};
    }
  }
  status["readyShards"] = ready_shards;
  status["phase"] = phase;
  status["conditions"] = json::array({ConditionJson(model, kConditionReady, ready, now_rfc3339),
                                      ConditionJson(model, kConditionProgressing, progressing,
                                                    now_rfc3339),
                                      ConditionJson(model, kConditionDegraded, degraded,
                                                    now_rfc3339)});
  return status;
}

std::vector<EventSpec> TransitionEvents(const MoEModelStatus& before, const MoEModelStatus& after) {
  std::vector<EventSpec> events;
  auto status_of = [](const MoEModelStatus& s, const char* type) -> std::string {
    const Condition* c = s.Find(type);
    return c == nullptr ? "" : c->status;
  };
  if (before.placement_version != 0 && after.placement_version != before.placement_version) {
    events.push_back({"Normal", "PlacementChanged",
                      "placement version " + std::to_string(before.placement_version) + " -> " +
                          std::to_string(after.placement_version) + " (" +
                          std::to_string(after.shards) + " shards)"});
  }
  const Condition* progressing = after.Find(kConditionProgressing);
  if (progressing != nullptr && progressing->status == "True" &&
      status_of(before, kConditionProgressing) != "True") {
    events.push_back({"Normal", progressing->reason, progressing->message});
  }
  const Condition* degraded = after.Find(kConditionDegraded);
  if (degraded != nullptr) {
    const std::string was = status_of(before, kConditionDegraded);
    if (degraded->status == "True" && was != "True") {
      events.push_back({"Warning", degraded->reason, degraded->message});
    } else if (degraded->status == "False" && was == "True") {
      events.push_back({"Normal", "Recovered", degraded->message});
    }
  }
  const Condition* ready = after.Find(kConditionReady);
  if (ready != nullptr) {
    const std::string was = status_of(before, kConditionReady);
    if (ready->status == "True" && was != "True") {
      events.push_back({"Normal", "Ready", ready->message});
    } else if (ready->status != "True" && was == "True") {
      events.push_back({"Warning", "NotReady", ready->message});
    }
  }
  return events;
}

}  // namespace kubemoe::op
