#include "router/scheduler.h"

#include <algorithm>
#include <span>

#include "common/mutex.h"
#include "engine/kv_cache.h"
#include "engine/sampler.h"
#include "router/logprobs.h"

namespace kubemoe::router {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

struct Scheduler::Sequence {
  GenerationParams params;
  std::shared_ptr<TokenStream> stream;
  std::unique_ptr<engine::LatentKvCache> cache;
  // The model-faithful shadow of a request sampled for the KL estimate: fed the same tokens.
  std::unique_ptr<engine::LatentKvCache> shadow;
  std::unique_ptr<engine::Sampler> sampler;
  int64_t reserved = 0;  // KV cache tokens reserved
  int32_t next = 0;      // last sampled token, fed to the next decode step
  bool prefilled = false;
  bool done = false;
  int64_t generated = 0;
};

struct Scheduler::Metrics {
  metrics::Gauge* running = nullptr;
  metrics::Gauge* waiting = nullptr;
  metrics::Gauge* kv_usage = nullptr;
  metrics::Gauge* kv_bytes = nullptr;
  metrics::Histogram* step_rows = nullptr;
  metrics::Histogram* step_sequences = nullptr;
  metrics::Histogram* step_seconds = nullptr;
  metrics::CounterFamily* failures = nullptr;
  metrics::Counter* routed = nullptr;
  metrics::Counter* divergent = nullptr;
  metrics::Gauge* divergence_ratio = nullptr;
};

Scheduler::Scheduler(engine::Model* model, SchedulerOptions options, metrics::Registry* registry,
                     ReadyCheck ready)
    : model_(model),
      options_(options),
      ready_(std::move(ready)),
      max_context_(model->config().max_position_embeddings),
      metrics_(std::make_unique<Metrics>()),
      kl_(options.device_limit_kl_sample_rate, registry) {
  if (options_.kv_cache_tokens <= 0) {
    options_.kv_cache_tokens = static_cast<int64_t>(options_.max_batch_size) * max_context_;
  }
  if (registry == nullptr) return;
  Metrics& m = *metrics_;
  auto gauge = [&](const char* name, const char* help) {
    auto f = registry->AddGauge(name, help);
    return f.ok() ? (*f)->Unlabelled() : nullptr;
  };
  auto histogram = [&](const char* name, const char* help, std::vector<double> bounds) {
    auto f = registry->AddHistogram(name, help, {}, std::move(bounds));
    return f.ok() ? (*f)->Unlabelled() : nullptr;
  };
  auto counter = [&](const char* name, const char* help) {
    auto f = registry->AddCounter(name, help);
    return f.ok() ? (*f)->Unlabelled() : nullptr;
  };
  m.running = gauge("kubemoe_router_num_requests_running", "Sequences in the running batch.");
  m.waiting = gauge("kubemoe_router_num_requests_waiting", "Requests queued, not yet running.");
  m.kv_usage = gauge("kubemoe_router_kv_cache_usage_ratio",
                     "Fraction of the latent KV cache token budget reserved by running sequences.");
  m.kv_bytes = gauge("kubemoe_router_kv_cache_bytes",
                     "Bytes of latent KV cache allocated for running sequences.");
  const std::vector<double> sizes = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
  m.step_rows = histogram("kubemoe_router_batch_tokens", "Token rows per engine step.", sizes);
  m.step_sequences =
      histogram("kubemoe_router_batch_sequences", "Sequences per engine step.", sizes);
  m.step_seconds = histogram("kubemoe_router_step_seconds",
                             "Duration of one engine step (forward over the batch and sampling).",
                             metrics::DefaultBuckets());
  auto failures =
      registry->AddCounter("kubemoe_router_request_failures_total",
                           "Requests that ended with an error, by status code.", {"code"});
  if (failures.ok()) m.failures = *failures;
  m.routed = counter("kubemoe_router_routed_tokens_total",
                     "Token-layer routings (one per token per MoE layer).");
  m.divergent = counter("kubemoe_router_device_limit_divergent_tokens_total",
                        "Token-layer routings whose device-limited selection differs from the "
                        "model-faithful one.");
  m.divergence_ratio = gauge("kubemoe_router_device_limit_divergence_ratio",
                             "Fraction of token-layer routings whose device-limited selection "
                             "differs from the model-faithful one (0 without --device-limit).");
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Scheduler::Stop() {
  {
    MutexLock lock(&mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  wake_.SignalAll();
  if (thread_.joinable()) thread_.join();
  const Status gone = Unavailable("the router is shutting down");
  for (auto& s : running_) Finish(*s, gone, FinishReason::kStop);
  running_.clear();
  std::deque<std::unique_ptr<Sequence>> queued;
  {
    MutexLock lock(&mu_);
    queued.swap(queue_);
  }
  for (auto& s : queued) Finish(*s, gone, FinishReason::kStop);
}

bool Scheduler::Ready(std::string* why_not) const { return !ready_ || ready_(why_not); }

Status Scheduler::Submit(GenerationParams params, std::shared_ptr<TokenStream> stream) {
  const ModelConfig& c = model_->config();
  if (params.prompt.empty()) return InvalidArgument("the prompt has no tokens");
  for (int32_t id : params.prompt) {
    if (id < 0 || id >= c.vocab_size) {
      return InvalidArgument("prompt token id " + std::to_string(id) +
                             " is outside the vocabulary (" + std::to_string(c.vocab_size) + ")");
    }
  }
  if (params.max_tokens < (params.prompt_logprobs ? 0 : 1)) {
    return InvalidArgument(params.prompt_logprobs
                               ? "max_tokens must not be negative"
                               : "max_tokens must be at least 1 (0 only with prompt logprobs)");
  }
  if (params.logprobs && (*params.logprobs < 0 || *params.logprobs > kMaxTopLogprobs)) {
    return InvalidArgument("logprobs must be between 0 and " + std::to_string(kMaxTopLogprobs));
  }
  const auto prompt = static_cast<int64_t>(params.prompt.size());
  const int64_t need = prompt + params.max_tokens;
  if (need > max_context_) {
    return OutOfRange("the prompt (" + std::to_string(prompt) + " tokens) plus max_tokens (" +
                      std::to_string(params.max_tokens) + ") exceeds the model's context of " +
                      std::to_string(max_context_) + " tokens");
  }
  if (prompt > options_.max_batch_tokens) {
    return OutOfRange("the prompt (" + std::to_string(prompt) +
                      " tokens) exceeds --max-batch-tokens " +
                      std::to_string(options_.max_batch_tokens));
  }
  if (need > options_.kv_cache_tokens) {
    return OutOfRange("the request needs " + std::to_string(need) +
                      " tokens of KV cache, the router has " +
                      std::to_string(options_.kv_cache_tokens));
  }
  std::string why;
  if (!Ready(&why)) return Unavailable(why);
  if (params.deadline == Clock::time_point::max()) {
    params.deadline = Clock::now() + options_.request_timeout;
  }
  auto s = std::make_unique<Sequence>();
  s->params = std::move(params);
  s->stream = std::move(stream);
  {
    MutexLock lock(&mu_);
    if (stop_) return Unavailable("the router is shutting down");
    if (static_cast<int32_t>(queue_.size()) >= options_.max_queue) {
      return ResourceExhausted("the request queue is full (" + std::to_string(options_.max_queue) +
                               " waiting); retry later");
    }
    queue_.push_back(std::move(s));
    if (metrics_->waiting) metrics_->waiting->Set(static_cast<double>(queue_.size()));
  }
  wake_.SignalAll();
  return Status::Ok();
}

void Scheduler::Finish(Sequence& s, const Status& status, FinishReason reason) {
  if (s.done) return;
  s.done = true;
  if (!status.ok() && metrics_->failures != nullptr) {
    auto c = metrics_->failures->WithLabels({StatusCodeName(status.code())});
    if (c.ok()) (*c)->Inc();
  }
  s.stream->OnFinish(status, reason,
                     Usage{static_cast<int64_t>(s.params.prompt.size()), s.generated});
  s.cache.reset();
  s.shadow.reset();
  MutexLock lock(&mu_);
  kv_reserved_ -= s.reserved;
  s.reserved = 0;
}

void Scheduler::Admit(std::vector<std::unique_ptr<Sequence>>& joined) {
  int64_t rows = 0;
  for (const auto& s : running_)
    rows += s->prefilled ? 1 : static_cast<int64_t>(s->params.prompt.size());
  while (!queue_.empty() &&
         static_cast<int32_t>(running_.size() + joined.size()) < options_.max_batch_size) {
    Sequence& next = *queue_.front();
    if (next.stream->Cancelled()) {  // finished below, outside the lock
      joined.push_back(std::move(queue_.front()));
      queue_.pop_front();
      continue;
    }
    const auto prompt = static_cast<int64_t>(next.params.prompt.size());
    const int64_t need = prompt + next.params.max_tokens;
    if (rows + prompt > options_.max_batch_tokens) break;
    if (kv_reserved_ + need > options_.kv_cache_tokens) break;
    kv_reserved_ += need;
    next.reserved = need;
    rows += prompt;
    joined.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
}

void Scheduler::Loop() {
  while (true) {
    std::vector<std::unique_ptr<Sequence>> joined;
    {
      MutexLock lock(&mu_);
      while (!stop_ && queue_.empty() && running_.empty()) wake_.Wait(&mu_);
      if (stop_) return;
      if (running_.empty() && options_.max_queue_delay.count() > 0) {
        // Idle: give concurrent arrivals a moment to share the first step.
        const auto deadline = Clock::now() + options_.max_queue_delay;
        while (!stop_ && static_cast<int32_t>(queue_.size()) < options_.max_batch_size &&
               wake_.WaitUntil(&mu_, deadline)) {
        }
        if (stop_) return;
      }
      Admit(joined);
      if (metrics_->waiting) metrics_->waiting->Set(static_cast<double>(queue_.size()));
    }
    for (auto& s : joined) {
      if (s->stream->Cancelled()) {
        Finish(*s, Status::Ok(), FinishReason::kCancelled);
        continue;
      }
      s->cache = std::make_unique<engine::LatentKvCache>(model_->config(), s->reserved,
                                                         options_.kv_cache_dtype);
      s->sampler = std::make_unique<engine::Sampler>(s->params.sampling);
      if (kl_.enabled() && model_->device_limited() && kl_.ShadowNextRequest()) {
        s->shadow = std::make_unique<engine::LatentKvCache>(model_->config(), s->reserved,
                                                            options_.kv_cache_dtype);
      }
      running_.push_back(std::move(s));
    }
    Step();
    UpdateGauges();
  }
}

void Scheduler::Step() {
  const Clock::time_point now = Clock::now();
  for (auto& s : running_) {
    if (s->stream->Cancelled()) {
      Finish(*s, Status::Ok(), FinishReason::kCancelled);
    } else if (now > s->params.deadline) {
      Finish(*s, DeadlineExceeded("the request did not finish before its deadline"),
             FinishReason::kStop);
    }
  }
  std::erase_if(running_, [](const auto& s) { return s->done; });
  if (running_.empty()) return;

  // Prompt logprobs need the logits of every prefill row; other steps take only each sequence's
  // last row, so ordinary decoding does not pay for them.
  std::vector<engine::SequenceInput> batch;
  std::vector<int64_t> first_row;  // of each sequence, when all_logits
  int64_t rows = 0;
  bool all_logits = false;
  for (auto& s : running_) {
    if (s->prefilled) {
      batch.push_back({s->cache.get(), std::span<const int32_t>(&s->next, 1)});
    } else {
      batch.push_back({s->cache.get(), s->params.prompt});
      all_logits = all_logits || s->params.prompt_logprobs;
    }
    first_row.push_back(rows);
    rows += static_cast<int64_t>(batch.back().tokens.size());
  }
  // Shadows follow, one per sampled sequence, with that sequence's tokens, routed faithfully.
  std::vector<size_t> shadowed;  // index into running_ of each shadow, in batch order
  std::vector<uint8_t> faithful(batch.size(), 0);
  int64_t shadow_rows = 0;
  for (size_t i = 0; i < running_.size(); ++i) {
    if (!running_[i]->shadow) continue;
    shadowed.push_back(i);
    batch.push_back({running_[i]->shadow.get(), batch[i].tokens});
    faithful.push_back(1);
    first_row.push_back(rows);
    rows += static_cast<int64_t>(batch[i].tokens.size());
    shadow_rows += static_cast<int64_t>(batch[i].tokens.size());
  }
  std::vector<engine::LayerRouting> trace;
  engine::ForwardOptions options;
  options.routing = &trace;
  options.deadline = now + options_.step_timeout;
  options.all_logits = all_logits;
  if (!shadowed.empty()) options.model_faithful = faithful;
  std::vector<float> logits;
  Status s = model_->Forward(batch, options, &logits);
  if (metrics_->step_rows) {
    metrics_->step_rows->Observe(static_cast<double>(rows));
    metrics_->step_sequences->Observe(static_cast<double>(running_.size()));
    metrics_->step_seconds->Observe(std::chrono::duration<double>(Clock::now() - now).count());
  }
  if (!s.ok()) {
    // Every request of this step ends with the error; later requests start afresh.
    for (auto& seq : running_) Finish(*seq, s, FinishReason::kStop);
    running_.clear();
    return;
  }
  int64_t routed = 0, divergent = 0;
  for (const engine::LayerRouting& layer : trace) {
    if (layer.expert_ids.empty()) continue;
    routed += rows - shadow_rows;  // shadow rows are faithful by construction
    divergent += std::count(layer.differs_from_model.begin(), layer.differs_from_model.end(), 1);
  }
  if (metrics_->routed) {
    metrics_->routed->Inc(static_cast<double>(routed));
    metrics_->divergent->Inc(static_cast<double>(divergent));
    const double total = metrics_->routed->Value();
    metrics_->divergence_ratio->Set(total > 0 ? metrics_->divergent->Value() / total : 0.0);
  }
  const auto vocab = static_cast<size_t>(model_->config().vocab_size);
  const ModelConfig& config = model_->config();
  auto row = [&](int64_t r) {
    return std::span<const float>(logits).subspan(static_cast<size_t>(r) * vocab, vocab);
  };
  auto last_row = [&](size_t b) {  // of batch entry b
    return all_logits ? first_row[b] + static_cast<int64_t>(batch[b].tokens.size()) - 1
                      : static_cast<int64_t>(b);
  };
  for (size_t j = 0; j < shadowed.size(); ++j) {
    kl_.Record(row(last_row(running_.size() + j)), row(last_row(shadowed[j])));
  }
  if (kl_.enabled()) kl_.CountRows(rows, shadow_rows);
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence& seq = *running_[i];
    const GenerationParams& p = seq.params;
    const auto new_rows = static_cast<int64_t>(batch[i].tokens.size());
    const int64_t last = all_logits ? first_row[i] + new_rows - 1 : static_cast<int64_t>(i);
    if (!seq.prefilled && p.prompt_logprobs) {
      // Row j holds the distribution of prompt token j + 1.
      std::vector<PositionLogprobs> prompt(p.prompt.size() - 1);
      for (size_t j = 0; j < prompt.size(); ++j) {
        prompt[j] = ComputeLogprobs(row(first_row[i] + static_cast<int64_t>(j)), p.prompt[j + 1],
                                    p.logprobs.value_or(0));
      }
      seq.stream->OnPromptLogprobs(prompt);
    }
    seq.prefilled = true;
    if (seq.generated >= p.max_tokens) {  // max_tokens 0: the prompt's logprobs were all it wanted
      Finish(seq, Status::Ok(), FinishReason::kLength);
      continue;
    }
    const int32_t token = seq.sampler->Sample(row(last));
    GeneratedToken out;
    out.id = token;
    if (p.logprobs) out.logprobs = ComputeLogprobs(row(last), token, *p.logprobs);
    const auto& stops = p.stop_tokens;
    if ((p.stop_at_eos && config.IsEosToken(token)) ||
        std::find(stops.begin(), stops.end(), token) != stops.end()) {
      if (p.logprobs) {
        out.stop = true;
        seq.stream->OnToken(out);
      }
      Finish(seq, Status::Ok(), FinishReason::kStop);
      continue;
    }
    ++seq.generated;
    seq.next = token;
    if (!seq.stream->OnToken(out)) {
      Finish(seq, Status::Ok(), FinishReason::kCancelled);
    } else if (seq.generated >= p.max_tokens) {
      Finish(seq, Status::Ok(), FinishReason::kLength);
    }
  }
  std::erase_if(running_, [](const auto& seq) { return seq->done; });
}

void Scheduler::UpdateGauges() {
  if (metrics_->running == nullptr) return;
  metrics_->running->Set(static_cast<double>(running_.size()));
  int64_t bytes = 0;
  for (const auto& s : running_) {
    bytes += s->cache ? s->cache->AllocatedBytes() : 0;
    bytes += s->shadow ? s->shadow->AllocatedBytes() : 0;
  }
  metrics_->kv_bytes->Set(static_cast<double>(bytes));
  MutexLock lock(&mu_);
  metrics_->kv_usage->Set(static_cast<double>(kv_reserved_) /
                          static_cast<double>(options_.kv_cache_tokens));
}

}  // namespace kubemoe::router
