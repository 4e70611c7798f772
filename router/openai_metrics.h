// The HTTP layer's Prometheus metrics: vLLM's request metrics under kubemoe_router_ names.
//   kubemoe_router_requests_total{endpoint,code}          HTTP answers by path and status code
//   kubemoe_router_prompt_tokens_total                     prompt tokens of finished requests
//   kubemoe_router_generation_tokens_total                 generated tokens of finished requests
//   kubemoe_router_time_to_first_token_seconds             request arrival -> first token
//   kubemoe_router_inter_token_latency_seconds             between consecutive tokens
//   kubemoe_router_e2e_request_latency_seconds             arrival -> finish (successful requests)
//   kubemoe_router_request_success_total{finished_reason}  "stop", "length", or "abort" (client
//                                                          disconnected)
// Bucket bounds are vLLM's.
#pragma once

#include <string>

#include "common/metrics.h"
#include "common/status.h"

namespace kubemoe::router {

struct OpenAIMetrics {
  metrics::CounterFamily* requests = nullptr;
  metrics::Counter* prompt_tokens = nullptr;
  metrics::Counter* generation_tokens = nullptr;
  metrics::Histogram* time_to_first_token = nullptr;
  metrics::Histogram* inter_token_latency = nullptr;
  metrics::Histogram* e2e_latency = nullptr;
  metrics::CounterFamily* success = nullptr;

  // Registers the families in `registry` (which must outlive the returned pointers).
  // InvalidArgument when a name is already registered there.
  static StatusOr<OpenAIMetrics> Register(metrics::Registry* registry);

  // requests_total{endpoint, code} += 1.
  void CountRequest(const std::string& endpoint, int code) const;
  // request_success_total{finished_reason} += 1.
  void CountSuccess(const std::string& finished_reason) const;
};

}  // namespace kubemoe::router
