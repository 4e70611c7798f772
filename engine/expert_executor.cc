#include "engine/expert_executor.h"

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cpu/swiglu.h"

namespace kubemoe::engine {

Status InProcessExpertExecutor::Run(int64_t layer, std::span<const float> hidden,
                                    int64_t num_tokens, std::span<const int32_t> expert_ids,
                                    std::span<const float> weights, int32_t top_k,
                                    std::span<float> out) {
  const int64_t h = config_.hidden_size;
  if (layer < 0 || layer >= static_cast<int64_t>(weights_->layers.size()) ||
      !weights_->layers[static_cast<size_t>(layer)].moe) {
    return InvalidArgument("layer " + std::to_string(layer) + " is not a MoE layer");
  }
  const std::vector<FfnWeights>& experts =
      weights_->layers[static_cast<size_t>(layer)].moe->experts;
  const auto n_experts = static_cast<int32_t>(experts.size());
  const int64_t pairs = num_tokens * top_k;
  if (static_cast<int64_t>(hidden.size()) < num_tokens * h ||
      static_cast<int64_t>(out.size()) < num_tokens * h ||
      static_cast<int64_t>(expert_ids.size()) < pairs ||
      static_cast<int64_t>(weights.size()) < pairs) {
    return InvalidArgument("expert executor: arrays too short for " + std::to_string(num_tokens) +
                           " tokens");
  }
  // Bucket (token, slot) pairs by expert: counting sort keeps tokens in order inside a bucket.
  std::vector<int64_t> offsets(static_cast<size_t>(n_experts) + 1, 0);
  for (int64_t p = 0; p < pairs; ++p) {
    const int32_t e = expert_ids[static_cast<size_t>(p)];
    if (e < 0 || e >= n_experts) {
      return InvalidArgument("layer " + std::to_string(layer) + ": expert id " + std::to_string(e) +
                             " is not loaded in this process (" + std::to_string(n_experts) +
                             " experts)");
    }
    ++offsets[static_cast<size_t>(e) + 1];
  }
  for (int32_t e = 0; e < n_experts; ++e) offsets[e + 1] += offsets[e];
  std::vector<int64_t> order(static_cast<size_t>(pairs));
  {
    std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
    for (int64_t p = 0; p < pairs; ++p) order[fill[expert_ids[p]]++] = p;
  }
  std::fill(out.begin(), out.begin() + num_tokens * h, 0.0f);
  int64_t max_tokens = 0;
  for (int32_t e = 0; e < n_experts; ++e)
    max_tokens = std::max(max_tokens, offsets[e + 1] - offsets[e]);
  const int64_t inter = config_.moe_intermediate_size;
  std::vector<float> x(static_cast<size_t>(max_tokens * h));
  std::vector<float> y(static_cast<size_t>(max_tokens * h));
  std::vector<float> scratch(static_cast<size_t>(cpu::SwiGluScratchFloats(max_tokens, inter)));
  for (int32_t e = 0; e < n_experts; ++e) {
    const int64_t begin = offsets[e];
    const int64_t n = offsets[e + 1] - begin;
    if (n == 0) continue;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = order[begin + i] / top_k;
      std::copy_n(hidden.data() + t * h, h, x.data() + i * h);
    }
    const FfnWeights& f = experts[static_cast<size_t>(e)];
    cpu::SwiGluFfn(x.data(), n, h, inter, f.gate_proj.data(), f.up_proj.data(), f.down_proj.data(),
                   scratch.data(), y.data());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t p = order[begin + i];
      const float g = weights[static_cast<size_t>(p)];
      float* dst = out.data() + (p / top_k) * h;
      const float* src = y.data() + i * h;
      for (int64_t j = 0; j < h; ++j) dst[j] += g * src[j];
    }
  }
  return Status::Ok();
}

}  // namespace kubemoe::engine
