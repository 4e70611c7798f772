// What serving-time device-limited routing costs a trained model: held-out perplexity, how often
// the selection differs from the model-faithful one, the KL divergence of next-token
// distributions from the faithful model, and the dispatch it saves. `kubemoe eval` prints these;
// docs/device-limit-quality.md shows the curve.
//
// Every document runs once with model-faithful routing (the gate's own method, no device limit)
// and once per case, teacher-forced: each case sees exactly the faithful run's tokens, so the
// numbers compare distributions, not diverging generations.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/model.h"
#include "placement/placement.h"

namespace kubemoe::eval {

// Token ids of one document; every token after the first is predicted from its prefix.
struct Document {
  std::vector<int32_t> tokens;  // at least 2
};

struct DeviceLimitCase {
  placement::Placement placement;  // computed for the model (MoE layers, routed experts)
  int32_t device_limit = 0;        // 0: model-faithful selection on this placement
};

struct CaseResult {
  std::string policy;  // placement::PolicyName of the case's placement
  int32_t devices = 0;
  int32_t device_limit = 0;
  int64_t scored_tokens = 0;   // predicted tokens over all documents
  double nll_sum = 0;          // -sum of log p(token | prefix), nats
  double perplexity = 0;       // exp(nll_sum / scored_tokens)
  int64_t routings = 0;        // token x MoE layer selections
  double divergent_fraction = 0;        // of routings whose expert set differs from faithful
  double tokens_divergent_fraction = 0; // of token rows with a differing set in any MoE layer
  double mean_kl = 0;   // nats: mean over scored positions of KL(faithful || case)
  double max_kl = 0;
  double destinations_per_token = 0;  // distinct devices per token, summed over MoE layers
  // Activation bytes per token over all MoE layers, both directions, bf16 on the wire: each
  // destination receives the token's hidden row and returns one combined row. The per-expert
  // route entries (ids and weights, K x 8 bytes per token and layer) do not depend on M.
  double dispatch_bytes_per_token = 0;
};

// Per MoE layer and routed expert, how many token rows the model-faithful selection sends to it
// over the documents (the load a loadBalanced placement balances).
StatusOr<std::vector<std::vector<double>>> MeasureExpertLoads(engine::Model& model,
                                                              std::span<const Document> documents);

// One result per case, in order. The model's routing is left model-faithful afterwards (no
// placement). InvalidArgument for a document with fewer than 2 tokens or a placement that does
// not match the model; errors from the forward pass otherwise.
StatusOr<std::vector<CaseResult>> EvaluateDeviceLimits(engine::Model& model,
                                                       std::span<const Document> documents,
                                                       std::span<const DeviceLimitCase> cases);

}  // namespace kubemoe::eval
