// The DeepSeek-V2 forward pass over a batch of sequences on CPU: embedding, decoder layers
// (RMSNorm, MLA, RMSNorm, dense SwiGLU MLP or DeepSeekMoE, residuals), final norm and LM head.
//
//   StatusOr<Model> model = Model::Load("/models/tiny");
//   LatentKvCache cache(model->config(), 64);
//   std::vector<int32_t> prompt = {...};
//   SequenceInput in{&cache, prompt};
//   std::vector<float> logits;
//   Status s = model->Forward({&in, 1}, {}, &logits);  // logits of the last prompt token
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/thread_pool.h"
#include "engine/expert_executor.h"
#include "engine/kv_cache.h"
#include "engine/mla.h"
#include "engine/moe.h"
#include "engine/weights.h"
#include "model/config.h"
#include "routing/router.h"

namespace kubemoe::engine {

// New tokens of one sequence; their positions continue from cache->length().
struct SequenceInput {
  LatentKvCache* cache = nullptr;
  std::span<const int32_t> tokens;
};

struct ForwardOptions {
  enum class Form { kAuto, kDecompressed, kAbsorbed };
  // kAuto: absorbed for a sequence with one new token (decode), decompressed otherwise.
  Form attention = Form::kAuto;
  // false: logits of each sequence's last new token, [num_sequences x vocab];
  // true: logits of every new token, in batch order, [total new tokens x vocab].
  bool all_logits = false;
  // When not null, receives per layer the routing of every batch row (empty for dense layers).
  std::vector<LayerRouting>* routing = nullptr;
  // Empty, or one entry per sequence: 1 routes that sequence's rows model-faithfully (the
  // configured placement without the device limit) in the same dispatch as the others. The
  // router runs a sampled shadow of some sequences this way to estimate what the limit costs.
  std::span<const uint8_t> model_faithful = {};
  // Every MoE layer's routed experts must answer by then (DeadlineExceeded otherwise).
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

struct LoadOptions {
  // false on a router: routed experts run on expert-shard workers and are not read at all.
  bool load_routed_experts = true;
  // kQ8_0 quantizes the large matrices at load (LoadWeightOptions says which).
  WeightDType weight_dtype = WeightDType::kAsStored;
  // Threads of the forward pass's pool, the caller's included; 0: the cores this process may
  // use (AvailableCores()).
  int threads = 0;
};

class Model {
 public:
  // Reads config.json and maps the safetensors weights of `dir` (used in place as stored, or
  // quantized as options say) and uses an in-process executor for the routed experts. Errors
  // name the file or tensor.
  static StatusOr<std::unique_ptr<Model>> Load(const std::string& dir,
                                               const LoadOptions& options = {});
  // From weights already in memory, with a pool of `threads` (0: AvailableCores()). Errors when
  // the config's gate settings are invalid.
  static StatusOr<std::unique_ptr<Model>> FromWeights(ModelConfig config, ModelWeights weights,
                                                      int threads = 0);

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const MlaConstants& mla_constants() const { return mla_; }
  // The pool every Forward runs on (also the in-process executor's).
  ThreadPool& pool() const { return *pool_; }

  // Routed experts run through `executor` from now on (nullptr: back to in-process). The
  // executor must outlive its use.
  void SetExpertExecutor(ExpertExecutor* executor) {
    executor_ = executor != nullptr ? executor : &in_process_;
  }

  // Replaces the routing of every MoE layer: by_layer[l] for decoder layer l (entries of dense
  // layers are ignored) carries the gate settings, the layer's placement and the device limit;
  // placement_version goes out with every dispatch. Checks every config (Router::Create) before
  // changing anything; InvalidArgument names the layer. Not thread-safe with Forward.
  Status ConfigureRouting(const std::vector<routing::RouterConfig>& by_layer,
                          uint64_t placement_version);
  // Back to the model's own routing (its gate, no placement, no device limit, version 0), as
  // Load and FromWeights configure it.
  Status ConfigureModelFaithfulRouting();
  // Whether some MoE layer routes with a device limit.
  bool device_limited() const { return device_limited_; }
  // The routing of MoE layer `layer`. REQUIRES: config().IsMoeLayer(layer).
  const routing::Router& router(int64_t layer) const {
    return *routers_[static_cast<size_t>(layer)];
  }
  uint64_t placement_version() const { return placement_version_; }

  // Runs the new tokens of every sequence through the model as one batch, appends their latent
  // rows to the caches (advancing each by its token count) and writes logits as options say.
  // InvalidArgument when a sequence has no tokens, a token id is outside the vocabulary, a cache
  // lacks room or belongs to another shape of model, a sequence would pass
  // max_position_embeddings, a cache appears twice, or model_faithful
  // is neither empty nor one entry per sequence.
  Status Forward(std::span<const SequenceInput> seqs, const ForwardOptions& options,
                 std::vector<float>* logits);

 private:
  Model(ModelConfig config, ModelWeights weights, int threads);

  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<ThreadPool> pool_;
  MlaConstants mla_;
  std::vector<std::unique_ptr<routing::Router>> routers_;  // per layer; null for dense layers
  // Per layer, the same placement without a device limit; null where routers_ has no limit.
  std::vector<std::unique_ptr<routing::Router>> faithful_routers_;
  bool device_limited_ = false;  // some entry of faithful_routers_ is set
  uint64_t placement_version_ = 0;
  InProcessExpertExecutor in_process_;
  ExpertExecutor* executor_;
};

}  // namespace kubemoe::engine
