// `kubemoe eval`: what serving-time device-limited routing costs a model, measured on held-out
// text (eval/device_limit_eval.h). For each device count and placement policy it runs every
// device limit M = 1..D and prints perplexity, divergence from the model-faithful selection,
// the KL divergence of next-token distributions, destinations and dispatch bytes per token.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/model.h"
#include "eval/device_limit_eval.h"
#include "model/tokenizer.h"
#include "placement/load_balanced.h"
#include "placement/placement.h"
#include "tools/kubemoe/commands.h"

namespace kubemoe::cli {
namespace {

struct EvalFlags {
  std::string model_dir;
  std::string text_path;
  std::vector<int32_t> devices = {4, 8};
  std::vector<std::string> policies = {"contiguous", "loadBalanced"};
  int64_t max_documents = 0;
  std::string json_path;
};

int Fail(const Status& status) {
  std::fprintf(stderr, "kubemoe eval: %s\n", status.message().c_str());
  return 1;
}

// JSON Lines with a "text" field per line (the held-out split the training tool writes).
StatusOr<std::vector<eval::Document>> ReadDocuments(const EvalFlags& flags,
                                                    const Tokenizer& tokenizer,
                                                    int64_t max_tokens) {
  std::ifstream in(flags.text_path);
  if (!in) return NotFound("cannot read " + flags.text_path);
  std::vector<eval::Document> docs;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    const std::string where = flags.text_path + ":" + std::to_string(number);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
      return InvalidArgument(where + ": expected a JSON object with a string \"text\"");
    }
    eval::Document doc{tokenizer.Encode(j["text"].get<std::string>(), true)};
    if (doc.tokens.size() < 2) return InvalidArgument(where + ": the text encodes to < 2 tokens");
    if (static_cast<int64_t>(doc.tokens.size()) > max_tokens) {
      return InvalidArgument(where + ": " + std::to_string(doc.tokens.size()) +
                             " tokens exceed the model's context of " + std::to_string(max_tokens));
    }
    docs.push_back(std::move(doc));
    if (flags.max_documents > 0 && static_cast<int64_t>(docs.size()) >= flags.max_documents) break;
  }
  if (docs.empty()) return InvalidArgument(flags.text_path + " holds no documents");
  return docs;
}

int RunEval(const EvalFlags& flags) {
  StatusOr<Tokenizer> tokenizer =
      Tokenizer::FromFile((std::filesystem::path(flags.model_dir) / "tokenizer.json").string());
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  StatusOr<std::unique_ptr<engine::Model>> model = engine::Model::Load(flags.model_dir);
  if (!model.ok()) return Fail(model.status());
  const ModelConfig& c = (*model)->config();
  if (c.NumMoeLayers() == 0) return Fail(InvalidArgument("the model has no MoE layers"));
  StatusOr<std::vector<eval::Document>> docs =
      ReadDocuments(flags, *tokenizer, c.max_position_embeddings);
  if (!docs.ok()) return Fail(docs.status());

  std::vector<std::vector<double>> loads;
  std::vector<eval::DeviceLimitCase> cases;
  for (int32_t d : flags.devices) {
    placement::PlacementSpec spec;
    spec.routed_experts = static_cast<int32_t>(c.n_routed_experts);
    spec.moe_layers = static_cast<int32_t>(c.NumMoeLayers());
    spec.shards = d;
    for (const std::string& name : flags.policies) {
      StatusOr<placement::Policy> policy = placement::ParsePolicy(name);
      if (!policy.ok()) return Fail(policy.status());
      StatusOr<placement::Placement> p = Status::Ok();
      if (*policy == placement::Policy::kLoadBalanced) {
        if (loads.empty()) {
          StatusOr<std::vector<std::vector<double>>> measured =
              eval::MeasureExpertLoads(**model, *docs);
          if (!measured.ok()) return Fail(measured.status());
          loads = std::move(*measured);
        }
        p = placement::ComputeLoadBalancedPlacement(spec, loads);
      } else {
        spec.policy = *policy;
        p = placement::ComputePlacement(spec);
      }
      if (!p.ok()) return Fail(p.status());
      for (int32_t m = 0; m <= d; ++m) {  // 0: faithful on this placement (its destinations)
        // A limit whose devices cannot hold top_k experts is infeasible: skip it, as the
        // router's start-up check would refuse it.
        if (m > 0 && !placement::CheckRoutingFeasible(*p, static_cast<int32_t>(c.num_experts_per_tok), m).ok()) {
          continue;
        }
        cases.push_back({*p, m});
      }
    }
  }
  StatusOr<std::vector<eval::CaseResult>> results =
      eval::EvaluateDeviceLimits(**model, *docs, cases);
  if (!results.ok()) return Fail(results.status());

  nlohmann::json out = nlohmann::json::array();
  std::printf("%-13s %3s %3s %10s %10s %10s %10s %8s %12s\n", "placement", "D", "M", "perplexity",
              "divergent", "tok_diverg", "mean_kl", "dest/tok", "bytes/tok");
  for (const eval::CaseResult& r : *results) {
    std::printf("%-13s %3d %3s %10.4f %10.4f %10.4f %10.6f %8.3f %12.0f\n", r.policy.c_str(),
                r.devices, r.device_limit == 0 ? "-" : std::to_string(r.device_limit).c_str(),
                r.perplexity, r.divergent_fraction, r.tokens_divergent_fraction, r.mean_kl,
                r.destinations_per_token, r.dispatch_bytes_per_token);
    out.push_back({{"placement", r.policy},
                   {"devices", r.devices},
                   {"device_limit", r.device_limit},
                   {"scored_tokens", r.scored_tokens},
                   {"nll_sum", r.nll_sum},
                   {"perplexity", r.perplexity},
                   {"routings", r.routings},
                   {"divergent_fraction", r.divergent_fraction},
                   {"tokens_divergent_fraction", r.tokens_divergent_fraction},
                   {"mean_kl", r.mean_kl},
                   {"max_kl", r.max_kl},
                   {"destinations_per_token", r.destinations_per_token},
                   {"dispatch_bytes_per_token", r.dispatch_bytes_per_token}});
  }
  if (!flags.json_path.empty()) {
    nlohmann::json doc = {{"model", flags.model_dir},
                          {"text", flags.text_path},
                          {"documents", docs->size()},
                          {"topk_method", c.topk_method_name},
                          {"n_group", c.n_group},
                          {"topk_group", c.topk_group},
                          {"routed_experts", c.n_routed_experts},
                          {"top_k", c.num_experts_per_tok},
                          {"moe_layers", c.NumMoeLayers()},
                          {"results", out}};
    std::ofstream f(flags.json_path);
    f << doc.dump(1) << "\n";
    if (!f) return Fail(Internal("cannot write " + flags.json_path));
  }
  return 0;
}

}  // namespace

void RegisterEval(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<EvalFlags>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Measure what serving-time device-limited routing costs a model on held-out text");
  cmd->add_option("--model", flags->model_dir, "Checkpoint directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--text", flags->text_path, "JSON Lines file, one {\"text\": ...} per line")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--devices", flags->devices, "Device counts D to place the experts on")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--policies", flags->policies,
                  "Placements: contiguous, roundRobin, loadBalanced (balanced on the measured "
                  "faithful expert loads of the same text)");
  cmd->add_option("--max-documents", flags->max_documents, "Use the first N documents (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--json", flags->json_path, "Also write the results as JSON here");
  cmd->callback([flags, exit_code] { *exit_code = RunEval(*flags); });
}

}  // namespace kubemoe::cli
