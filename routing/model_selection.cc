#include "routing/model_selection.h"

#include <cstring>

#include "routing/topk.h"

namespace kubemoe::routing {

void SelectModelFaithful(const GateConfig& config, const float* scores,
                         const ModelSelectionScratch& scratch, int32_t* out) {
  const int32_t n = config.num_experts;
  if (config.method == TopkMethod::kGreedy) {
    SelectTopK(scores, n, config.top_k, nullptr, out);
    return;
  }
  const int32_t group_size = n / config.n_group;
  for (int32_t g = 0; g < config.n_group; ++g) {
    const float* group = scores + int64_t{g} * group_size;
    float best = group[0];
    for (int32_t i = 1; i < group_size; ++i) best = group[i] > best ? group[i] : best;
    scratch.group_scores[g] = best;
  }
  SelectTopK(scratch.group_scores, config.n_group, config.topk_group, nullptr, scratch.kept_groups);
  std::memset(scratch.eligible, 0, static_cast<size_t>(n));
  for (int32_t j = 0; j < config.topk_group; ++j) {
    std::memset(scratch.eligible + int64_t{scratch.kept_groups[j]} * group_size, 1,
                static_cast<size_t>(group_size));
  }
  // Validation guarantees the kept groups hold at least top_k experts.
  SelectTopK(scores, n, config.top_k, scratch.eligible, out);
}

}  // namespace kubemoe::routing
