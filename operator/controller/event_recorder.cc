#include "operator/controller/event_recorder.h"

#include <atomic>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "operator/k8s/client.h"

namespace kubemoe::op {

ApiEventRecorder::ApiEventRecorder(k8s::Client& client, Clock& clock, std::string instance)
    : client_(client), clock_(clock), instance_(std::move(instance)) {}

void ApiEventRecorder::Record(const nlohmann::json& involved, const EventSpec& event) {
  static std::atomic<uint64_t> sequence{0};
  const nlohmann::json& meta = involved.at("metadata");
  std::string name = meta.value("name", "");
  std::string ns = meta.value("namespace", "");
  auto wall = clock_.WallNow();
  // Unique names as kubectl's recorder makes them: NAME.<hex nanoseconds>.
  char suffix[40];
  std::snprintf(suffix, sizeof(suffix), ".%llx%llx",
                static_cast<unsigned long long>(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(wall.time_since_epoch()).count()),
                static_cast<unsigned long long>(sequence.fetch_add(1) & 0xff));
  std::string now = FormatRfc3339(wall);
  nlohmann::json object = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"name", name + suffix}, {"namespace", ns}}},
      {"involvedObject",
       {{"apiVersion", involved.value("apiVersion", "")},
        {"kind", involved.value("kind", "")},
        {"name", name},
        {"namespace", ns},
        {"uid", meta.value("uid", "")},
        {"resourceVersion", meta.value("resourceVersion", "")}}},
      {"type", event.type},
      {"reason", event.reason},
      {"message", event.message},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"count", 1},
      {"source", {{"component", kFieldManager}}},
      {"reportingComponent", kFieldManager},
      {"reportingInstance", instance_},
  };
  auto made = client_.Create(k8s::Events(), ns, object);
  if (!made.ok()) {
    std::cerr << "event " << event.reason << " on " << ns << "/" << name
              << " not recorded: " << made.error().ToString() << "\n";
  }
}

}  // namespace kubemoe::op
