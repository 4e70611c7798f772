#include "router/openai_metrics.h"

namespace kubemoe::router {

StatusOr<OpenAIMetrics> OpenAIMetrics::Register(metrics::Registry* registry) {
  OpenAIMetrics m;
  auto requests = registry->AddCounter("kubemoe_router_requests_total",
                                       "HTTP requests answered, by endpoint and status code.",
                                       {"endpoint", "code"});
  if (!requests.ok()) return requests.status();
  m.requests = *requests;
  auto prompt = registry->AddCounter("kubemoe_router_prompt_tokens_total",
                                     "Prompt tokens of finished requests.");
  if (!prompt.ok()) return prompt.status();
  m.prompt_tokens = (*prompt)->Unlabelled();
  auto generation = registry->AddCounter("kubemoe_router_generation_tokens_total",
                                         "Generated tokens of finished requests.");
  if (!generation.ok()) return generation.status();
  m.generation_tokens = (*generation)->Unlabelled();

  auto ttft = registry->AddHistogram(
      "kubemoe_router_time_to_first_token_seconds",
      "Seconds from a request's arrival to its first generated token.", {},
      {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
       1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0});
  if (!ttft.ok()) return ttft.status();
  m.time_to_first_token = (*ttft)->Unlabelled();
  auto itl =
      registry->AddHistogram("kubemoe_router_inter_token_latency_seconds",
                             "Seconds between consecutive generated tokens of a request.", {},
                             {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
                              2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0});
  if (!itl.ok()) return itl.status();
  m.inter_token_latency = (*itl)->Unlabelled();
  auto e2e = registry->AddHistogram(
      "kubemoe_router_e2e_request_latency_seconds",
      "Seconds from a request's arrival to its last token, for requests that finished.", {},
      {0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
       30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0});
  if (!e2e.ok()) return e2e.status();
  m.e2e_latency = (*e2e)->Unlabelled();

  auto success =
      registry->AddCounter("kubemoe_router_request_success_total",
                           "Requests that finished, by finish reason.", {"finished_reason"});
  if (!success.ok()) return success.status();
  m.success = *success;
  return m;
}

void OpenAIMetrics::CountRequest(const std::string& endpoint, int code) const {
  auto child = requests->WithLabels({endpoint, std::to_string(code)});
  if (child.ok()) (*child)->Inc();
}

void OpenAIMetrics::CountSuccess(const std::string& finished_reason) const {
  auto child = success->WithLabels({finished_reason});
  if (child.ok()) (*child)->Inc();
}

}  // namespace kubemoe::router
