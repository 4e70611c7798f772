// What the router's sampled KL estimate (router/device_limit_kl.h) costs: the continuous-batching
// scheduler on the trained tiny group-limited model, routed over 8 contiguous devices with
// deviceLimit 2 (in-process experts), serving the same requests at sample rates 0, 0.02, 0.25 and
// 1. Prints output tokens/s per rate and the ratio to rate 0, measured in one run, alternating
// rates over 9 rounds so machine noise spreads evenly.
//   build/bench/device_limit_kl_overhead [model_dir]
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/model.h"
#include "placement/placement.h"
#include "router/routing_setup.h"
#include "router/scheduler.h"

namespace kubemoe::router {
namespace {

class Count final : public TokenStream {
 public:
  bool OnToken(const GeneratedToken&) override { return true; }
  void OnFinish(const Status& s, FinishReason, const Usage& usage) override {
    std::lock_guard<std::mutex> lock(mu_);
    ok = s.ok();
    tokens = usage.completion_tokens;
    done = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done; });
  }
  bool ok = false;
  bool done = false;
  int64_t tokens = 0;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

// Routes `model` over `devices` contiguous devices with `limit`, as the router would.
Status Limit(engine::Model& model, int32_t devices, int32_t limit) {
  const ModelConfig& c = model.config();
  placement::PlacementSpec spec;
  spec.routed_experts = static_cast<int32_t>(c.n_routed_experts);
  spec.moe_layers = static_cast<int32_t>(c.NumMoeLayers());
  spec.shards = devices;
  StatusOr<placement::Placement> p = placement::ComputePlacement(spec);
  if (!p.ok()) return p.status();
  StatusOr<std::vector<routing::RouterConfig>> configs = RouterConfigsFor(c, *p, limit, 0);
  if (!configs.ok()) return configs.status();
  return model.ConfigureRouting(*configs, p->version);
}

// Output tokens per second for `requests` requests, `concurrency` in flight at once.
double Serve(engine::Model& model, double rate, int requests, int concurrency, int64_t* shadowed) {
  SchedulerOptions options;
  options.device_limit_kl_sample_rate = rate;
  options.max_queue = requests;
  Scheduler scheduler(&model, options, nullptr, nullptr);
  scheduler.Start();
  std::vector<std::shared_ptr<Count>> streams;
  int64_t tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < requests; ++i) {
    if (i >= concurrency) {
      streams[static_cast<size_t>(i - concurrency)]->Wait();
    }
    GenerationParams p;
    for (int t = 0; t < 48; ++t) p.prompt.push_back(3 + (i * 131 + t * 17) % 2000);
    p.max_tokens = 32;
    p.stop_at_eos = false;
    p.sampling.temperature = 0;
    auto s = std::make_shared<Count>();
    streams.push_back(s);
    if (!scheduler.Submit(p, s).ok()) std::fprintf(stderr, "submit failed\n");
  }
  for (auto& s : streams) {
    s->Wait();
    tokens += s->tokens;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  scheduler.Stop();
  *shadowed = scheduler.device_limit_kl().sampled_positions();
  return static_cast<double>(tokens) / seconds;
}

int Run(const std::string& dir) {
  StatusOr<std::unique_ptr<engine::Model>> model = engine::Model::Load(dir);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  Status s = Limit(**model, 8, 2);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  const std::vector<double> rates = {0.0, 0.02, 0.25, 1.0};
  std::map<double, std::vector<double>> rate_tps;
  std::map<double, int64_t> positions;
  for (int round = 0; round < 9; ++round) {
    for (double r : rates) {
      int64_t shadowed = 0;
      rate_tps[r].push_back(Serve(**model, r, 128, 8, &shadowed));
      positions[r] = shadowed;
    }
  }
  std::printf("| sample rate | output tokens/s (median of 9) | vs rate 0 | sampled positions / run |\n");
  std::printf("|---:|---:|---:|---:|\n");
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double base = median(rate_tps[0.0]);
  for (double r : rates) {
    const double m = median(rate_tps[r]);
    std::printf("| %.2f | %.1f | %.3f | %lld |\n", r, m, m / base, static_cast<long long>(positions[r]));
  }
  return 0;
}

}  // namespace
}  // namespace kubemoe::router

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : std::string(KUBEMOE_SOURCE_DIR) + "/tests/data/trained/tiny_group_limited";
  return kubemoe::router::Run(dir);
}
