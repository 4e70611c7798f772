// Gate weights of the selected experts: how much each expert's output counts in the combine.
#pragma once

#include <cstdint>

namespace kubemoe::routing {

// Writes weights[j] for the k selected experts' scores, in fp32, as the original DeepSeek-V2 code:
// when norm_topk_prob and k > 1: scores[j] / (sum of the k scores + 1e-20), no scaling factor;
// otherwise: scores[j] * routed_scaling_factor. REQUIRES: k >= 1; both arrays hold k floats.
void ComputeGateWeights(const float* selected_scores, int32_t k, bool norm_topk_prob,
                        float routed_scaling_factor, float* weights);

}  // namespace kubemoe::routing
