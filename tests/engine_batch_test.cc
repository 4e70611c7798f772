// Batching sequences of different lengths gives what running them one at a time gives, for
// prefill logits, decode, and whole generations (greedy and seeded sampling); stop tokens and
// max_tokens end generations as documented. A sequence marked model_faithful in a device-limited
// batch gets exactly the logits of a model-faithful run, its neighbours those of a limited run.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "engine/engine.h"
#include "engine/model.h"
#include "engine/moe.h"
#include "tests/engine_test_util.h"

namespace kubemoe::engine {
namespace {

const std::vector<std::vector<int32_t>> kPrompts = {
    {11, 500, 7}, {1, 2, 3, 4, 5, 900, 1000}, {64, 65, 66, 67, 300, 301, 302, 303, 12, 13, 14, 15}};

TEST(Batch, PrefillAndDecodeEqualOneAtATime) {
  std::unique_ptr<Model> model = testing::TinyModel();
  ASSERT_TRUE(model);
  const ModelConfig& c = model->config();
  const auto v = static_cast<size_t>(c.vocab_size);
  // One at a time: prefill, then two decode steps with fixed tokens.
  std::vector<std::vector<float>> single;
  for (const auto& p : kPrompts) {
    LatentKvCache cache(c, 32);
    std::vector<float> logits, all;
    SequenceInput in{&cache, p};
    ASSERT_TRUE(model->Forward({&in, 1}, {.all_logits = true}, &logits).ok());
    all = logits;
    for (int32_t t : {5, 6}) {
      SequenceInput step{&cache, std::span<const int32_t>(&t, 1)};
      ASSERT_TRUE(model->Forward({&step, 1}, {}, &logits).ok());
      all.insert(all.end(), logits.begin(), logits.end());
    }
    single.push_back(all);
  }
  // Batched.
  std::vector<LatentKvCache> caches;
  for (size_t i = 0; i < kPrompts.size(); ++i) caches.emplace_back(c, 32);
  std::vector<SequenceInput> batch;
  for (size_t i = 0; i < kPrompts.size(); ++i) batch.push_back({&caches[i], kPrompts[i]});
  std::vector<float> logits;
  ASSERT_TRUE(model->Forward(batch, {.all_logits = true}, &logits).ok());
  std::vector<std::vector<float>> batched(kPrompts.size());
  size_t row = 0;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    batched[i].assign(logits.begin() + static_cast<std::ptrdiff_t>(row * v),
                      logits.begin() + static_cast<std::ptrdiff_t>((row + kPrompts[i].size()) * v));
    row += kPrompts[i].size();
  }
  for (int32_t t : {5, 6}) {
    std::vector<SequenceInput> step;
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      step.push_back({&caches[i], std::span<const int32_t>(&t, 1)});
    }
    ASSERT_TRUE(model->Forward(step, {}, &logits).ok());
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      batched[i].insert(batched[i].end(), logits.begin() + static_cast<std::ptrdiff_t>(i * v),
                        logits.begin() + static_cast<std::ptrdiff_t>((i + 1) * v));
    }
  }
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    EXPECT_LE(testing::RelError(batched[i], single[i]), 1e-5) << "sequence " << i;
  }
}

TEST(Batch, GenerationsEqualOneAtATime) {
  std::unique_ptr<Model> model = testing::TinyModel();
  ASSERT_TRUE(model);
  Engine engine(model.get());
  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    GenerationRequest r;
    r.prompt = kPrompts[i];
    r.max_tokens = 6 + static_cast<int64_t>(i);
    r.stop_at_eos = false;
    if (i == 1) r.sampling = {.temperature = 0.8f, .top_p = 0.95f, .top_k = 50, .seed = 42};
    requests.push_back(r);
  }
  std::vector<std::vector<int32_t>> streamed(requests.size());
  GenerationStats stats;
  auto batched = engine.Generate(
      requests, [&](size_t i, int32_t t) { streamed[i].push_back(t); }, &stats);
  ASSERT_TRUE(batched.ok()) << batched.status().ToString();
  EXPECT_EQ(stats.prefill_tokens, 3 + 7 + 12);
  EXPECT_EQ(stats.decode_tokens, 5 + 6 + 7);  // the first token of each comes from prefill
  for (size_t i = 0; i < requests.size(); ++i) {
    auto alone = engine.Generate({requests[i]}, nullptr, nullptr);
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ((*batched)[i].tokens, (*alone)[0].tokens) << "request " << i;
    EXPECT_EQ((*batched)[i].tokens, streamed[i]);
    EXPECT_EQ((*batched)[i].tokens.size(), static_cast<size_t>(requests[i].max_tokens));
    EXPECT_EQ((*batched)[i].finish, FinishReason::kLength);
  }
}

TEST(Batch, StopTokensEndAGeneration) {
  std::unique_ptr<Model> model = testing::TinyModel();
  ASSERT_TRUE(model);
  Engine engine(model.get());
  GenerationRequest r;
  r.prompt = kPrompts[2];
  r.max_tokens = 8;
  r.stop_at_eos = false;
  auto full = engine.Generate({r}, nullptr, nullptr);
  ASSERT_TRUE(full.ok());
  const std::vector<int32_t> tokens = (*full)[0].tokens;
  ASSERT_EQ(tokens.size(), 8u);
  // Stop at the first occurrence of the third token: output ends just before it.
  r.stop_tokens = {tokens[2]};
  const size_t first =
      static_cast<size_t>(std::find(tokens.begin(), tokens.end(), tokens[2]) - tokens.begin());
  auto stopped = engine.Generate({r}, nullptr, nullptr);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ((*stopped)[0].finish, FinishReason::kStop);
  EXPECT_EQ(
      (*stopped)[0].tokens,
      std::vector<int32_t>(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(first)));
  // The config's eos stops too when stop_at_eos is set.
  // (Same seed, same weights: only eos_token_id differs.)
  std::unique_ptr<Model> with_eos =
      testing::TinyModel([&](ModelConfig& c) { c.eos_token_id = tokens[0]; });
  ASSERT_TRUE(with_eos);
  Engine eos_engine(with_eos.get());
  r.stop_tokens.clear();
  r.stop_at_eos = true;
  auto eos = eos_engine.Generate({r}, nullptr, nullptr);
  ASSERT_TRUE(eos.ok());
  EXPECT_TRUE((*eos)[0].tokens.empty());
  EXPECT_EQ((*eos)[0].finish, FinishReason::kStop);
  // A second end-of-sequence id (config.json's eos_token_id as a list) stops as well.
  std::unique_ptr<Model> with_list = testing::TinyModel([&](ModelConfig& c) {
    c.eos_token_id = tokens[0] == 3 ? 4 : 3;  // never the token that must stop
    c.extra_eos_token_ids = {tokens[0]};
  });
  ASSERT_TRUE(with_list);
  Engine list_engine(with_list.get());
  auto listed = list_engine.Generate({r}, nullptr, nullptr);
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE((*listed)[0].tokens.empty());
  EXPECT_EQ((*listed)[0].finish, FinishReason::kStop);
  // Errors are values.
  r.prompt.clear();
  EXPECT_EQ(engine.Generate({r}, nullptr, nullptr).status().code(), StatusCode::kInvalidArgument);
  r.prompt = {1 << 20};
  EXPECT_EQ(engine.Generate({r}, nullptr, nullptr).status().code(), StatusCode::kInvalidArgument);
  // Past the context: refused before the cache is allocated (max_tokens used to size it unbounded).
  r.prompt = kPrompts[0];
  r.max_tokens = int64_t{1} << 60;
  EXPECT_EQ(engine.Generate({r}, nullptr, nullptr).status().code(), StatusCode::kOutOfRange);
  r.max_tokens = model->config().max_position_embeddings - static_cast<int64_t>(r.prompt.size()) + 1;
  EXPECT_EQ(engine.Generate({r}, nullptr, nullptr).status().code(), StatusCode::kOutOfRange);
  // Forward itself refuses positions past max_position_embeddings, whatever the cache holds.
  const int64_t context = model->config().max_position_embeddings;
  LatentKvCache big(model->config(), context + 1);
  std::vector<int32_t> many(static_cast<size_t>(context + 1), 5);
  SequenceInput too_long{&big, many};
  std::vector<float> logits;
  EXPECT_EQ(model->Forward({&too_long, 1}, {}, &logits).code(), StatusCode::kInvalidArgument);
}

// Routing every MoE layer of `model` over 4 contiguous devices with `device_limit`.
void RouteOverFourDevices(Model& model, int32_t device_limit) {
  const ModelConfig& c = model.config();
  std::vector<routing::RouterConfig> configs(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (!c.IsMoeLayer(l)) continue;
    routing::RouterConfig& rc = configs[static_cast<size_t>(l)];
    rc.gate = GateConfigFromModel(c);
    rc.placement.num_devices = 4;
    rc.placement.expert_devices.resize(static_cast<size_t>(c.n_routed_experts));
    for (int64_t e = 0; e < c.n_routed_experts; ++e) {
      rc.placement.expert_devices[static_cast<size_t>(e)] = {static_cast<int32_t>(e * 4 / c.n_routed_experts)};
    }
    rc.device_limit = device_limit;
  }
  ASSERT_TRUE(model.ConfigureRouting(configs, 7).ok());
}

TEST(Batch, ModelFaithfulSequencesRideInADeviceLimitedBatch) {
  std::unique_ptr<Model> model = testing::TinyModel();
  ASSERT_TRUE(model);
  const ModelConfig& c = model->config();
  auto run = [&](int32_t limit, const std::vector<uint8_t>& faithful, std::vector<LayerRouting>* trace) {
    RouteOverFourDevices(*model, limit);
    std::vector<LatentKvCache> caches;
    for (size_t i = 0; i < kPrompts.size(); ++i) caches.emplace_back(c, 32);
    std::vector<SequenceInput> batch;
    for (size_t i = 0; i < kPrompts.size(); ++i) batch.push_back({&caches[i], kPrompts[i]});
    std::vector<float> logits;
    ForwardOptions options;
    options.model_faithful = faithful;
    options.routing = trace;
    EXPECT_TRUE(model->Forward(batch, options, &logits).ok());
    return logits;
  };
  const std::vector<float> limited = run(1, {}, nullptr);
  const std::vector<float> unlimited = run(0, {}, nullptr);
  std::vector<LayerRouting> trace;
  const std::vector<float> mixed = run(1, {0, 1, 0}, &trace);
  const auto v = static_cast<size_t>(c.vocab_size);
  auto row = [&](const std::vector<float>& all, size_t i) {
    return std::vector<float>(all.begin() + static_cast<std::ptrdiff_t>(i * v),
                              all.begin() + static_cast<std::ptrdiff_t>((i + 1) * v));
  };
  // The limit changes sequence 1 far beyond rounding; riding in the batch changes nothing.
  ASSERT_GT(testing::RelError(row(limited, 1), row(unlimited, 1)), 1e-3);
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    const std::vector<float>& want = i == 1 ? unlimited : limited;
    EXPECT_LE(testing::RelError(row(mixed, i), row(want, i)), 1e-5) << "sequence " << i;
  }
  // The faithful rows are never counted as diverging.
  for (const LayerRouting& layer : trace) {
    if (layer.expert_ids.empty()) continue;
    const size_t first = kPrompts[0].size(), count = kPrompts[1].size();
    for (size_t r = first; r < first + count; ++r) EXPECT_EQ(layer.differs_from_model[r], 0);
  }
  RouteOverFourDevices(*model, 1);
  LatentKvCache cache(c, 32);
  SequenceInput one{&cache, kPrompts[0]};
  std::vector<uint8_t> wrong = {1, 0};
  std::vector<float> logits;
  EXPECT_EQ(model->Forward({&one, 1}, {.model_faithful = wrong}, &logits).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kubemoe::engine
