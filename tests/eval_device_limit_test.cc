// kubemoe eval's measurements: faithful cases reproduce the model exactly, the group-limited
// identity (M = topk_group on n_group contiguous devices) holds, a tight limit on a greedy model
// shows divergence and KL, and perplexity is what the model's own logits give.
#include "eval/device_limit_eval.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/kv_cache.h"
#include "placement/load_balanced.h"
#include "tests/engine_test_util.h"

namespace kubemoe::eval {
namespace {

std::vector<Document> RandomDocuments(const ModelConfig& c, int count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> id(3, static_cast<int32_t>(c.vocab_size) - 1);
  std::vector<Document> docs(count);
  for (int i = 0; i < count; ++i) {
    docs[i].tokens.push_back(1);
    for (int t = 0; t < 20 + 7 * i; ++t) docs[i].tokens.push_back(id(rng));
  }
  return docs;
}

placement::Placement Contiguous(const ModelConfig& c, int32_t devices) {
  placement::PlacementSpec spec;
  spec.routed_experts = static_cast<int32_t>(c.n_routed_experts);
  spec.moe_layers = static_cast<int32_t>(c.NumMoeLayers());
  spec.shards = devices;
  StatusOr<placement::Placement> p = placement::ComputePlacement(spec);
  EXPECT_TRUE(p.ok());
  return *p;
}

// -sum log p(next token) straight from Model::Forward, in double.
double ReferenceNll(engine::Model& model, const std::vector<Document>& docs) {
  const auto vocab = static_cast<size_t>(model.config().vocab_size);
  double nll = 0;
  for (const Document& doc : docs) {
    engine::LatentKvCache cache(model.config(), static_cast<int64_t>(doc.tokens.size()));
    engine::SequenceInput in{&cache, doc.tokens};
    engine::ForwardOptions options;
    options.all_logits = true;
    std::vector<float> logits;
    EXPECT_TRUE(model.Forward({&in, 1}, options, &logits).ok());
    for (size_t t = 0; t + 1 < doc.tokens.size(); ++t) {
      double max = -INFINITY, sum = 0;
      for (size_t v = 0; v < vocab; ++v) max = std::max(max, double{logits[t * vocab + v]});
      for (size_t v = 0; v < vocab; ++v) sum += std::exp(double{logits[t * vocab + v]} - max);
      nll -= double{logits[t * vocab + static_cast<size_t>(doc.tokens[t + 1])]} - max - std::log(sum);
    }
  }
  return nll;
}

TEST(DeviceLimitEvalTest, GroupLimitedModelIsExactAtTopkGroupOnItsGroups) {
  auto model = engine::testing::TinyModel();
  ASSERT_NE(model, nullptr);
  const ModelConfig& c = model->config();
  const std::vector<Document> docs = RandomDocuments(c, 3, 1);
  const double reference = ReferenceNll(*model, docs);
  placement::Placement groups = Contiguous(c, static_cast<int32_t>(c.n_group));
  std::vector<DeviceLimitCase> cases = {{groups, 0},
                                        {groups, static_cast<int32_t>(c.topk_group)},
                                        {groups, static_cast<int32_t>(c.n_group)}};
  StatusOr<std::vector<CaseResult>> r = EvaluateDeviceLimits(*model, docs, cases);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  const CaseResult& faithful = (*r)[0];
  const CaseResult& at_group = (*r)[1];
  EXPECT_NEAR(faithful.nll_sum, reference, 1e-6 * std::fabs(reference));
  EXPECT_EQ(faithful.scored_tokens, 20 + 27 + 34);
  EXPECT_EQ(faithful.divergent_fraction, 0);
  EXPECT_EQ(faithful.mean_kl, 0);
  EXPECT_EQ(at_group.nll_sum, faithful.nll_sum);
  EXPECT_EQ(at_group.divergent_fraction, 0);
  EXPECT_EQ(at_group.mean_kl, 0);
  EXPECT_LE(at_group.destinations_per_token,
            static_cast<double>(c.topk_group * c.NumMoeLayers()) + 1e-12);
  // M = all devices is plain greedy, which the group-limited model was not built for.
  EXPECT_GT((*r)[2].divergent_fraction, 0);
  EXPECT_GT((*r)[2].mean_kl, 0);
  EXPECT_EQ((*r)[0].routings, (81 + 3) * c.NumMoeLayers());
}

TEST(DeviceLimitEvalTest, TightLimitOnGreedyModelCostsAndSavesDispatch) {
  auto model = engine::testing::TinyModel([](ModelConfig& c) {
    c.topk_method = TopkMethod::kGreedy;
    c.topk_method_name = "greedy";
    c.n_group = 1;
    c.topk_group = 1;
  });
  ASSERT_NE(model, nullptr);
  const ModelConfig& c = model->config();
  const std::vector<Document> docs = RandomDocuments(c, 2, 2);
  placement::Placement p = Contiguous(c, 4);
  std::vector<DeviceLimitCase> cases = {{p, 0}, {p, 1}, {p, 4}};
  StatusOr<std::vector<CaseResult>> r = EvaluateDeviceLimits(*model, docs, cases);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const CaseResult &faithful = (*r)[0], &one = (*r)[1], &all = (*r)[2];
  EXPECT_EQ(all.nll_sum, faithful.nll_sum);  // M = D selects exactly what greedy does
  EXPECT_EQ(all.divergent_fraction, 0);
  EXPECT_GT(one.divergent_fraction, 0.2);
  EXPECT_GT(one.mean_kl, 0);
  EXPECT_GE(one.tokens_divergent_fraction, one.divergent_fraction - 1e-12);
  EXPECT_DOUBLE_EQ(one.destinations_per_token, static_cast<double>(c.NumMoeLayers()));
  EXPECT_GT(faithful.destinations_per_token, one.destinations_per_token);
  EXPECT_DOUBLE_EQ(one.dispatch_bytes_per_token,
                   one.destinations_per_token * 4.0 * static_cast<double>(c.hidden_size));
  // The model is left with its own routing: a plain forward matches the faithful case.
  EXPECT_NEAR(ReferenceNll(*model, docs), faithful.nll_sum, 1e-9 * faithful.nll_sum);
}

TEST(DeviceLimitEvalTest, ExpertLoadsCountEverySelectionAndFeedLoadBalancing) {
  auto model = engine::testing::TinyModel();
  ASSERT_NE(model, nullptr);
  const ModelConfig& c = model->config();
  const std::vector<Document> docs = RandomDocuments(c, 2, 3);
  StatusOr<std::vector<std::vector<double>>> loads = MeasureExpertLoads(*model, docs);
  ASSERT_TRUE(loads.ok());
  ASSERT_EQ(loads->size(), static_cast<size_t>(c.NumMoeLayers()));
  for (const auto& layer : *loads) {
    double total = 0;
    for (double x : layer) total += x;
    EXPECT_EQ(total, static_cast<double>((21 + 28) * c.num_experts_per_tok));
  }
  placement::PlacementSpec spec;
  spec.routed_experts = static_cast<int32_t>(c.n_routed_experts);
  spec.moe_layers = static_cast<int32_t>(c.NumMoeLayers());
  spec.shards = 4;
  StatusOr<placement::Placement> balanced = placement::ComputeLoadBalancedPlacement(spec, *loads);
  ASSERT_TRUE(balanced.ok());
  std::vector<DeviceLimitCase> cases = {{*balanced, 2}};
  EXPECT_TRUE(EvaluateDeviceLimits(*model, docs, cases).ok());
}

TEST(DeviceLimitEvalTest, RejectsShortDocumentsAndForeignPlacements) {
  auto model = engine::testing::TinyModel();
  ASSERT_NE(model, nullptr);
  const ModelConfig& c = model->config();
  std::vector<Document> docs = {{{1}}};
  std::vector<DeviceLimitCase> cases = {{Contiguous(c, 4), 1}};
  EXPECT_EQ(EvaluateDeviceLimits(*model, docs, cases).status().code(), StatusCode::kInvalidArgument);
  placement::PlacementSpec spec;
  spec.routed_experts = 32;  // not this model's
  spec.moe_layers = static_cast<int32_t>(c.NumMoeLayers());
  spec.shards = 4;
  StatusOr<placement::Placement> other = placement::ComputePlacement(spec);
  ASSERT_TRUE(other.ok());
  docs = RandomDocuments(c, 1, 4);
  cases = {{*other, 0}};
  StatusOr<std::vector<CaseResult>> r = EvaluateDeviceLimits(*model, docs, cases);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("case 0"), std::string::npos);
}

}  // namespace
}  // namespace kubemoe::eval
