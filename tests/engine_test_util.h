// Helpers shared by the engine tests: small random models written with the project's own
// checkpoint writer and loaded back through the engine's loader.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>

#include "engine/model.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "tests/temp_dir.h"

namespace kubemoe::engine::testing {

using ::kubemoe::TempDir;

// A temporary directory removed on destruction.
inline std::string TestTokenizerJson() {
  std::ifstream in(std::string(KUBEMOE_SOURCE_DIR) + "/tests/data/tokenizer/tokenizer.json");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The `tiny` preset (q_lora, group-limited routing, dense first layer, YaRN with
// mscale_all_dim 0.707), changed by `edit`, with random f32 weights (initializer_range 0.1 so
// activations are not vanishingly small), loaded as a Model.
inline std::unique_ptr<Model> TinyModel(const std::function<void(ModelConfig&)>& edit = nullptr,
                                        uint64_t seed = 7) {
  StatusOr<ModelConfig> config = PresetConfig("tiny", 1205, 1200, 1201);
  EXPECT_TRUE(config.ok());
  config->initializer_range = 0.1;
  if (edit) edit(*config);
  EXPECT_TRUE(ValidateModelConfig(*config).ok());
  TempDir dir;
  RandomCheckpointOptions options;
  options.out_dir = dir.path();
  options.seed = seed;
  Status written = WriteRandomCheckpoint(*config, TestTokenizerJson(), options);
  EXPECT_TRUE(written.ok()) << written.ToString();
  StatusOr<std::unique_ptr<Model>> model = Model::Load(dir.path());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? std::move(*model) : nullptr;
}

// max |a - b| / max |b|.
inline double RelError(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return a.size() == b.size() ? diff / scale : 1e30;
}

}  // namespace kubemoe::engine::testing
