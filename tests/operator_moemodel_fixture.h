// A minimal valid MoEModel (16 routed experts, two CPU shards, a PVC source) and the parse error
// of an object: shared by the operator tests that vary one spec field at a time.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "operator/api/reconcile.h"

namespace kubemoe::op::fixture {

inline nlohmann::json MinimalMoEModel(int64_t generation) {
  nlohmann::json object = nlohmann::json::parse(R"({
    "apiVersion": "kubemoe.io/v1alpha1", "kind": "MoEModel",
    "metadata": {"name": "m", "namespace": "ns", "uid": "u-1"},
    "spec": {
      "model": {"source": {"pvc": {"claimName": "c"}}, "routedExperts": 16, "moeLayers": 2,
                "expertsPerToken": 4},
      "experts": {"shards": 2, "deviceType": "cpu"}
    }
  })");
  object["metadata"]["generation"] = generation;
  return object;
}

// ParseMoEModel's message for an object it must reject ("" and a test failure if it accepts it).
inline std::string ParseError(const nlohmann::json& object) {
  StatusOr<MoEModel> m = ParseMoEModel(object);
  EXPECT_FALSE(m.ok());
  return m.ok() ? "" : m.status().message();
}

}  // namespace kubemoe::op::fixture
