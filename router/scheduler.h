// Continuous batching for the router (vLLM's scheduling, on the CPU engine's Model::Forward):
// one loop thread runs steps; before each step, finished and cancelled sequences leave and queued
// requests join (within --max-batch-size sequences, --max-batch-tokens tokens per step and the KV
// cache budget); a step is one Forward over every running sequence (prefill rows for the new ones,
// one decode row for the others), then one sampled token per sequence. A step with a joiner that
// wants prompt logprobs asks the model for the logits of every row (ForwardOptions::all_logits)
// and takes each sequence's last row from them; other steps get one row per sequence.
//
// A failed step (an expert shard died, a deadline passed) ends every request in that step with
// the error; the scheduler keeps running, and requests submitted later succeed once the shards
// are back. Requests are never dropped silently: each stream gets exactly one OnFinish.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "common/mutex.h"
#include "engine/model.h"
#include "router/device_limit_kl.h"
#include "router/generation_service.h"

namespace kubemoe::router {

struct SchedulerOptions {
  int32_t max_batch_size = 64;      // sequences per step
  int64_t max_batch_tokens = 8192;  // rows per step (prompt tokens of joiners + 1 per decoder)
  int32_t max_queue = 256;          // waiting requests; more are refused (HTTP 429)
  // Tokens of latent KV cache all running sequences may reserve together (each reserves
  // prompt + max_tokens when it joins). 0: max_batch_size x the model's context.
  int64_t kv_cache_tokens = 0;
  // Element type of every sequence's latent KV cache (bf16: half the memory, rows rounded).
  engine::KvCacheDType kv_cache_dtype = engine::KvCacheDType::kF32;
  // When idle, how long the first step waits for more requests to batch with.
  std::chrono::milliseconds max_queue_delay{5};
  // Deadline of one step's expert dispatches.
  std::chrono::milliseconds step_timeout{30000};
  // Deadline of a request that came without one.
  std::chrono::seconds request_timeout{600};
  // With a device limit configured: the fraction of requests that get a model-faithful shadow
  // to estimate the KL cost of the limit (router/device_limit_kl.h). 0 turns it off. A shadow's
  // KV cache is outside kv_cache_tokens.
  double device_limit_kl_sample_rate = 0.02;
};

class Scheduler final : public GenerationService {
 public:
  // Says whether the expert shards can serve (empty: always ready).
  using ReadyCheck = std::function<bool(std::string* why_not)>;

  // REQUIRES: model outlives the scheduler and is used by nobody else. `registry` may be null.
  Scheduler(engine::Model* model, SchedulerOptions options, metrics::Registry* registry,
            ReadyCheck ready);
  ~Scheduler() override;  // Stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void Start();
  // Ends the loop; queued and running requests finish with Unavailable.
  void Stop();

  Status Submit(GenerationParams params, std::shared_ptr<TokenStream> stream) override;
  int64_t max_context() const override { return max_context_; }
  // The sampled KL estimate of the device limit's cost (read it after Stop(), or from /metrics).
  const DeviceLimitKlEstimate& device_limit_kl() const { return kl_; }
  bool Ready(std::string* why_not) const override;

 private:
  struct Sequence;
  struct Metrics;

  void Loop();
  // Moves queued requests into `running_` while the limits allow. REQUIRES: mu_ held.
  void Admit(std::vector<std::unique_ptr<Sequence>>& joined) KUBEMOE_REQUIRES(mu_);
  void Step();
  void Finish(Sequence& s, const Status& status, FinishReason reason);
  void UpdateGauges();

  engine::Model* model_;
  SchedulerOptions options_;
  ReadyCheck ready_;
  int64_t max_context_;
  std::unique_ptr<Metrics> metrics_;
  DeviceLimitKlEstimate kl_;  // loop thread only

  mutable Mutex mu_;
  CondVar wake_;
  bool stop_ KUBEMOE_GUARDED_BY(mu_) = false;
  std::deque<std::unique_ptr<Sequence>> queue_ KUBEMOE_GUARDED_BY(mu_);
  int64_t kv_reserved_ KUBEMOE_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<Sequence>> running_;  // loop thread only
  std::thread thread_;
};

}  // namespace kubemoe::router
