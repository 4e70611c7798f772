#include "operator/controller/reconciler.h"

#include <iostream>

#include <nlohmann/json.hpp>

#include "operator/api/reconcile.h"
#include "operator/controller/object_diff.h"
#include "operator/k8s/client.h"

namespace kubemoe::op {

using nlohmann::json;

namespace {

ReconcileResult Failed(const k8s::ApiError& error, const std::string& what, int writes) {
  ReconcileResult r;
  r.outcome = error.IsTransient() ? ReconcileResult::Outcome::kRequeue : ReconcileResult::Outcome::kError;
  r.message = what + ": " + error.ToString();
  r.writes = writes;
  return r;
}

json ConditionJsonFor(const json& old_status, const std::string& type, const std::string& status,
               const std::string& reason, const std::string& message, int64_t generation,
               const std::string& now) {
  std::string since = now;
  if (old_status.is_object() && old_status.contains("conditions") && old_status["conditions"].is_array()) {
    for (const json& c : old_status["conditions"]) {
      if (c.is_object() && c.value("type", "") == type && c.value("status", "") == status) {
        since = c.value("lastTransitionTime", now);
      }
    }
  }
  return {{"type", type}, {"status", status}, {"reason", reason}, {"message", message},
          {"observedGeneration", generation}, {"lastTransitionTime", since}};
}

// Whether `object` has a controller owner reference to the object with this uid.
bool ControlledBy(const json& object, const std::string& uid) {
  const json& meta = object.value("metadata", json::object());
  const json refs = meta.value("ownerReferences", json::array());
  if (!refs.is_array()) return false;
  for (const json& ref : refs) {
    if (ref.is_object() && ref.value("controller", false) && ref.value("uid", "") == uid) return true;
  }
  return false;
}

}  // namespace

json InvalidSpecStatus(const json& old_status, int64_t generation, const std::string& message,
                       const std::string& now) {
  json status = old_status.is_object() ? old_status : json::object();
  status["observedGeneration"] = generation;
  status["phase"] = "Degraded";
  status["conditions"] = json::array({
      ConditionJsonFor(old_status, kConditionReady, "False", "InvalidSpec", message, generation, now),
      ConditionJsonFor(old_status, kConditionProgressing, "False", "InvalidSpec",
                "the spec cannot be reconciled; fix it to continue", generation, now),
      ConditionJsonFor(old_status, kConditionDegraded, "True", "InvalidSpec", message, generation, now),
  });
  return status;
}

Reconciler::Reconciler(k8s::Client& client, ReconcilerCaches caches, EventRecorder& events, Clock& clock)
    : client_(client), caches_(std::move(caches)), events_(events), clock_(clock) {}

ReconcileResult Reconciler::WriteStatus(const json& live, const json& status, ReconcileResult result) {
  const json old_status = live.value("status", json::object());
  if (status == old_status) return result;
  json body = live;
  body["status"] = status;
  const std::string ns = live["metadata"].value("namespace", "");
  const std::string name = live["metadata"].value("name", "");
  // PUT carries the cached resourceVersion: a stale cache gives Conflict and a retry, never a
  // status computed from an old spec overwriting a newer one.
  auto put = client_.Update(k8s::MoEModels(), ns, name, body, "status");
  if (!put.ok()) return Failed(put.error(), "update status of " + ns + "/" + name, result.writes);
  ++result.writes;
  StatusOr<MoEModelStatus> before = ParseMoEModelStatus(old_status);
  StatusOr<MoEModelStatus> after = ParseMoEModelStatus(status);
  if (before.ok() && after.ok()) {
    for (const EventSpec& event : TransitionEvents(*before, *after)) events_.Record(*put, event);
  }
  return result;
}

ReconcileResult Reconciler::Reconcile(const std::string& key) {
  ReconcileResult result;
  ObjectPtr live = caches_.models->Get(key);
  if (live == nullptr) return result;  // deleted: owner references let the GC remove children
  const json& meta = (*live)["metadata"];
  if (meta.contains("deletionTimestamp")) return result;
  const std::string now = FormatRfc3339(clock_.WallNow());
  const int64_t generation = meta.value("generation", int64_t{0});

  StatusOr<MoEModel> model = ParseMoEModel(*live);
  if (!model.ok()) {
    // A bad spec is reported on the object, not retried: the user's next edit triggers us.
    json status = InvalidSpecStatus(live->value("status", json::object()), generation,
                                    model.status().message(), now);
    ReconcileResult r = WriteStatus(*live, status, result);
    if (r.outcome == ReconcileResult::Outcome::kOk && r.writes > 0) {
      events_.Record(*live, EventSpec{"Warning", "InvalidSpec", model.status().message()});
    }
    return r;
  }

  StatusOr<DesiredState> desired = ComputeDesiredState(*model);
  if (desired.ok()) {
    for (const json& object : desired->objects) {
      const std::string kind = object.value("kind", "");
      std::optional<k8s::Resource> resource = k8s::ResourceFor(object.value("apiVersion", ""), kind);
      auto cache = caches_.owned.find(kind);
      if (!resource || cache == caches_.owned.end()) {
        result.outcome = ReconcileResult::Outcome::kError;
        result.message = "desired object of unknown kind " + object.value("apiVersion", "") + "/" + kind;
        return result;
      }
      const std::string name = object["metadata"].value("name", "");
      ObjectPtr current = cache->second->Get(model->metadata.namespace_ + "/" + name);
      std::string difference = "(absent)";
      if (current != nullptr) {
        StatusOr<bool> same = IsSemanticSubset(object, *current, &difference);
        if (!same.ok()) {
          result.outcome = ReconcileResult::Outcome::kError;
          result.message = kind + " " + model->metadata.namespace_ + "/" + name + ": " +
                           same.status().message();
          return result;
        }
        if (*same) continue;
      }
      {
        // The caches may lag a deletion of the owner (whose children the garbage collector then
        // removes): an apply would re-create a child of a deleted owner, since server-side apply
        // creates. Writes are rare, so each one first asks the server whether the owner is there.
        auto owner = client_.Get(k8s::MoEModels(), model->metadata.namespace_, model->metadata.name);
        if (!owner.ok()) {
          if (owner.error().IsNotFound()) return result;
          return Failed(owner.error(), "get " + key, result.writes);
        }
        if ((*owner)["metadata"].value("uid", "") != model->metadata.uid ||
            (*owner)["metadata"].contains("deletionTimestamp")) {
          return result;
        }
      }
      auto applied = client_.Apply(*resource, model->metadata.namespace_, name, object);
      if (!applied.ok()) {
        return Failed(applied.error(), "apply " + kind + " " + model->metadata.namespace_ + "/" + name,
                      result.writes);
      }
      std::cerr << "reconcile " << key << ": applied " << kind << " " << name << " (differs at "
                << difference << ")\n";
      ++result.writes;
    }
  }

  if (desired.ok()) {
    // Children the spec turned off (spec.networkPolicy.enabled false): delete the ones this model
    // controls, never a same-named object someone else made.
    const std::string& ns = model->metadata.namespace_;
    for (const ChildRef& child : desired->absent) {
      std::optional<k8s::Resource> resource = k8s::ResourceFor(child.api_version, child.kind);
      auto cache = caches_.owned.find(child.kind);
      if (!resource || cache == caches_.owned.end()) {
        result.outcome = ReconcileResult::Outcome::kError;
        result.message = "absent child of unknown kind " + child.api_version + "/" + child.kind;
        return result;
      }
      ObjectPtr current = cache->second->Get(ns + "/" + child.name);
      if (current == nullptr || !ControlledBy(*current, model->metadata.uid)) continue;
      k8s::ApiError deleted = client_.Delete(*resource, ns, child.name);
      if (!deleted.ok() && !deleted.IsNotFound()) {
        return Failed(deleted, "delete " + child.kind + " " + ns + "/" + child.name, result.writes);
      }
      std::cerr << "reconcile " << key << ": deleted " << child.kind << " " << child.name << "\n";
      ++result.writes;
    }
  }

  ObservedChildren observed;
  ObjectPtr sts, deploy;
  if (desired.ok()) {
    sts = caches_.owned.at("StatefulSet")->Get(model->metadata.namespace_ + "/" + WorkerStatefulSetName(*model));
    deploy = caches_.owned.at("Deployment")->Get(model->metadata.namespace_ + "/" + RouterDeploymentName(*model));
    observed.stateful_set = sts.get();
    observed.deployment = deploy.get();
  }
  json status = desired.ok() ? ComputeStatus(*model, *desired, observed, now)
                             : ComputeStatus(*model, DesiredState{}, observed, now, desired.status());
  return WriteStatus(*live, status, result);
}

}  // namespace kubemoe::op
