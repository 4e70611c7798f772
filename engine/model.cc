#include "engine/model.h"

#include <algorithm>
#include <set>
#include <utility>

#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/weight_gemm.h"
#include "kernels/cpu/weight_matmul.h"
#include "layers/parallel_linear.h"
#include "model/checkpoint.h"

namespace kubemoe::engine {

Model::Model(ModelConfig config, ModelWeights weights, int threads)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      pool_(std::make_unique<ThreadPool>(threads)),
      mla_(MlaConstants::FromConfig(config_)),
      in_process_(&weights_.routed_experts, pool_.get()),
      executor_(&in_process_) {
  // The pool splits the work; OpenBLAS, called from each of its threads, must not add its own.
  cpu::SetBlasThreads(1);
}

StatusOr<std::unique_ptr<Model>> Model::FromWeights(ModelConfig config, ModelWeights weights,
                                                    int threads) {
  KUBEMOE_RETURN_IF_ERROR(ValidateModelConfig(config));
  if (static_cast<int64_t>(weights.layers.size()) != config.num_hidden_layers) {
    return InvalidArgument(
        "weights hold " + std::to_string(weights.layers.size()) +
        " layers, config says num_hidden_layers=" + std::to_string(config.num_hidden_layers));
  }
  std::unique_ptr<Model> model(new Model(std::move(config), std::move(weights), threads));
  Status s = model->ConfigureModelFaithfulRouting();
  if (!s.ok()) return Status(s.code(), model->config_.source + ": " + s.message());
  return model;
}

Status Model::ConfigureModelFaithfulRouting() {
  // The model's own gate settings on every MoE layer, no placement.
  routing::RouterConfig faithful;
  faithful.gate = GateConfigFromModel(config_);
  return ConfigureRouting(
      std::vector<routing::RouterConfig>(static_cast<size_t>(config_.num_hidden_layers), faithful),
      0);
}

Status Model::ConfigureRouting(const std::vector<routing::RouterConfig>& by_layer,
                               uint64_t placement_version) {
  const ModelConfig& c = config_;
  if (static_cast<int64_t>(by_layer.size()) != c.num_hidden_layers) {
    return InvalidArgument("routing configured for " + std::to_string(by_layer.size()) +
                           " layers, the model has " + std::to_string(c.num_hidden_layers));
  }
  std::vector<std::unique_ptr<routing::Router>> routers(static_cast<size_t>(c.num_hidden_layers));
  std::vector<std::unique_ptr<routing::Router>> faithful(routers.size());
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (!c.IsMoeLayer(l)) continue;
    const routing::RouterConfig& config = by_layer[static_cast<size_t>(l)];
    StatusOr<routing::Router> router = routing::Router::Create(config);
    if (!router.ok()) {
      return Status(router.status().code(),
                    "layer " + std::to_string(l) + ": " + router.status().message());
    }
    routers[static_cast<size_t>(l)] = std::make_unique<routing::Router>(std::move(*router));
    if (config.device_limit > 0) {
      routing::RouterConfig unlimited = config;
      unlimited.device_limit = 0;
      StatusOr<routing::Router> f = routing::Router::Create(unlimited);
      if (!f.ok())
        return Status(f.status().code(),
                      "layer " + std::to_string(l) + ": " + f.status().message());
      faithful[static_cast<size_t>(l)] = std::make_unique<routing::Router>(std::move(*f));
    }
  }
  routers_ = std::move(routers);
  faithful_routers_ = std::move(faithful);
  device_limited_ = std::any_of(faithful_routers_.begin(), faithful_routers_.end(),
                                [](const auto& r) { return r != nullptr; });
  placement_version_ = placement_version;
  return Status::Ok();
}

StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& dir, const LoadOptions& options) {
  StatusOr<ModelConfig> config = LoadModelConfig(dir);
  if (!config.ok()) return config.status();
  StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir);
  if (!ckpt.ok()) return ckpt.status();
  // Shared by every weight read in place: the mapping lives as long as they do.
  auto shared = std::make_shared<const Checkpoint>(std::move(*ckpt));
  StatusOr<ModelWeights> weights = LoadModelWeights(
      shared, *config,
      {.dtype = options.weight_dtype, .load_routed_experts = options.load_routed_experts});
  if (!weights.ok()) return weights.status();
  return FromWeights(std::move(*config), std::move(*weights), options.threads);
}

Status Model::Forward(std::span<const SequenceInput> seqs, const ForwardOptions& options,
                      std::vector<float>* logits) {
  const ModelConfig& c = config_;
  const int64_t h = c.hidden_size;
  const int64_t vocab = c.vocab_size;
  // Check the batch and lay out its rows.
  std::vector<SequenceSlice> slices;
  std::vector<int32_t> tokens;
  std::vector<int64_t> positions;
  std::set<const LatentKvCache*> seen;
  if (!options.model_faithful.empty() && options.model_faithful.size() != seqs.size()) {
    return InvalidArgument("model_faithful has " + std::to_string(options.model_faithful.size()) +
                           " entries for " + std::to_string(seqs.size()) + " sequences");
  }
  for (size_t i = 0; i < seqs.size(); ++i) {
    const SequenceInput& s = seqs[i];
    const std::string which = "sequence " + std::to_string(i);
    if (s.cache == nullptr || s.tokens.empty()) {
      return InvalidArgument(which + " has no cache or no new tokens");
    }
    if (!seen.insert(s.cache).second) return InvalidArgument(which + " repeats a cache");
    if (s.cache->num_layers() != c.num_hidden_layers ||
        s.cache->row_floats() != LatentKvCache::RowFloats(c)) {
      return InvalidArgument(which + ": its KV cache was made for another model shape");
    }
    const auto n = static_cast<int64_t>(s.tokens.size());
    if (s.cache->length() + n > s.cache->capacity()) {
      return InvalidArgument(which + ": " + std::to_string(s.cache->length()) + " cached + " +
                             std::to_string(n) + " new tokens exceed the cache capacity " +
                             std::to_string(s.cache->capacity()));
    }
    if (s.cache->length() + n > c.max_position_embeddings) {
      return InvalidArgument(which + ": positions up to " + std::to_string(s.cache->length() + n) +
                             " exceed max_position_embeddings " +
                             std::to_string(c.max_position_embeddings));
    }
    AttentionForm form = n == 1 ? AttentionForm::kAbsorbed : AttentionForm::kDecompressed;
    if (options.attention == ForwardOptions::Form::kAbsorbed) form = AttentionForm::kAbsorbed;
    if (options.attention == ForwardOptions::Form::kDecompressed) {
      form = AttentionForm::kDecompressed;
    }
    slices.push_back({s.cache, static_cast<int64_t>(tokens.size()), n, form});
    for (int64_t j = 0; j < n; ++j) {
      const int32_t id = s.tokens[static_cast<size_t>(j)];
      if (id < 0 || id >= vocab) {
        return InvalidArgument(which + ": token id " + std::to_string(id) +
                               " is outside the vocabulary (vocab_size " + std::to_string(vocab) +
                               ")");
      }
      tokens.push_back(id);
      positions.push_back(s.cache->length() + j);
    }
  }
  const auto rows = static_cast<int64_t>(tokens.size());
  // Per row: 1 where its sequence is routed model-faithfully (empty when none is).
  std::vector<uint8_t> faithful_rows;
  if (std::find(options.model_faithful.begin(), options.model_faithful.end(), 1) !=
      options.model_faithful.end()) {
    faithful_rows.assign(static_cast<size_t>(rows), 0);
    for (size_t i = 0; i < slices.size(); ++i) {
      std::fill_n(faithful_rows.begin() + slices[i].row, slices[i].count,
                  options.model_faithful[i] != 0 ? 1 : 0);
    }
  }

  // Rotary values of every row's position, shared by all layers.
  const int64_t half = c.qk_rope_head_dim / 2;
  std::vector<float> cos(static_cast<size_t>(rows * half));
  std::vector<float> sin(static_cast<size_t>(rows * half));
  cpu::RopeCosSin(positions.data(), rows, mla_.inv_freq.data(), half, mla_.cos_sin_scale,
                  cos.data(), sin.data());

  std::vector<float> hidden(static_cast<size_t>(rows * h));
  for (int64_t t = 0; t < rows; ++t) {
    cpu::WeightRowsToF32(weights_.embed_tokens.matrix(), tokens[t], tokens[t] + 1,
                         hidden.data() + t * h);
  }
  std::vector<float> normed(hidden.size());
  std::vector<float> branch(hidden.size());
  const auto eps = static_cast<float>(c.rms_norm_eps);
  if (options.routing != nullptr) {
    options.routing->assign(static_cast<size_t>(c.num_hidden_layers), LayerRouting{});
  }
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& lw = weights_.layers[static_cast<size_t>(l)];
    cpu::RmsNorm(hidden.data(), h, rows, h, lw.input_layernorm.data(), eps, normed.data(), h);
    MlaForward(*pool_, c, lw.attn, mla_, l, normed.data(), rows, slices, cos.data(), sin.data(),
               branch.data());
    for (size_t i = 0; i < hidden.size(); ++i) hidden[i] += branch[i];
    cpu::RmsNorm(hidden.data(), h, rows, h, lw.post_attention_layernorm.data(), eps, normed.data(),
                 h);
    if (lw.dense_mlp) {
      layers::ParallelSwiGluFfn(*pool_, normed.data(), rows, *lw.dense_mlp, branch.data());
    } else {
      LayerRouting* trace =
          options.routing != nullptr ? &(*options.routing)[static_cast<size_t>(l)] : nullptr;
      MoeStepOptions step;
      step.placement_version = placement_version_;
      step.deadline = options.deadline;
      step.faithful_router = faithful_routers_[static_cast<size_t>(l)].get();
      step.faithful_rows = faithful_rows;
      KUBEMOE_RETURN_IF_ERROR(MoeForward(*pool_, c, *lw.moe, *routers_[static_cast<size_t>(l)],
                                         *executor_, l, normed.data(), rows, branch.data(), trace,
                                         step));
    }
    for (size_t i = 0; i < hidden.size(); ++i) hidden[i] += branch[i];
  }
  for (const SequenceSlice& s : slices) s.cache->Advance(s.count);

  // Final norm and LM head over the rows whose logits are wanted.
  std::vector<int64_t> out_rows;
  if (options.all_logits) {
    for (int64_t t = 0; t < rows; ++t) out_rows.push_back(t);
  } else {
    for (const SequenceSlice& s : slices) out_rows.push_back(s.row + s.count - 1);
  }
  const auto n_out = static_cast<int64_t>(out_rows.size());
  std::vector<float> final_rows(static_cast<size_t>(n_out * h));
  for (int64_t i = 0; i < n_out; ++i) {
    cpu::RmsNorm(hidden.data() + out_rows[i] * h, h, 1, h, weights_.norm.data(), eps,
                 final_rows.data() + i * h, h);
  }
  logits->resize(static_cast<size_t>(n_out * vocab));
  layers::ParallelLinear(*pool_, final_rows.data(), n_out, weights_.output_embedding(),
                         logits->data());
  return Status::Ok();
}

}  // namespace kubemoe::engine
