#include "eval/device_limit_eval.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/distribution.h"
#include "engine/kv_cache.h"
#include "engine/moe.h"
#include "router/routing_setup.h"

namespace kubemoe::eval {
namespace {

// Runs one document teacher-forced; logits [tokens x vocab], routing per decoder layer.
Status RunDocument(engine::Model& model, const Document& doc, std::vector<float>* logits,
                   std::vector<engine::LayerRouting>* routing) {
  if (doc.tokens.size() < 2) return InvalidArgument("a document needs at least 2 tokens");
  engine::LatentKvCache cache(model.config(), static_cast<int64_t>(doc.tokens.size()));
  engine::SequenceInput in{&cache, doc.tokens};
  engine::ForwardOptions options;
  options.all_logits = true;
  options.routing = routing;
  return model.Forward({&in, 1}, options, logits);
}

}  // namespace

StatusOr<std::vector<std::vector<double>>> MeasureExpertLoads(engine::Model& model,
                                                              std::span<const Document> documents) {
  const ModelConfig& c = model.config();
  KUBEMOE_RETURN_IF_ERROR(model.ConfigureModelFaithfulRouting());
  std::vector<std::vector<double>> loads(static_cast<size_t>(c.NumMoeLayers()),
                                         std::vector<double>(static_cast<size_t>(c.n_routed_experts)));
  std::vector<float> logits;
  std::vector<engine::LayerRouting> routing;
  for (const Document& doc : documents) {
    KUBEMOE_RETURN_IF_ERROR(RunDocument(model, doc, &logits, &routing));
    size_t moe = 0;
    for (const engine::LayerRouting& layer : routing) {
      if (layer.expert_ids.empty()) continue;
      for (int32_t e : layer.expert_ids) loads[moe][static_cast<size_t>(e)] += 1;
      ++moe;
    }
  }
  return loads;
}

StatusOr<std::vector<CaseResult>> EvaluateDeviceLimits(engine::Model& model,
                                                       std::span<const Document> documents,
                                                       std::span<const DeviceLimitCase> cases) {
  const ModelConfig& c = model.config();
  const auto vocab = static_cast<size_t>(c.vocab_size);
  const auto top_k = static_cast<size_t>(c.num_experts_per_tok);
  std::vector<std::vector<routing::RouterConfig>> configs;
  std::vector<CaseResult> results(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    StatusOr<std::vector<routing::RouterConfig>> rc =
        router::RouterConfigsFor(c, cases[i].placement, cases[i].device_limit, 0);
    if (!rc.ok()) {
      return Status(rc.status().code(), "case " + std::to_string(i) + ": " + rc.status().message());
    }
    configs.push_back(std::move(*rc));
    results[i].policy = placement::PolicyName(cases[i].placement.policy);
    results[i].devices = cases[i].placement.num_devices();
    results[i].device_limit = cases[i].device_limit;
  }
  std::vector<double> sum_kl(cases.size()), destinations(cases.size());
  std::vector<int64_t> divergent(cases.size()), divergent_tokens(cases.size());

  std::vector<float> faithful_logits, logits;
  std::vector<engine::LayerRouting> routing;
  std::vector<double> log_p, log_q;
  std::vector<double> faithful_log_probs;  // [positions x vocab] of the current document
  for (const Document& doc : documents) {
    KUBEMOE_RETURN_IF_ERROR(model.ConfigureModelFaithfulRouting());
    KUBEMOE_RETURN_IF_ERROR(RunDocument(model, doc, &faithful_logits, nullptr));
    const size_t positions = doc.tokens.size() - 1;  // rows that predict a next token
    faithful_log_probs.resize(positions * vocab);
    for (size_t t = 0; t < positions; ++t) {
      engine::LogSoftmax(std::span<const float>(faithful_logits).subspan(t * vocab, vocab), log_p);
      std::copy(log_p.begin(), log_p.end(), faithful_log_probs.begin() + static_cast<std::ptrdiff_t>(t * vocab));
    }
    for (size_t i = 0; i < cases.size(); ++i) {
      KUBEMOE_RETURN_IF_ERROR(model.ConfigureRouting(configs[i], cases[i].placement.version));
      KUBEMOE_RETURN_IF_ERROR(RunDocument(model, doc, &logits, &routing));
      CaseResult& r = results[i];
      for (size_t t = 0; t < positions; ++t) {
        engine::LogSoftmax(std::span<const float>(logits).subspan(t * vocab, vocab), log_q);
        r.nll_sum -= log_q[static_cast<size_t>(doc.tokens[t + 1])];
        const double kl = engine::KlDivergence(
            std::span<const double>(faithful_log_probs).subspan(t * vocab, vocab), log_q);
        sum_kl[i] += kl;
        r.max_kl = std::max(r.max_kl, kl);
      }
      r.scored_tokens += static_cast<int64_t>(positions);
      std::vector<uint8_t> token_diverged(doc.tokens.size(), 0);
      for (const engine::LayerRouting& layer : routing) {
        if (layer.expert_ids.empty()) continue;
        const size_t rows = layer.expert_ids.size() / top_k;
        r.routings += static_cast<int64_t>(rows);
        for (size_t row = 0; row < rows; ++row) {
          if (!layer.differs_from_model.empty() && layer.differs_from_model[row] != 0) {
            ++divergent[i];
            token_diverged[row] = 1;
          }
          std::vector<int32_t> used(layer.devices.begin() + static_cast<std::ptrdiff_t>(row * top_k),
                                    layer.devices.begin() + static_cast<std::ptrdiff_t>((row + 1) * top_k));
          std::sort(used.begin(), used.end());
          destinations[i] += static_cast<double>(std::unique(used.begin(), used.end()) - used.begin());
        }
      }
      divergent_tokens[i] += std::count(token_diverged.begin(), token_diverged.end(), 1);
    }
  }
  KUBEMOE_RETURN_IF_ERROR(model.ConfigureModelFaithfulRouting());

  int64_t token_rows = 0;
  for (const Document& doc : documents) token_rows += static_cast<int64_t>(doc.tokens.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    CaseResult& r = results[i];
    const auto scored = static_cast<double>(std::max<int64_t>(r.scored_tokens, 1));
    r.perplexity = std::exp(r.nll_sum / scored);
    r.mean_kl = sum_kl[i] / scored;
    const auto rows = static_cast<double>(std::max<int64_t>(token_rows, 1));
    r.divergent_fraction =
        static_cast<double>(divergent[i]) / static_cast<double>(std::max<int64_t>(r.routings, 1));
    r.tokens_divergent_fraction = static_cast<double>(divergent_tokens[i]) / rows;
    r.destinations_per_token = destinations[i] / rows;
    r.dispatch_bytes_per_token =
        r.destinations_per_token * 2.0 * static_cast<double>(c.hidden_size) * 2.0;
  }
  return results;
}

}  // namespace kubemoe::eval
