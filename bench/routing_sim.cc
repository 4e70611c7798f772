// routing_sim: what device-limited routing (DESIGN.md "Routing", step 3) buys and costs at
// DeepSeek-V2 scale, computed with the project's own router (routing/router.h).
//
// Model: 160 routed experts, top-6, hidden size 5120, softmax scoring, routed_scaling_factor 16.
// Placement: contiguous expert ranges on D = 8, 16 and 64 devices. 64 does not divide 160, so
// there the ranges are as equal as possible (2 or 3 experts per device, expert e on device
// e * D / 160); for D dividing 160 this is exactly ContiguousPlacement.
// Rows per D: device-limited routing with M = 1..min(8, D), and the unlimited model-faithful
// greedy selection (top-6 over all experts) as the baseline; on D = 8 also the model's own
// group_limited_greedy (n_group 8, topk_group 3), which must equal M = 3 (checked below).
//
// Gate logits are SYNTHETIC: no trained gate is involved, so the numbers describe this
// distribution, not DeepSeek-V2's real traffic. Per token t and expert e:
//   iid:     logit = b_e + sigma * z[t][e]
//   grouped: logit = b_e + sigma * (sqrt(1 - rho) * z[t][e] + sqrt(rho) * g[t][e / 20])
// with z, g ~ N(0, 1) i.i.d., and b_e ~ N(0, tau^2) a fixed per-expert popularity bias (drawn
// once per seed): under softmax it makes some experts persistently hotter, a log-normal skew
// that stands in for Zipf-like expert popularity. "grouped" gives the 8 model groups of 20
// contiguous experts a shared per-token component (the structure a model trained with
// group-limited routing has); the per-expert variance stays sigma^2 so the two are comparable.
// Defaults: iid, sigma 1, tau 0.5, rho 0.5, 20000 tokens, seed 1.
//
// Per row: mean and p99 distinct destination devices per token; dispatch bytes per token per MoE
// layer = 5120 x 2 (bf16) x destinations x 2 (hidden state there, expert output back), with the
// router outside the expert devices (so every destination is remote) and shared experts not
// counted; its ratio to the unlimited row; the fraction of tokens whose expert set differs from
// greedy (routing::CountDifferingTokens); and the mean over tokens of (selected softmax mass) /
// (greedy's selected softmax mass), before the scaling factor. Flags: see Usage below.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "routing/divergence.h"
#include "routing/router.h"
#include "routing/scoring.h"

namespace kubemoe::routing {
namespace {

constexpr int32_t kExperts = 160;
constexpr int32_t kTopK = 6;
constexpr int64_t kHiddenSize = 5120;
constexpr int32_t kGroups = 8;  // n_group of DeepSeek-V2
constexpr int64_t kBytesPerDestination = kHiddenSize * 2 /*bf16*/ * 2 /*there and back*/;

struct Options {  // filled by ParseFlags, which holds the defaults
  int64_t tokens = 0;
  uint32_t seed = 0;
  std::string dist;
  double sigma = 0, tau = 0, rho = 0;
  std::string json_path;
};

struct Row {
  Row(int32_t d, std::string r, int32_t m) : devices(d), routing(std::move(r)), device_limit(m) {}
  int32_t devices = 0;
  std::string routing;  // "device_limited", "greedy" or "group_limited_greedy"
  int32_t device_limit = 0;
  std::string error;  // set when the router refuses the configuration
  double mean_dest = 0, p99_dest = 0, bytes = 0, bytes_ratio = 0, differs = 0, mass = 0;
  double selected_mass = 0;  // mean absolute softmax mass of the selected experts
};

constexpr char kUsage[] =
    "usage: routing_sim [--tokens N] [--seed S] [--dist iid|grouped] [--sigma X] [--tau X] "
    "[--rho X] [--json FILE]";

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr, "routing_sim: %s\n%s\n", why.c_str(), kUsage);
  std::exit(2);
}

Options ParseFlags(int argc, char** argv) {
  // Every flag takes a value; these are the defaults.
  std::map<std::string, std::string> flags = {
      {"--tokens", "20000"}, {"--seed", "1"},  {"--dist", "iid"}, {"--sigma", "1"},
      {"--tau", "0.5"},      {"--rho", "0.5"}, {"--json", ""}};
  for (int i = 1; i < argc; i += 2) {
    const auto it = flags.find(argv[i]);
    if (it == flags.end()) Usage(std::string("unknown flag ") + argv[i]);
    if (i + 1 >= argc) Usage(std::string("missing value for ") + argv[i]);
    it->second = argv[i + 1];
  }
  Options o;
  o.tokens = std::atoll(flags["--tokens"].c_str());
  o.seed = static_cast<uint32_t>(std::strtoul(flags["--seed"].c_str(), nullptr, 10));
  o.dist = flags["--dist"];
  o.sigma = std::atof(flags["--sigma"].c_str());
  o.tau = std::atof(flags["--tau"].c_str());
  o.rho = std::atof(flags["--rho"].c_str());
  o.json_path = flags["--json"];
  if (o.tokens < 1) Usage("--tokens must be >= 1");
  if (o.dist != "iid" && o.dist != "grouped") Usage("--dist must be iid or grouped");
  if (!(o.sigma >= 0) || !(o.tau >= 0) || !(o.rho >= 0 && o.rho <= 1)) {
    Usage("need sigma >= 0, tau >= 0, 0 <= rho <= 1");
  }
  return o;
}

std::vector<float> DrawLogits(const Options& o) {
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> bias(kExperts);
  for (double& b : bias) b = o.tau * normal(rng);
  const bool grouped = o.dist == "grouped";
  const double own = grouped ? std::sqrt(1.0 - o.rho) : 1.0, shared = std::sqrt(o.rho);
  std::vector<float> logits(static_cast<size_t>(o.tokens * kExperts));
  double group[kGroups];
  for (int64_t t = 0; t < o.tokens; ++t) {
    for (double& g : group) g = grouped ? normal(rng) : 0.0;
    for (int32_t e = 0; e < kExperts; ++e) {
      const double z = own * normal(rng) + shared * group[e / (kExperts / kGroups)];
      logits[static_cast<size_t>(t * kExperts + e)] = static_cast<float>(bias[e] + o.sigma * z);
    }
  }
  return logits;
}

// Contiguous ranges as equal as possible; identical to ContiguousPlacement when D divides 160.
DevicePlacement Contiguous(int32_t devices) {
  if (kExperts % devices == 0) return ContiguousPlacement(kExperts, devices);
  DevicePlacement p;
  p.num_devices = devices;
  for (int32_t e = 0; e < kExperts; ++e) p.expert_devices.push_back({e * devices / kExperts});
  return p;
}

// Routes every token; returns the router's refusal as an error, else fills ids and devices.
Status RouteAll(const RouterConfig& config, const std::vector<float>& logits, int64_t tokens,
                std::vector<int32_t>& ids, std::vector<int32_t>& devices) {
  auto router = Router::Create(config);
  if (!router.ok()) return router.status();
  std::vector<float> weights(ids.size());
  return router->Route(logits, tokens, RouteOutput{ids, weights, devices, {}});
}

// Fills the per-token statistics of a row from its selection, against the greedy baseline.
void Measure(Row& row, const std::vector<int32_t>& ids, const std::vector<int32_t>& devices,
             const std::vector<int32_t>& greedy_ids, const std::vector<float>& scores,
             int64_t tokens, const Row* greedy) {
  std::vector<int32_t> dest(static_cast<size_t>(tokens));
  std::vector<uint8_t> seen(static_cast<size_t>(row.devices));
  double dest_sum = 0, mass_sum = 0, selected_sum = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    std::fill(seen.begin(), seen.end(), 0);
    double mass = 0, greedy_mass = 0;
    for (int32_t j = 0; j < kTopK; ++j) {
      const size_t i = static_cast<size_t>(t * kTopK + j);
      dest[static_cast<size_t>(t)] += seen[static_cast<size_t>(devices[i])]++ == 0 ? 1 : 0;
      mass += scores[static_cast<size_t>(t * kExperts + ids[i])];
      greedy_mass += scores[static_cast<size_t>(t * kExperts + greedy_ids[i])];
    }
    dest_sum += dest[static_cast<size_t>(t)];
    mass_sum += mass / greedy_mass;
    selected_sum += mass;
  }
  row.mean_dest = dest_sum / static_cast<double>(tokens);
  // p99 by nearest rank: the smallest count that at least 99% of tokens do not exceed.
  const size_t rank = static_cast<size_t>(std::ceil(0.99 * static_cast<double>(tokens))) - 1;
  std::nth_element(dest.begin(), dest.begin() + static_cast<std::ptrdiff_t>(rank), dest.end());
  row.p99_dest = dest[rank];
  row.bytes = row.mean_dest * static_cast<double>(kBytesPerDestination);
  row.bytes_ratio = greedy != nullptr ? row.bytes / greedy->bytes : 1.0;  // greedy: its own base
  row.differs = static_cast<double>(CountDifferingTokens(ids, greedy_ids, kTopK)) /
                static_cast<double>(tokens);
  row.mass = mass_sum / static_cast<double>(tokens);
  row.selected_mass = selected_sum / static_cast<double>(tokens);
}

int Main(int argc, char** argv) {
  const Options o = ParseFlags(argc, argv);
  const std::vector<float> logits = DrawLogits(o);
  // Softmax scores once, with the library's own scoring, for the gate-mass column.
  std::vector<float> scores(logits.size());
  for (int64_t t = 0; t < o.tokens; ++t) {
    const Status s = ScoreExperts(ScoringFunc::kSoftmax, logits.data() + t * kExperts, kExperts,
                                  scores.data() + t * kExperts, t);
    if (!s.ok()) return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
  }

  RouterConfig base;
  base.gate.num_experts = kExperts;
  base.gate.top_k = kTopK;
  base.gate.routed_scaling_factor = 16.0f;
  const size_t tk = static_cast<size_t>(o.tokens * kTopK);
  std::vector<Row> rows;
  double greedy_top_mass = 0;  // greedy's selected mass (same for every D): how peaked scores are
  std::vector<int32_t> ids(tk), devs(tk), greedy_ids(tk), greedy_devs(tk), m3_ids;
  for (const int32_t d : {8, 16, 64}) {
    RouterConfig config = base;
    config.placement = Contiguous(d);
    // The baseline first: every other row of this D is measured against it.
    Status s = RouteAll(config, logits, o.tokens, greedy_ids, greedy_devs);
    if (!s.ok()) return std::fprintf(stderr, "greedy D=%d: %s\n", d, s.ToString().c_str()), 1;
    Row greedy{d, "greedy", 0};
    Measure(greedy, greedy_ids, greedy_devs, greedy_ids, scores, o.tokens, nullptr);
    greedy_top_mass = greedy.selected_mass;
    for (int32_t m = 1; m <= std::min(8, d); ++m) {
      config.device_limit = m;
      Row row{d, "device_limited", m};
      s = RouteAll(config, logits, o.tokens, ids, devs);
      if (s.ok()) Measure(row, ids, devs, greedy_ids, scores, o.tokens, &greedy);
      if (!s.ok()) row.error = s.ToString();  // e.g. D = 64, M <= 2: < 6 experts on M devices
      if (d == 8 && m == 3) m3_ids = ids;
      rows.push_back(row);
    }
    if (d == 8) {
      // The model's own rule; DESIGN.md says it equals M = 3 on this placement: verify it.
      config.device_limit = 0;
      config.gate.method = TopkMethod::kGroupLimitedGreedy;
      config.gate.n_group = kGroups;
      config.gate.topk_group = 3;
      Row row{d, "group_limited_greedy", 3};
      s = RouteAll(config, logits, o.tokens, ids, devs);
      if (!s.ok()) return std::fprintf(stderr, "group_limited: %s\n", s.ToString().c_str()), 1;
      if (ids != m3_ids) return std::fprintf(stderr, "group_limited_greedy != M=3 on D=8\n"), 1;
      Measure(row, ids, devs, greedy_ids, scores, o.tokens, &greedy);
      rows.push_back(row);
    }
    rows.push_back(greedy);
  }

  std::string dist_text =
      o.dist == "iid"
          ? "logit = b_e + sigma*z, z ~ N(0,1) iid per (token, expert)"
          : "logit = b_e + sigma*(sqrt(1-rho)*z + sqrt(rho)*g_group), 8 groups of 20 experts";
  dist_text += "; b_e ~ N(0, tau^2) fixed per expert";
  std::printf(
      "DeepSeek-V2 routing: %d experts, top-%d, hidden %lld, softmax, contiguous placement\n",
      kExperts, kTopK, static_cast<long long>(kHiddenSize));
  std::printf("Synthetic gate logits: %s\n", dist_text.c_str());
  std::printf(
      "dist=%s sigma=%g tau=%g rho=%g tokens=%lld seed=%u; mean greedy top-%d softmax "
      "mass %.4f (x16 = %.3f)\n\n",
      o.dist.c_str(), o.sigma, o.tau, o.dist == "grouped" ? o.rho : 0.0,
      static_cast<long long>(o.tokens), o.seed, kTopK, greedy_top_mass, 16.0 * greedy_top_mass);
  std::printf(
      "| D | routing | M | mean dest | p99 dest | dispatch bytes/token/layer | vs unlimited "
      "| differs from greedy | gate mass kept |\n|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    std::string m = r.routing == "greedy" ? "-" : std::to_string(r.device_limit);
    if (r.routing == "group_limited_greedy") m = "(3 of 8 groups)";
    if (!r.error.empty()) {  // the router's own refusal, e.g. fewer than 6 experts on M devices
      std::printf("| %d | %s | %s | refused: %s | | | | | |\n", r.devices, r.routing.c_str(),
                  m.c_str(), r.error.c_str());
      continue;
    }
    std::printf("| %d | %s | %s | %.3f | %.0f | %.0f | %.3f | %.2f%% | %.4f |\n", r.devices,
                r.routing.c_str(), m.c_str(), r.mean_dest, r.p99_dest, r.bytes, r.bytes_ratio,
                100.0 * r.differs, r.mass);
  }

  if (!o.json_path.empty()) {
    // clang-format off
    nlohmann::json j = {
        {"model", {{"n_routed_experts", kExperts}, {"top_k", kTopK}, {"hidden_size", kHiddenSize},
                   {"scoring", "softmax"}, {"routed_scaling_factor", 16.0}}},
        {"distribution", {{"name", o.dist}, {"formula", dist_text}, {"sigma", o.sigma},
                          {"tau", o.tau}, {"tokens", o.tokens}, {"seed", o.seed},
                          {"rho", o.dist == "grouped" ? nlohmann::json(o.rho) : nullptr},
                          {"greedy_top_k_mass", greedy_top_mass}}},
        {"rows", nlohmann::json::array()}};
    for (const Row& r : rows) {
      nlohmann::json row = {{"devices", r.devices}, {"routing", r.routing}};
      if (r.routing == "device_limited") row["device_limit"] = r.device_limit;
      if (r.routing == "group_limited_greedy") row.update({{"n_group", kGroups}, {"topk_group", 3}});
      if (!r.error.empty()) {
        row["error"] = r.error;
      } else {
        row.update({{"mean_destinations", r.mean_dest}, {"p99_destinations", r.p99_dest},
                    {"dispatch_bytes_per_token_per_layer", r.bytes},
                    {"ratio_to_unlimited", r.bytes_ratio}, {"differs_from_greedy", r.differs},
                    {"gate_mass_retained", r.mass}, {"mean_selected_mass", r.selected_mass}});
      }
      j["rows"].push_back(row);
    }
    // clang-format on
    std::ofstream out(o.json_path);
    out << j.dump(2) << "\n";
    if (!out) return std::fprintf(stderr, "cannot write %s\n", o.json_path.c_str()), 1;
  }
  return 0;
}

}  // namespace
}  // namespace kubemoe::routing

int main(int argc, char** argv) { return kubemoe::routing::Main(argc, argv); }
