#include "router/device_limit_kl.h"

#include <algorithm>
#include <cmath>

#include "engine/distribution.h"

namespace kubemoe::router {

DeviceLimitKlEstimate::DeviceLimitKlEstimate(double rate, metrics::Registry* registry)
    : rate_(std::clamp(rate, 0.0, 1.0)) {
  if (registry == nullptr) return;
  auto counter = registry->AddCounter(
      "kubemoe_router_device_limit_kl_sampled_tokens_total",
      "Positions of shadowed requests whose next-token distribution was compared with the "
      "model-faithful one.");
  if (counter.ok()) positions_metric_ = (*counter)->Unlabelled();
  auto histogram = registry->AddHistogram(
      "kubemoe_router_device_limit_kl_nats",
      "KL(model-faithful || device-limited) of next-token distributions at sampled positions, "
      "in nats.",
      {}, {1e-6, 1e-5, 1e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1, 3, 10});
  if (histogram.ok()) kl_metric_ = (*histogram)->Unlabelled();
  auto mean = registry->AddGauge(
      "kubemoe_router_device_limit_kl_mean_nats",
      "Mean KL(model-faithful || device-limited) over all sampled positions so far, in nats "
      "(0 before the first sample).");
  if (mean.ok()) mean_metric_ = (*mean)->Unlabelled();
  auto overhead = registry->AddGauge(
      "kubemoe_router_device_limit_kl_overhead_ratio",
      "Rows computed for the KL estimate's shadow sequences / rows computed in all.");
  if (overhead.ok()) overhead_metric_ = (*overhead)->Unlabelled();
}

bool DeviceLimitKlEstimate::ShadowNextRequest() {
  if (!enabled()) return false;
  ++requests_;
  const auto n = static_cast<double>(requests_);
  return std::floor(n * rate_) > std::floor((n - 1) * rate_);
}

double DeviceLimitKlEstimate::Record(std::span<const float> faithful_logits,
                                     std::span<const float> limited_logits) {
  const double kl = engine::KlDivergenceOfLogits(faithful_logits, limited_logits);
  ++positions_;
  kl_sum_ += kl;
  if (positions_metric_ != nullptr) positions_metric_->Inc();
  if (kl_metric_ != nullptr) kl_metric_->Observe(kl);
  if (mean_metric_ != nullptr) mean_metric_->Set(mean_kl());
  return kl;
}

void DeviceLimitKlEstimate::CountRows(int64_t all_rows, int64_t shadow_rows) {
  all_rows_ += all_rows;
  shadow_rows_ += shadow_rows;
  if (overhead_metric_ != nullptr && all_rows_ > 0) {
    overhead_metric_->Set(static_cast<double>(shadow_rows_) / static_cast<double>(all_rows_));
  }
}

}  // namespace kubemoe::router
