// `kubemoe make-model`: writes a small random checkpoint in Hugging Face format.
#include <cstdio>
#include <string>

#include "model/config.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "model/tokenizer.h"
#include "tools/kubemoe/commands.h"

namespace kubemoe {
extern const std::string_view kEmbeddedTokenizerJson;  // tests/data/tokenizer/tokenizer.json
}

namespace kubemoe::cli {
namespace {

struct MakeModelFlags {
  std::string preset;
  std::string config_path;
  std::string out_dir;
  std::string dtype = "f32";
  uint64_t seed = 0;
  int64_t layers = 0;
  double max_shard_mb = 0;
};

int Fail(const Status& status) {
  std::fprintf(stderr, "kubemoe make-model: %s\n", status.message().c_str());
  return 1;
}

int RunMakeModel(const MakeModelFlags& flags) {
  StatusOr<Tokenizer> tokenizer = Tokenizer::FromJson(kEmbeddedTokenizerJson, "embedded tokenizer");
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  const int64_t tokenizer_vocab = tokenizer->VocabSize();

  StatusOr<ModelConfig> config = Internal("no config");
  if (!flags.config_path.empty()) {
    config = LoadModelConfig(flags.config_path);
  } else {
    auto bos = tokenizer->TokenId("<｜begin▁of▁sentence｜>");
    auto eos = tokenizer->TokenId("<｜end▁of▁sentence｜>");
    config = PresetConfig(flags.preset, tokenizer_vocab,
                          bos ? std::optional<int64_t>(*bos) : std::nullopt,
                          eos ? std::optional<int64_t>(*eos) : std::nullopt);
  }
  if (!config.ok()) return Fail(config.status());
  if (flags.layers > 0) {
    config->num_hidden_layers = flags.layers;
    if (Status s = ValidateModelConfig(*config); !s.ok()) return Fail(s);
  }
  if (config->vocab_size < tokenizer_vocab) {
    return Fail(InvalidArgument(config->source + ": vocab_size " +
                                std::to_string(config->vocab_size) +
                                " is smaller than the bundled tokenizer's " +
                                std::to_string(tokenizer_vocab) + " tokens"));
  }

  RandomCheckpointOptions options;
  options.out_dir = flags.out_dir;
  options.seed = flags.seed;
  options.max_shard_bytes = static_cast<uint64_t>(flags.max_shard_mb * 1024 * 1024);
  if (flags.dtype == "f32") {
    options.dtype = DType::kF32;
  } else if (flags.dtype == "bf16") {
    options.dtype = DType::kBF16;
  } else if (flags.dtype == "f16") {
    options.dtype = DType::kF16;
  } else {
    return Fail(InvalidArgument("--dtype must be f32, bf16 or f16, got " + flags.dtype));
  }
  if (Status s = WriteRandomCheckpoint(*config, kEmbeddedTokenizerJson, options); !s.ok()) {
    return Fail(s);
  }
  std::printf("wrote %s (%s, %lld layers, %lld routed experts, %s)\n", flags.out_dir.c_str(),
              flags.config_path.empty() ? ("preset " + flags.preset).c_str()
                                        : flags.config_path.c_str(),
              static_cast<long long>(config->num_hidden_layers),
              static_cast<long long>(config->n_routed_experts), flags.dtype.c_str());
  return 0;
}

}  // namespace

void RegisterMakeModel(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<MakeModelFlags>();
  CLI::App* cmd = app.add_subcommand(
      "make-model", "Write a random DeepSeek-V2 checkpoint (config.json, safetensors, tokenizer.json)");
  auto* preset = cmd->add_option("--preset", flags->preset, "Built-in shape: tiny (tests) or bench")
                     ->check(CLI::IsMember(PresetNames()));
  auto* config = cmd->add_option("--config", flags->config_path,
                                 "A config.json (or its directory) to build the weights for");
  preset->excludes(config);
  cmd->add_option("--out", flags->out_dir, "Output directory")->required();
  cmd->add_option("--dtype", flags->dtype, "Weight dtype: f32, bf16 or f16")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  cmd->add_option("--seed", flags->seed, "Random seed (weights depend on seed and tensor name)");
  cmd->add_option("--layers", flags->layers, "Override num_hidden_layers")->check(CLI::PositiveNumber);
  cmd->add_option("--max-shard-mb", flags->max_shard_mb,
                  "Split into shards of at most this many MiB with model.safetensors.index.json")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([flags, preset, config, exit_code] {
    if (preset->count() == 0 && config->count() == 0) {
      throw CLI::ValidationError("make-model", "one of --preset or --config is required");
    }
    *exit_code = RunMakeModel(*flags);
  });
}

}  // namespace kubemoe::cli
