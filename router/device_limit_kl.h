// The router's sampled, online estimate of what --device-limit costs in model quality.
//
// A fraction of requests gets a shadow: a second sequence with its own KV cache, fed the same
// tokens as the real one (teacher-forced), whose MoE layers route model-faithfully (the same
// placement without the limit) in the same engine step and the same dispatch. After every step
// the two next-token distributions are compared: KL(faithful || limited) per position, exported
// as a histogram and a running mean, next to the rows the shadows cost (the overhead ratio). The
// shadow never affects what the client receives.
//
// Overhead: a shadowed request costs twice its rows of compute and dispatch; with rate r the
// router computes about r more rows (exported as kubemoe_router_device_limit_kl_overhead_ratio),
// and no extra round trip, because shadows ride in the batch.
#pragma once

#include <cstdint>
#include <span>

#include "common/metrics.h"

namespace kubemoe::router {

class DeviceLimitKlEstimate {
 public:
  // rate in [0, 1]: the fraction of requests shadowed; 0 turns the estimate off. `registry` may
  // be null (nothing exported).
  DeviceLimitKlEstimate(double rate, metrics::Registry* registry);

  bool enabled() const { return rate_ > 0; }
  // Whether the next admitted request gets a shadow. Deterministic: request n (from 1) is
  // shadowed when floor(n * rate) > floor((n - 1) * rate), so rate 1 shadows every request and
  // rate 0.25 every fourth. Loop thread only.
  bool ShadowNextRequest();
  // Records KL(softmax(faithful) || softmax(limited)) of one position and returns it.
  double Record(std::span<const float> faithful_logits, std::span<const float> limited_logits);
  // After each step: rows the step computed in all, and how many of them were shadow rows.
  void CountRows(int64_t all_rows, int64_t shadow_rows);

  int64_t sampled_positions() const { return positions_; }
  double mean_kl() const { return positions_ > 0 ? kl_sum_ / static_cast<double>(positions_) : 0; }

 private:
  double rate_;
  int64_t requests_ = 0;
  int64_t positions_ = 0;
  double kl_sum_ = 0;
  int64_t all_rows_ = 0;
  int64_t shadow_rows_ = 0;
  metrics::Counter* positions_metric_ = nullptr;
  metrics::Histogram* kl_metric_ = nullptr;
  metrics::Gauge* mean_metric_ = nullptr;
  metrics::Gauge* overhead_metric_ = nullptr;
};

}  // namespace kubemoe::router
