// Built-in model shapes for `kubemoe make-model --preset NAME`.
//   tiny:  a few-MB model for tests (3 layers, 16 experts in 4 groups, group-limited routing).
//   bench: DeepSeek-V2-Lite's expert and attention shapes (hidden 2048, 64 experts of
//          intermediate 1408, top-6, kv_lora_rank 512, no q_lora) with few layers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace kubemoe {

std::vector<std::string> PresetNames();

// The preset's config with the given vocabulary size and special token ids (those of the
// tokenizer that ships with the checkpoint). Returns NotFound for an unknown name.
StatusOr<ModelConfig> PresetConfig(std::string_view name, int64_t vocab_size,
                                   std::optional<int64_t> bos_token_id,
                                   std::optional<int64_t> eos_token_id);

}  // namespace kubemoe
