// The DeepSeekMoE feed-forward of one layer: fp32 gate logits -> routing (routing/ module) ->
// routed experts dispatched through an ExpertExecutor while the shared experts (one SwiGLU MLP of
// intermediate moe_intermediate_size x n_shared_experts) run here, then combined.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "common/thread_pool.h"
#include "engine/expert_executor.h"
#include "engine/weights.h"
#include "model/config.h"
#include "routing/router.h"

namespace kubemoe::engine {

// The routing settings the model was trained with, from its config.
routing::GateConfig GateConfigFromModel(const ModelConfig& config);

// What routing chose for a batch at one layer: [rows x top_k] each.
struct LayerRouting {
  std::vector<int32_t> expert_ids;
  std::vector<float> weights;
  std::vector<int32_t> devices;  // global device per selected expert; empty without a placement
  // [rows]: 1 where a device-limited selection differs (as a set) from the model-faithful one;
  // empty without a device limit.
  std::vector<uint8_t> differs_from_model;
};

struct MoeStepOptions {
  uint64_t placement_version = 0;  // passed to the executor with the routes
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // Rows marked 1 in `faithful_rows` ([rows] or empty) are routed by `faithful_router` instead
  // (the same placement without the device limit), in the same dispatch: the router's sampled
  // estimate of what the limit costs. Their differs_from_model entries are 0.
  const routing::Router* faithful_router = nullptr;
  std::span<const uint8_t> faithful_rows = {};
};

// out [rows x hidden] = routed experts + shared experts for x [rows x hidden] (already
// post-attention-normed). When `routing_out` is not null the selection is copied there.
// Errors come from routing (non-finite logits) or the executor, prefixed with the layer.
// The gate and shared-expert products run on `pool`.
Status MoeForward(ThreadPool& pool, const ModelConfig& config, const MoeWeights& w,
                  const routing::Router& router, ExpertExecutor& executor, int64_t layer,
                  const float* x, int64_t rows, float* out, LayerRouting* routing_out = nullptr,
                  const MoeStepOptions& options = {});

}  // namespace kubemoe::engine
