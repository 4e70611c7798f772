// metrics_demo SPEC.json: builds a metrics Registry from a JSON description, applies the updates it
// lists, and prints Registry::Render() on stdout. tests/py/metrics_prometheus_test.py writes the
// spec, computes the expected samples itself, and parses this output with prometheus_client.
//
// Spec: {"families": [{"type": "counter"|"gauge"|"histogram", "name": ..., "help": ...,
//          "labels": [...], "buckets": ["0.1", ...] | {"exponential": ["start", "factor", n]},
//          "children": [{"values": [...], "ops": [...]}]}]}
// Numbers travel as strings so NaN, +Inf and exact doubles survive JSON ("nan", "inf", repr()).
// Counter ops are amounts to Inc; gauge ops are ["set", x] or ["add", x]; histogram ops are
// observations. A family the Registry rejects is reported on stderr as one JSON line
// {"rejected": name, "error": message} and skipped. Exit status 2 on a malformed spec.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/metrics.h"

namespace km = kubemoe::metrics;
using nlohmann::json;

namespace {

double Num(const json& j) { return std::strtod(j.get<std::string>().c_str(), nullptr); }

std::vector<std::string> Strings(const json& j) { return j.get<std::vector<std::string>>(); }

kubemoe::StatusOr<std::vector<double>> Buckets(const json& spec) {
  if (!spec.contains("buckets")) return km::DefaultBuckets();
  const json& b = spec["buckets"];
  if (b.is_object()) {
    const json& e = b.at("exponential");
    return km::ExponentialBuckets(Num(e.at(0)), Num(e.at(1)), e.at(2).get<int>());
  }
  std::vector<double> bounds;
  for (const json& x : b) bounds.push_back(Num(x));
  return bounds;
}

// Registers one family and applies its children's ops. Returns the registration error, if any.
kubemoe::Status Apply(km::Registry& registry, const json& spec) {
  const std::string type = spec.at("type");
  const std::string name = spec.at("name");
  const std::string help = spec.at("help");
  const std::vector<std::string> labels = Strings(spec.value("labels", json::array()));
  const json children = spec.value("children", json::array());
  if (type == "counter") {
    auto family = registry.AddCounter(name, help, labels);
    if (!family.ok()) return family.status();
    for (const json& c : children) {
      auto child = (*family)->WithLabels(Strings(c.at("values")));
      if (!child.ok()) return child.status();
      for (const json& op : c.at("ops")) (*child)->Inc(Num(op));
    }
  } else if (type == "gauge") {
    auto family = registry.AddGauge(name, help, labels);
    if (!family.ok()) return family.status();
    for (const json& c : children) {
      auto child = (*family)->WithLabels(Strings(c.at("values")));
      if (!child.ok()) return child.status();
      for (const json& op : c.at("ops")) {
        if (op.at(0) == "set") {
          (*child)->Set(Num(op.at(1)));
        } else {
          (*child)->Add(Num(op.at(1)));
        }
      }
    }
  } else {
    auto bounds = Buckets(spec);
    if (!bounds.ok()) return bounds.status();
    auto family = registry.AddHistogram(name, help, labels, *bounds);
    if (!family.ok()) return family.status();
    for (const json& c : children) {
      auto child = (*family)->WithLabels(Strings(c.at("values")));
      if (!child.ok()) return child.status();
      for (const json& op : c.at("ops")) (*child)->Observe(Num(op));
    }
  }
  return kubemoe::Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: metrics_demo SPEC.json\n");
    return 2;
  }
  std::ifstream in(argv[1]);
  const json spec = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded() || !spec.contains("families")) {
    std::fprintf(stderr, "metrics_demo: %s is not a JSON object with \"families\"\n", argv[1]);
    return 2;
  }
  km::Registry registry;
  try {
    for (const json& family : spec["families"]) {
      kubemoe::Status s = Apply(registry, family);
      if (!s.ok()) {
        std::cerr << json{{"rejected", family.at("name")}, {"error", s.message()}}.dump() << "\n";
      }
    }
  } catch (const json::exception& e) {
    std::fprintf(stderr, "metrics_demo: malformed spec: %s\n", e.what());
    return 2;
  }
  std::cout << registry.Render();
  return 0;
}
