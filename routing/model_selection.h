// Model-faithful expert selection for one token: the rule the model was trained with
// (config.json topk_method), which serving must reproduce exactly.
#pragma once

#include <cstdint>

#include "routing/gate_config.h"

namespace kubemoe::routing {

// Per-token working memory, sized once per batch so routing a token allocates nothing.
struct ModelSelectionScratch {
  float* group_scores = nullptr;   // n_group floats
  int32_t* kept_groups = nullptr;  // topk_group ints
  uint8_t* eligible = nullptr;     // num_experts bytes
};

// Writes the top_k selected expert ids to out in rank order (see routing/topk.h for the
// tie-break) for the num_experts scores of one token:
// greedy: top-K over all experts.
// group_limited_greedy: experts form n_group contiguous equal groups; a group's score is the MAX
// score of its experts; the best topk_group groups are kept (same tie-break, by group index);
// top-K among the kept groups' experts.
// REQUIRES: ValidateGateConfig(config) is OK; scratch is sized as documented (group fields only
// used by group_limited_greedy).
void SelectModelFaithful(const GateConfig& config, const float* scores,
                         const ModelSelectionScratch& scratch, int32_t* out);

}  // namespace kubemoe::routing
