// The model's gating settings (config.json of a DeepSeek-V2 checkpoint) as one checked struct.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"
#include "routing/scoring.h"

namespace kubemoe::routing {

// config.json `topk_method`.
enum class TopkMethod {
  kGreedy,              // top-K over all routed experts
  kGroupLimitedGreedy,  // DeepSeek-V2: best topk_group groups by max expert score, then top-K
};

// (config.json is parsed once, in model/config.cc; the engine maps ModelConfig onto GateConfig.)
const char* TopkMethodName(TopkMethod method);

struct GateConfig {
  int32_t num_experts = 0;  // n_routed_experts
  int32_t top_k = 0;        // num_experts_per_tok
  TopkMethod method = TopkMethod::kGreedy;
  int32_t n_group = 1;  // group_limited_greedy only: experts split into n_group contiguous groups
  int32_t topk_group = 1;  // group_limited_greedy only: groups kept per token
  ScoringFunc scoring = ScoringFunc::kSoftmax;
  // When true and top_k > 1, weights are the selected scores divided by (their sum + 1e-20) and the
  // scaling factor is NOT applied (as the original modelling code does); otherwise weights are the
  // selected scores times routed_scaling_factor.
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.0f;
};

// Returns OK when: num_experts >= 1; 1 <= top_k <= num_experts; routed_scaling_factor is finite
// and > 0; and for group_limited_greedy: n_group >= 1 divides num_experts, 1 <= topk_group <=
// n_group and the kept groups hold at least top_k experts. Otherwise InvalidArgument naming the
// config.json field. n_group and topk_group are not checked for greedy (the model ignores them).
Status ValidateGateConfig(const GateConfig& config);

}  // namespace kubemoe::routing
