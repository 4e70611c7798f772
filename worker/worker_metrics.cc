#include "worker/worker_metrics.h"

#include "transport/grpc_status.h"

namespace kubemoe::worker {

StatusOr<WorkerMetrics> WorkerMetrics::Register(metrics::Registry& registry,
                                                const ShardExperts& experts,
                                                int64_t expert_weight_bytes,
                                                const std::string& version) {
  WorkerMetrics m;
  KUBEMOE_RETURN_IF_ERROR(metrics::RegisterBuildInfo(registry, version));
  auto requests = registry.AddCounter("kubemoe_worker_requests_total",
                                      "RunExperts calls received, whatever their outcome.");
  if (!requests.ok()) return requests.status();
  m.requests_ = (*requests)->Unlabelled();
  auto errors = registry.AddCounter("kubemoe_worker_request_errors_total",
                                    "RunExperts calls that failed, by gRPC status code.", {"code"});
  if (!errors.ok()) return errors.status();
  m.errors_ = *errors;
  auto tokens = registry.AddCounter("kubemoe_worker_expert_tokens_total",
                                    "Tokens each hosted routed expert has run (layer is the "
                                    "decoder layer index).",
                                    {"layer", "expert"});
  if (!tokens.ok()) return tokens.status();
  for (const layers::ExpertKey& key : experts.keys()) {
    auto child = (*tokens)->WithLabels({std::to_string(key.layer), std::to_string(key.expert)});
    if (!child.ok()) return child.status();
    m.expert_tokens_[key] = *child;
  }
  // Tokens per call: 1 (one decode step of one sequence) up to 64 Ki (a large prefill).
  auto token_bounds = metrics::ExponentialBuckets(1, 2, 17);
  if (!token_bounds.ok()) return token_bounds.status();
  auto batch = registry.AddHistogram("kubemoe_worker_batch_tokens",
                                     "Tokens per successful RunExperts call.", {}, *token_bounds);
  if (!batch.ok()) return batch.status();
  m.batch_tokens_ = (*batch)->Unlabelled();
  // Expert time per call: 10 us (a decode step of a tiny model) up to about 10 s.
  auto second_bounds = metrics::ExponentialBuckets(1e-5, 2, 21);
  if (!second_bounds.ok()) return second_bounds.status();
  auto compute = registry.AddHistogram("kubemoe_worker_compute_seconds",
                                       "Time spent in the routed experts of one RunExperts call.",
                                       {}, *second_bounds);
  if (!compute.ok()) return compute.status();
  m.compute_seconds_ = (*compute)->Unlabelled();
  auto weight_bytes = registry.AddGauge("kubemoe_worker_expert_weight_bytes",
                                        "Bytes of routed-expert weights this worker holds.");
  if (!weight_bytes.ok()) return weight_bytes.status();
  (*weight_bytes)->Unlabelled()->Set(static_cast<double>(expert_weight_bytes));
  return m;
}

void WorkerMetrics::RecordSuccess(int64_t layer, const std::map<int32_t, int64_t>& expert_tokens,
                                  int64_t batch_tokens, double compute_seconds) {
  requests_->Inc();
  for (const auto& [expert, n] : expert_tokens) {
    auto it = expert_tokens_.find({layer, expert});
    if (it != expert_tokens_.end()) it->second->Inc(static_cast<double>(n));
  }
  batch_tokens_->Observe(static_cast<double>(batch_tokens));
  compute_seconds_->Observe(compute_seconds);
}

void WorkerMetrics::RecordError(int grpc_code) {
  requests_->Inc();
  auto child = errors_->WithLabels({transport::GrpcCodeName(grpc_code)});
  if (child.ok()) (*child)->Inc();
}

int64_t WorkerMetrics::ExpertTokens(int64_t layer, int32_t expert) const {
  auto it = expert_tokens_.find({layer, expert});
  return it == expert_tokens_.end() ? 0 : static_cast<int64_t>(it->second->Value());
}

}  // namespace kubemoe::worker
