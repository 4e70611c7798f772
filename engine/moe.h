// The DeepSeekMoE feed-forward of one layer: fp32 gate logits -> routing (routing/ module) ->
// routed experts through an ExpertExecutor, weighted by the gate weights, plus the shared
// experts (one SwiGLU MLP of intermediate moe_intermediate_size x n_shared_experts).
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "engine/expert_executor.h"
#include "engine/weights.h"
#include "model/config.h"
#include "routing/router.h"

namespace kubemoe::engine {

// The routing settings the model was trained with, from its config.
routing::GateConfig GateConfigFromModel(const ModelConfig& config);

// What routing chose for a batch at one layer (for tests and fixtures): [rows x top_k].
struct LayerRouting {
  std::vector<int32_t> expert_ids;
  std::vector<float> weights;
};

// out [rows x hidden] = routed experts + shared experts for x [rows x hidden] (already
// post-attention-normed). When `routing_out` is not null the selection is copied there.
// Errors come from routing (non-finite logits) or the executor.
Status MoeForward(const ModelConfig& config, const MoeWeights& w, const routing::Router& router,
                  ExpertExecutor& executor, int64_t layer, const float* x, int64_t rows, float* out,
                  LayerRouting* routing_out = nullptr);

}  // namespace kubemoe::engine
