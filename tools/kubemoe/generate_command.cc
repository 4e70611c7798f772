// `kubemoe generate`: runs the single-process CPU engine on one prompt and streams the text.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/model.h"
#include "model/tokenizer.h"
#include "model/tokenizer_utf8.h"  // RepairUtf8 (see the streaming comment below)
#include "tools/kubemoe/commands.h"

namespace kubemoe::cli {
namespace {

struct GenerateFlags {
  std::string model_dir;
  std::string prompt;
  int64_t max_tokens = 64;
  float temperature = 0.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  bool no_bos = false;
  int threads = 0;
  std::string weight_dtype = "as-stored";
  std::string kv_cache_dtype = "f32";
};

int Fail(const Status& status) {
  std::fprintf(stderr, "kubemoe generate: %s\n", status.message().c_str());
  return 1;
}

int RunGenerate(const GenerateFlags& flags) {
  const std::string tokenizer_path =
      (std::filesystem::path(flags.model_dir) / "tokenizer.json").string();
  StatusOr<Tokenizer> tokenizer = Tokenizer::FromFile(tokenizer_path);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  StatusOr<layers::WeightDType> dtype = layers::ParseWeightDType(flags.weight_dtype);
  if (!dtype.ok()) return Fail(dtype.status());
  StatusOr<engine::KvCacheDType> kv_dtype = engine::ParseKvCacheDType(flags.kv_cache_dtype);
  if (!kv_dtype.ok()) return Fail(kv_dtype.status());
  StatusOr<std::unique_ptr<engine::Model>> model =
      engine::Model::Load(flags.model_dir, {.weight_dtype = *dtype, .threads = flags.threads});
  if (!model.ok()) return Fail(model.status());

  engine::GenerationRequest request;
  request.prompt = tokenizer->Encode(flags.prompt, /*add_special_tokens=*/!flags.no_bos);
  if (request.prompt.empty()) {
    return Fail(
        InvalidArgument("the prompt encodes to no tokens; give some text or drop --no-bos"));
  }
  request.max_tokens = flags.max_tokens;
  request.sampling = {.temperature = flags.temperature,
                      .top_p = flags.top_p,
                      .top_k = flags.top_k,
                      .seed = flags.seed};
  if (std::optional<int32_t> eos = tokenizer->EosId()) request.stop_tokens.push_back(*eos);
  for (const std::string& s : flags.stop) {
    std::optional<int32_t> id = tokenizer->TokenId(s);
    if (!id) {
      std::vector<int32_t> ids = tokenizer->Encode(s, false);
      if (ids.size() != 1) {
        return Fail(InvalidArgument("--stop \"" + s + "\" is not a single token of the tokenizer"));
      }
      id = ids[0];
    }
    request.stop_tokens.push_back(*id);
  }

  // Tokens are byte pieces: print only complete UTF-8 characters and hold back a character that
  // later tokens may complete. Bytes that can never form a character are printed as U+FFFD, as
  // Tokenizer::Decode does, so the output is valid UTF-8.
  std::string pending;
  auto emit = [&](size_t n) {
    const std::string text = tokenizer_internal::RepairUtf8(std::string_view(pending).substr(0, n));
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    pending.erase(0, n);
  };
  auto on_token = [&](size_t, int32_t token) {
    pending += tokenizer->TokenBytes(token);
    emit(CompleteUtf8Prefix(pending));
  };
  std::fwrite(flags.prompt.data(), 1, flags.prompt.size(), stdout);
  engine::Engine engine(model->get(), *kv_dtype);
  engine::GenerationStats stats;
  StatusOr<std::vector<engine::GenerationResult>> results =
      engine.Generate({request}, on_token, &stats);
  if (!results.ok()) return Fail(results.status());
  emit(pending.size());
  std::printf("\n");
  const auto rate = [](int64_t tokens, double seconds) {
    return seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0;
  };
  std::fprintf(stderr,
               "[kubemoe] prompt %lld tokens, generated %zu (%s); prefill %.1f tokens/s, "
               "decode %.1f tokens/s\n",
               static_cast<long long>(stats.prefill_tokens), (*results)[0].tokens.size(),
               (*results)[0].finish == engine::FinishReason::kStop ? "stop" : "length",
               rate(stats.prefill_tokens, stats.prefill_seconds),
               rate(stats.decode_tokens, stats.decode_seconds));
  return 0;
}

}  // namespace

void RegisterGenerate(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "Generate text from a prompt with the single-process CPU engine");
  cmd->add_option("--model", flags->model_dir,
                  "Checkpoint directory (config.json, "
                  "*.safetensors, tokenizer.json)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--prompt", flags->prompt, "Prompt text")->required();
  cmd->add_option("--max-tokens", flags->max_tokens, "New tokens at most (>= 1)")
      ->check([](const std::string& v) {
        // CLI11's PositiveNumber message prints the double range; say plainly what is wrong.
        return std::strtoll(v.c_str(), nullptr, 10) >= 1 ? std::string()
                                                         : "must be at least 1, got " + v;
      });
  cmd->add_option("--temperature", flags->temperature, "0 = greedy")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", flags->top_p, "Nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--top-k", flags->top_k, "Keep the K most likely tokens (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", flags->seed, "Random seed; same seed, same output");
  cmd->add_option("--stop", flags->stop, "Extra stop token (repeatable)");
  cmd->add_flag("--no-bos", flags->no_bos, "Do not add the tokenizer's special tokens");
  cmd->add_option("--threads", flags->threads,
                  "Compute threads (0 = the cores this process may use)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--weight-dtype", flags->weight_dtype,
                  "Weights as stored in the checkpoint (as-stored, bf16) or quantized to q8_0")
      ->capture_default_str();
  cmd->add_option("--kv-cache-dtype", flags->kv_cache_dtype,
                  "Latent KV cache rows: f32 (exact) or bf16 (half the memory)")
      ->capture_default_str();
  cmd->callback([flags, exit_code] { *exit_code = RunGenerate(*flags); });
}

}  // namespace kubemoe::cli
