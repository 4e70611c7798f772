// Internal to model/config.cc: reads a config.json's rotary-embedding settings in both of the forms
// Hugging Face has written them.
//   transformers 4 (and the original DeepSeek-V2 release): "rope_theta" at the top level and
//     "rope_scaling": {"type": "yarn", "factor", ...} or null.
//   transformers 5: "rope_parameters": {"rope_type": "yarn" | "default", "rope_theta", "factor",
//     ...}; neither "rope_theta" nor "rope_scaling" is written. A config first saved by 4 keeps the
//     old "type" key beside "rope_type".
#pragma once

#include "model/config.h"
#include "model/config_fields.h"

namespace kubemoe::config_internal {

// Sets config->rope_theta and config->rope_scaling from `root`'s "rope_theta", "rope_scaling" and
// "rope_parameters". REQUIRES: config->max_position_embeddings already read (transformers 5 takes
// YaRN's original_max_position_embeddings from it when rope_parameters omits it).
//
// Any of these may be present; where two of them state the same setting they must agree, or the
// error names both fields. Only YaRN and plain RoPE are understood: another rope_type, an
// unknown key inside either dict, or a key whose value would change the computation in a way we
// do not implement (attention_factor, partial_rotary_factor != 1, truncate false) is an error
// naming the field, never silently dropped.
Status ReadRope(const FieldReader& root, ModelConfig* config);

}  // namespace kubemoe::config_internal
