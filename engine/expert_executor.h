// Where routed experts run. The MoE layer hands the executor a layer's tokens with their selected
// experts and gate weights; the in-process executor runs them here, and a remote executor (the
// router's gRPC dispatch to expert-shard workers) implements the same call.
#pragma once

#include <cstdint>
#include <span>

#include "common/status.h"
#include "engine/weights.h"
#include "model/config.h"

namespace kubemoe::engine {

class ExpertExecutor {
 public:
  virtual ~ExpertExecutor() = default;

  // For each of num_tokens rows of hidden [num_tokens x hidden_size], writes
  //   out[t] = sum_j weights[t * top_k + j] * Expert_{layer, expert_ids[t * top_k + j]}(hidden[t])
  // to out [num_tokens x hidden_size] (overwriting it). Expert(x) is the SwiGLU MLP
  // down(silu(gate(x)) * up(x)). Returns an error (out unspecified) when an expert is not
  // available to this executor or a transport fails.
  virtual Status Run(int64_t layer, std::span<const float> hidden, int64_t num_tokens,
                     std::span<const int32_t> expert_ids, std::span<const float> weights,
                     int32_t top_k, std::span<float> out) = 0;
};

// Runs every routed expert of the model in this process, from weights the caller keeps alive.
// Tokens are grouped per expert so each expert runs as three matrix products over its tokens.
class InProcessExpertExecutor final : public ExpertExecutor {
 public:
  // REQUIRES: weights outlives the executor and holds the routed experts of every MoE layer.
  InProcessExpertExecutor(const ModelConfig& config, const ModelWeights* weights)
      : config_(config), weights_(weights) {}

  Status Run(int64_t layer, std::span<const float> hidden, int64_t num_tokens,
             std::span<const int32_t> expert_ids, std::span<const float> weights, int32_t top_k,
             std::span<float> out) override;

 private:
  const ModelConfig& config_;
  const ModelWeights* weights_;
};

}  // namespace kubemoe::engine
