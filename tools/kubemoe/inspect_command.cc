// `kubemoe inspect DIR`: what a checkpoint (or a bare config.json) describes: shapes, parameter
// counts, and the MLA KV-cache footprint against multi-head attention.
#include <cmath>
#include <cstdio>
#include <string>

#include "model/checkpoint_check.h"
#include "model/config.h"
#include "model/model_stats.h"
#include "tools/kubemoe/commands.h"

namespace kubemoe::cli {
namespace {

// 235741434880 -> "235,741,434,880"
std::string Grouped(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

// 235741434880 -> "235.74B"
std::string Short(int64_t value) {
  const double v = static_cast<double>(value);
  char buffer[32];
  if (v >= 1e9) {
    std::snprintf(buffer, sizeof buffer, "%.2fB", v / 1e9);
  } else if (v >= 1e6) {
    std::snprintf(buffer, sizeof buffer, "%.2fM", v / 1e6);
  } else if (v >= 1e3) {
    std::snprintf(buffer, sizeof buffer, "%.2fK", v / 1e3);
  } else {
    std::snprintf(buffer, sizeof buffer, "%lld", static_cast<long long>(value));
  }
  return buffer;
}

void PrintConfig(const ModelConfig& c) {
  std::printf("model: %s\n", c.source.c_str());
  std::printf("  layers %lld (%lld dense, %lld MoE), hidden %lld, heads %lld, vocab %lld%s\n",
              static_cast<long long>(c.num_hidden_layers),
              static_cast<long long>(c.num_hidden_layers - c.NumMoeLayers()),
              static_cast<long long>(c.NumMoeLayers()), static_cast<long long>(c.hidden_size),
              static_cast<long long>(c.num_attention_heads), static_cast<long long>(c.vocab_size),
              c.tie_word_embeddings ? ", tied embeddings" : "");
  std::printf("  attention: MLA, q_lora_rank %s, kv_lora_rank %lld, qk_nope %lld, qk_rope %lld, v %lld\n",
              c.q_lora_rank ? std::to_string(*c.q_lora_rank).c_str() : "null (q_proj)",
              static_cast<long long>(c.kv_lora_rank), static_cast<long long>(c.qk_nope_head_dim),
              static_cast<long long>(c.qk_rope_head_dim), static_cast<long long>(c.v_head_dim));
  if (c.rope_scaling) {
    const YarnScaling& y = *c.rope_scaling;
    std::printf("  rope: theta %g, yarn factor %g (original context %lld), mscale %g, mscale_all_dim %g\n",
                c.rope_theta, y.factor, static_cast<long long>(y.original_max_position_embeddings),
                y.mscale, y.mscale_all_dim);
  } else {
    std::printf("  rope: theta %g, no scaling\n", c.rope_theta);
  }
  if (c.is_moe()) {
    std::printf("  experts: %lld routed + %lld shared, top-%lld, moe_intermediate %lld, dense intermediate %lld\n",
                static_cast<long long>(c.n_routed_experts), static_cast<long long>(c.n_shared_experts),
                static_cast<long long>(c.num_experts_per_tok),
                static_cast<long long>(c.moe_intermediate_size),
                static_cast<long long>(c.intermediate_size));
    std::printf("  routing: %s", c.topk_method_name.c_str());
    if (c.topk_method == TopkMethod::kGroupLimitedGreedy) {
      std::printf(" (%lld groups, keep %lld)", static_cast<long long>(c.n_group),
                  static_cast<long long>(c.topk_group));
    }
    std::printf(", %s scores, %s\n", c.scoring_func == ScoringFunc::kSoftmax ? "softmax" : "sigmoid",
                c.norm_topk_prob ? "weights normalised (norm_topk_prob)"
                                 : ("weights x routed_scaling_factor " +
                                    std::to_string(c.routed_scaling_factor)).c_str());
  } else {
    std::printf("  dense model (no routed experts), intermediate %lld\n",
                static_cast<long long>(c.intermediate_size));
  }
}

void PrintParameters(const ModelConfig& c) {
  const ParameterCounts p = CountParameters(c);
  std::printf("parameters:\n");
  std::printf("  total      %9s (%s)\n", Short(p.total).c_str(), Grouped(p.total).c_str());
  std::printf("  activated  %9s (%s) per token; %s without the embedding lookup\n",
              Short(p.activated).c_str(), Grouped(p.activated).c_str(),
              Short(p.activated_without_embedding).c_str());
  const std::pair<const char*, int64_t> parts[] = {
      {"embedding", p.embedding},       {"lm_head", p.lm_head},
      {"attention (MLA)", p.attention}, {"dense MLP", p.dense_mlp},
      {"routed experts", p.routed_experts}, {"shared experts", p.shared_experts},
      {"gates", p.gates},               {"norms", p.norms}};
  for (const auto& [name, count] : parts) {
    std::printf("    %-16s %9s  %5.2f%%\n", name, Short(count).c_str(),
                100.0 * static_cast<double>(count) / static_cast<double>(p.total));
  }
}

void PrintKvCache(const ModelConfig& c, bool compare_with_67b) {
  const KvCacheStats s = ComputeKvCacheStats(c);
  std::printf("KV cache per token (elements, all layers):\n");
  std::printf("  MLA  (kv_lora_rank + qk_rope_head_dim) x layers = (%lld + %lld) x %lld = %s\n",
              static_cast<long long>(c.kv_lora_rank), static_cast<long long>(c.qk_rope_head_dim),
              static_cast<long long>(c.num_hidden_layers),
              Grouped(s.mla_elements_per_token).c_str());
  std::printf("  MHA  2 x heads x head_dim x layers = 2 x %lld x %lld x %lld = %s\n",
              static_cast<long long>(c.num_attention_heads),
              static_cast<long long>(c.qk_nope_head_dim),
              static_cast<long long>(c.num_hidden_layers),
              Grouped(s.mha_elements_per_token).c_str());
  std::printf("  MLA / MHA = %.3f%% (KV cache %.2f%% smaller than MHA of the same shape)\n",
              100.0 * s.mla_over_mha, 100.0 * (1.0 - s.mla_over_mha));
  if (compare_with_67b) {
    // The paper's 93.3% compares deployed DeepSeek-V2 with DeepSeek 67B (GQA: 95 layers, 8 KV
    // heads of 128, 16-bit cache), with V2's cache quantised to 6 bits per element on average.
    const int64_t dense67b = 2 * 8 * 128 * 95;
    const double bits_ratio = (static_cast<double>(s.mla_elements_per_token) * 6.0) /
                              (static_cast<double>(dense67b) * 16.0);
    std::printf("  vs DeepSeek 67B (2 x 8 KV heads x 128 x 95 layers = %s elements, 16-bit),\n"
                "  MLA cache at 6 bits/element: %s x 6 / (%s x 16) = %.2f%% -> %.2f%% smaller\n",
                Grouped(dense67b).c_str(), Grouped(s.mla_elements_per_token).c_str(),
                Grouped(dense67b).c_str(), 100.0 * bits_ratio, 100.0 * (1.0 - bits_ratio));
  }
}

void PrintWeights(const CheckpointSummary& s) {
  if (!s.has_weights) {
    std::printf("weights: none (config only)\n");
    return;
  }
  std::string dtypes;
  for (const auto& [name, count] : s.dtypes) {
    dtypes += (dtypes.empty() ? "" : ", ") + name + " x" + std::to_string(count);
  }
  std::printf("weights: %zu tensors in %zu file%s, %.1f MiB (%s); all match the config\n",
              s.tensors, s.shard_files, s.shard_files == 1 ? "" : "s",
              static_cast<double>(s.bytes) / (1024.0 * 1024.0), dtypes.c_str());
}

}  // namespace

void RegisterInspect(CLI::App& app, int* exit_code) {
  auto path = std::make_shared<std::string>();
  auto compare = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Summarise a checkpoint directory (or one holding only config.json)");
  cmd->add_option("DIR", *path, "Checkpoint directory or config.json")->required();
  cmd->add_flag("--vs-deepseek-67b", *compare,
                "Also compare the KV cache with DeepSeek 67B as the paper does");
  cmd->callback([path, compare, exit_code] {
    StatusOr<ModelConfig> config = LoadModelConfig(*path);
    if (!config.ok()) {
      std::fprintf(stderr, "kubemoe inspect: %s\n", config.status().message().c_str());
      *exit_code = 1;
      return;
    }
    PrintConfig(*config);
    PrintParameters(*config);
    PrintKvCache(*config, *compare);
    StatusOr<CheckpointSummary> weights = CheckCheckpoint(*path, *config);
    if (!weights.ok()) {
      std::fprintf(stderr, "kubemoe inspect: %s\n", weights.status().message().c_str());
      *exit_code = 1;
      return;
    }
    PrintWeights(*weights);
  });
}

}  // namespace kubemoe::cli
