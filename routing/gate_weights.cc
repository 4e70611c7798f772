#include "routing/gate_weights.h"

namespace kubemoe::routing {

void ComputeGateWeights(const float* selected_scores, int32_t k, bool norm_topk_prob,
                        float routed_scaling_factor, float* weights) {
  if (norm_topk_prob && k > 1) {
    float sum = 0.0f;
    for (int32_t j = 0; j < k; ++j) sum += selected_scores[j];
    // The epsilon keeps an all-zero selection (sigmoid underflow) from dividing by zero.
    const float denominator = sum + 1e-20f;
    for (int32_t j = 0; j < k; ++j) weights[j] = selected_scores[j] / denominator;
    return;
  }
  for (int32_t j = 0; j < k; ++j) weights[j] = selected_scores[j] * routed_scaling_factor;
}

}  // namespace kubemoe::routing
