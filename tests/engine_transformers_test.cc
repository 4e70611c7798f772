// The CPU engine against Hugging Face transformers' own DeepseekV2ForCausalLM on the fixtures in
// tests/data/transformers/<name>/ (made by tools/make_transformers_fixtures.py): logits at every
// prompt position, logits of every greedy decode step (absorbed MLA over the latent cache), the
// greedy continuations (also when all prompts run as one batch) and the routing of every token.
//
// Bound: per position, max |ours - ref| / max |ref| <= 1e-4. The bf16 fixture's reference is the
// f32 forward of the bf16-rounded weights, and we widen bf16 to f32 exactly, so the same bound
// applies to it.
//
// The fixtures are listed by name (kExpectedFixtures). A listed fixture that is missing or lacks
// one of its files fails the test, and so does a directory that is not listed: each fixture covers
// a branch no other covers, so none may silently drop out.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"
#include "engine/model.h"
#include "model/safetensors.h"

namespace kubemoe::engine {
namespace {

namespace fs = std::filesystem;

constexpr double kBound = 1e-4;

// Every fixture tools/make_transformers_fixtures.py writes (its FIXTURES list), with what it alone
// covers; tools/README-fixtures.md describes each.
constexpr std::array<std::string_view, 10> kExpectedFixtures = {
    "dense2_shared2_tied",       // first_k_dense_replace 2, two shared experts, tied embeddings
    "greedy_qproj",              // greedy routing, plain q_proj
    "group_limited_qlora",       // group_limited_greedy, q_lora_rank, routed_scaling_factor 2.5
    "group_limited_qlora_bf16",  // BF16 checkpoint
    "moe_freq2",                 // moe_layer_freq 2: dense layers between MoE layers
    "norm_topk_top3",            // norm_topk_prob: renormalised weights, no scaling factor
    "rms_eps_1e5_qlora",         // rms_norm_eps 1e-5 (latent norms keep 1e-6)
    "yarn_all_moe",              // YaRN factor 4 without mscale, every layer MoE
    "yarn_mscale_ratio_tf5",     // transformers 5 config.json, YaRN mscale 1 / mscale_all_dim 0.707
    "yarn_mscale_v2",            // YaRN as released V2: factor 40, mscale = mscale_all_dim = 0.707
};

// The files each fixture directory must hold.
constexpr std::array<std::string_view, 5> kFixtureFiles = {"config.json", "generation_config.json",
                                                           "model.safetensors", "reference.json",
                                                           "reference.safetensors"};

fs::path FixtureRoot() { return fs::path(KUBEMOE_SOURCE_DIR) / "tests" / "data" / "transformers"; }

// What is wrong with the fixture directory `dir`; empty when it holds every file.
std::string MissingFiles(const fs::path& dir) {
  if (!fs::is_directory(dir)) return dir.string() + " does not exist";
  std::string missing;
  for (std::string_view file : kFixtureFiles) {
    if (!fs::is_regular_file(dir / file)) {
      missing += ' ';
      missing += file;
    }
  }
  return missing.empty() ? "" : dir.string() + " lacks" + missing;
}

std::vector<fs::path> FixtureDirs() {
  std::vector<fs::path> dirs;
  for (std::string_view name : kExpectedFixtures) dirs.push_back(FixtureRoot() / name);
  return dirs;
}

// max |a - b| / max |b| over one row.
double RelError(const float* a, const float* b, size_t n) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

int32_t ArgMax(const float* row, size_t n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

struct Fixture {
  std::string name;
  nlohmann::json ref;
  std::unique_ptr<Model> model;
  std::unique_ptr<SafetensorsFile> arrays;

  std::vector<float> Array(const std::string& key) const {
    StatusOr<std::vector<float>> v = arrays->ReadFloat(key);
    EXPECT_TRUE(v.ok()) << name << ": " << v.status().ToString();
    return v.ok() ? *v : std::vector<float>{};
  }
};

Fixture LoadFixture(const fs::path& dir) {
  Fixture f;
  f.name = dir.filename().string();
  std::ifstream in(dir / "reference.json");
  f.ref = nlohmann::json::parse(in);
  StatusOr<std::unique_ptr<Model>> model = Model::Load(dir.string());
  EXPECT_TRUE(model.ok()) << f.name << ": " << model.status().ToString();
  if (model.ok()) f.model = std::move(*model);
  StatusOr<SafetensorsFile> arrays =
      SafetensorsFile::Open((dir / "reference.safetensors").string());
  EXPECT_TRUE(arrays.ok()) << arrays.status().ToString();
  if (arrays.ok()) f.arrays = std::make_unique<SafetensorsFile>(std::move(*arrays));
  return f;
}

// Routing of our rows [row0, row0 + n) at `layer` against the reference rows from ref_row0.
void ExpectRouting(const Fixture& f, int p, int layer, const LayerRouting& ours, int64_t n,
                   int64_t ref_row0, double* max_weight_err) {
  const auto& ids =
      f.ref["routing"]["topk_ids"]["prompt" + std::to_string(p)]["layer" + std::to_string(layer)];
  const std::vector<float> weights =
      f.Array("prompt" + std::to_string(p) + ".layer" + std::to_string(layer) + ".topk_weights");
  const auto k = static_cast<int64_t>(f.model->config().num_experts_per_tok);
  for (int64_t t = 0; t < n; ++t) {
    const auto& want = ids[static_cast<size_t>(ref_row0 + t)];
    for (int64_t j = 0; j < k; ++j) {
      ASSERT_EQ(ours.expert_ids[static_cast<size_t>(t * k + j)],
                want[static_cast<size_t>(j)].get<int32_t>())
          << f.name << " prompt " << p << " layer " << layer << " row " << ref_row0 + t;
      const double w = weights[static_cast<size_t>((ref_row0 + t) * k + j)];
      *max_weight_err =
          std::max(*max_weight_err,
                   std::fabs(ours.weights[static_cast<size_t>(t * k + j)] - w) / std::fabs(w));
    }
  }
}

class TransformersFixtureTest : public ::testing::TestWithParam<fs::path> {};

TEST_P(TransformersFixtureTest, LogitsRoutingAndGreedyContinuations) {
  // A missing fixture is a broken checkout or generator, not a reason to skip.
  const std::string missing = MissingFiles(GetParam());
  ASSERT_EQ(missing, "") << "regenerate with tools/make_transformers_fixtures.py "
                            "(tools/README-fixtures.md)";
  Fixture f = LoadFixture(GetParam());
  ASSERT_TRUE(f.model && f.arrays);
  ASSERT_EQ(f.ref["config_name"].get<std::string>(), f.name);
  const ModelConfig& c = f.model->config();
  // The engine's dense/MoE split (the moe_layer_freq rule) must be the reference's.
  std::vector<int> engine_moe_layers;
  for (int layer = 0; layer < static_cast<int>(c.num_hidden_layers); ++layer) {
    if (c.IsMoeLayer(layer)) engine_moe_layers.push_back(layer);
  }
  ASSERT_EQ(engine_moe_layers, f.ref["moe_layers"].get<std::vector<int>>()) << f.name;
  const auto vocab = static_cast<size_t>(c.vocab_size);
  const auto& prompts = f.ref["prompts"];
  const auto& generated = f.ref["generated"];
  double worst_prefill = 0, worst_decode = 0, worst_weight = 0;
  for (size_t p = 0; p < prompts.size(); ++p) {
    const std::vector<int32_t> prompt = prompts[p].get<std::vector<int32_t>>();
    const std::vector<int32_t> gen = generated[p].get<std::vector<int32_t>>();
    const auto len = static_cast<int64_t>(prompt.size());
    LatentKvCache cache(c, len + static_cast<int64_t>(gen.size()));

    // Prefill (decompressed MLA): logits at every prompt position.
    std::vector<LayerRouting> routing;
    std::vector<float> logits;
    SequenceInput in{&cache, prompt};
    ForwardOptions all{
        .attention = ForwardOptions::Form::kAuto, .all_logits = true, .routing = &routing};
    ASSERT_TRUE(f.model->Forward({&in, 1}, all, &logits).ok());
    const std::vector<float> ref_logits = f.Array("prompt" + std::to_string(p) + ".logits");
    ASSERT_EQ(ref_logits.size(), logits.size());
    for (int64_t t = 0; t < len; ++t) {
      const double e = RelError(&logits[t * vocab], &ref_logits[t * vocab], vocab);
      worst_prefill = std::max(worst_prefill, e);
      EXPECT_LE(e, kBound) << f.name << " prompt " << p << " position " << t;
    }
    for (int layer : f.ref["moe_layers"].get<std::vector<int>>()) {
      ExpectRouting(f, static_cast<int>(p), layer, routing[static_cast<size_t>(layer)], len, 0,
                    &worst_weight);
    }

    // Decode (absorbed MLA), feeding the reference's tokens: logits of every step.
    const std::vector<float> ref_decode = f.Array("prompt" + std::to_string(p) + ".decode_logits");
    std::vector<float> step(logits.end() - static_cast<std::ptrdiff_t>(vocab), logits.end());
    for (size_t t = 0; t < gen.size(); ++t) {
      const double e = RelError(step.data(), &ref_decode[t * vocab], vocab);
      worst_decode = std::max(worst_decode, e);
      EXPECT_LE(e, kBound) << f.name << " prompt " << p << " decode step " << t;
      EXPECT_EQ(ArgMax(step.data(), vocab), gen[t]) << f.name << " prompt " << p << " step " << t;
      if (t + 1 == gen.size()) break;
      SequenceInput next{&cache, std::span<const int32_t>(&gen[t], 1)};
      ASSERT_TRUE(f.model->Forward({&next, 1}, {.routing = &routing}, &step).ok());
      for (int layer : f.ref["moe_layers"].get<std::vector<int>>()) {
        ExpectRouting(f, static_cast<int>(p), layer, routing[static_cast<size_t>(layer)], 1,
                      len + static_cast<int64_t>(t), &worst_weight);
      }
    }
  }
  EXPECT_LE(worst_weight, 1e-5) << f.name << ": routing weights";

  // The engine, all prompts in one batch of different lengths: greedy continuations.
  std::vector<GenerationRequest> requests;
  for (size_t p = 0; p < prompts.size(); ++p) {
    GenerationRequest r;
    r.prompt = prompts[p].get<std::vector<int32_t>>();
    r.max_tokens = static_cast<int64_t>(generated[p].size());
    r.stop_at_eos = false;  // the reference generated without an eos stop
    requests.push_back(r);
  }
  Engine engine(f.model.get());
  StatusOr<std::vector<GenerationResult>> results = engine.Generate(requests, nullptr, nullptr);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  for (size_t p = 0; p < prompts.size(); ++p) {
    EXPECT_EQ((*results)[p].tokens, generated[p].get<std::vector<int32_t>>())
        << f.name << " prompt " << p;
  }
  std::printf("[fixture %s] %s: max rel error prefill %.3g, decode %.3g; routing weights %.3g\n",
              f.name.c_str(), f.ref["checkpoint_dtype"].get<std::string>().c_str(), worst_prefill,
              worst_decode, worst_weight);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TransformersFixtureTest, ::testing::ValuesIn(FixtureDirs()),
                         [](const auto& param_info) {
                           return param_info.param.filename().string();
                         });

TEST(TransformersFixtures, ExactlyTheExpectedFixturesArePresent) {
  // The fixtures are committed; their absence means a broken checkout, not a skip.
  for (const fs::path& dir : FixtureDirs()) EXPECT_EQ(MissingFiles(dir), "");
  // A directory the list does not name would go untested: add it to kExpectedFixtures.
  ASSERT_TRUE(fs::is_directory(FixtureRoot())) << FixtureRoot();
  for (const auto& entry : fs::directory_iterator(FixtureRoot())) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(std::find(kExpectedFixtures.begin(), kExpectedFixtures.end(), name) !=
                kExpectedFixtures.end())
        << entry.path() << " is not in kExpectedFixtures";
  }
}

TEST(TransformersFixtures, Transformers5ConfigForm) {
  // yarn_mscale_ratio_tf5 must stay in transformers 5's form, or it covers nothing new.
  std::ifstream in(FixtureRoot() / "yarn_mscale_ratio_tf5" / "config.json");
  ASSERT_TRUE(in) << "yarn_mscale_ratio_tf5/config.json is missing";
  const nlohmann::json config = nlohmann::json::parse(in);
  EXPECT_FALSE(config.contains("rope_scaling"));
  EXPECT_FALSE(config.contains("rope_theta"));
  ASSERT_TRUE(config.contains("rope_parameters"));
  EXPECT_EQ(config["rope_parameters"].value("rope_type", ""), "yarn");
  EXPECT_TRUE(config["rope_parameters"].contains("rope_theta"));
  EXPECT_NE(config["rope_parameters"].value("mscale_all_dim", 0.0), 0.0);
}

}  // namespace
}  // namespace kubemoe::engine
