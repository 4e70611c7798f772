// Harness cases for token sampling (kernels/cuda/sampling.h: SampleTokens, and ArgmaxRows for
// all-greedy batches; CPU twin cpu::SampleRows). The reference is a float64 restatement of the
// engine's semantics (engine::SamplingDistribution; tests/cpu_sampling_test.cc checks the twin
// against the engine itself, which this harness does not link): tokens sorted by logit, highest
// first, equal logits by lower id first; softmax(logits / temperature); the top_k most likely;
// the shortest prefix whose renormalised mass reaches top_p; then the draw rule: the first token
// whose cumulative probability exceeds u, or the last one when none does. Ids must be identical.
//
// Backends sum probabilities in other orders, so they can pick a neighbouring token when u, or
// top_p, is within rounding distance of a cumulative boundary. Draw therefore redraws u (and
// top_p) until it is more than 1e-9 relative away from every boundary. Everything here and in
// both backends is double, so sums of up to 102400 terms differ by at most about 1e-11
// relative: a margin of 90. A wider tolerance, such as 1e-4, would exclude every u for rows
// that sample from a whole 102400-token vocabulary, whose boundaries are about 1e-5 apart.
//
// Rows mix greedy and sampled settings, top_k from 1 to beyond the vocabulary, top_p from 0 to 1,
// and logits with exact ties (equal values, -0 beside +0, -inf), where the order of equal
// probabilities (lower id first) decides the token. Temperatures and logit ranges keep every
// finite logit's probability above double's underflow, so ordering by logit (here and on the
// GPU) and by probability (the engine and the CPU twin) agree.
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/sampling.h"
#include "tests/kernel_ops/op_case.h"

#ifdef KUBEMOE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/sampling.h"
#endif

namespace kubemoe::kernel_ops {
namespace {

constexpr double kBoundaryTolerance = 1e-9;
constexpr int kMaxRedraws = 1000;

enum class Mix {
  kMixed,        // any settings, logits distinct or tied
  kGreedyTies,   // greedy only, logits on a coarse grid: the lowest maximal id must win
  kTopK,         // DeepSeek serving settings: temperature 0.3..1.3, top_k 1..1024, top_p 0.8..1
  kFullSoftmax,  // temperature 0.5..1.5 over the whole vocabulary, top_p 1 or 0.9..0.99
};

struct SamplingSpec {
  std::string variant;
  Mix mix = Mix::kMixed;
  int64_t rows = 0;
  int64_t vocab = 0;
  int64_t ld = 0;
  bool argmax = false;  // the CUDA row runs cuda::ArgmaxRows (every row greedy) instead
};

// A row's distribution in float64, in order: ids and cumulative probabilities.
struct Distribution {
  std::vector<int32_t> ids;
  std::vector<double> cumulative;
};

// The tokens kept after top_k, most likely first, with their cumulative renormalised mass (the
// quantity top_p is compared with). REQUIRES: temperature > 0.
Distribution TopK(const float* logits, int64_t vocab, float temperature, int32_t top_k) {
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  // Highest logit first, lower id first among equal logits.
  auto before = [logits](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  const size_t kept = top_k > 0 && top_k < vocab ? static_cast<size_t>(top_k) : order.size();
  if (kept < order.size()) {
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(kept), order.end(),
                      before);
  } else {
    std::sort(order.begin(), order.end(), before);
  }
  const double max = logits[order.front()];
  order.resize(kept);
  Distribution d{std::move(order), std::vector<double>(kept)};
  double acc = 0.0;
  for (size_t i = 0; i < kept; ++i) {
    acc += std::exp((static_cast<double>(logits[d.ids[i]]) - max) / temperature);
    d.cumulative[i] = acc;
  }
  for (double& c : d.cumulative) c /= acc;
  return d;
}

// Keeps the shortest prefix whose mass reaches top_p (at least one token) and renormalises.
Distribution Nucleus(Distribution d, float top_p) {
  if (top_p < 1.0f) {
    size_t keep = 0;
    while (keep < d.ids.size() && d.cumulative[keep] < top_p) ++keep;
    keep = std::min(keep + 1, d.ids.size());
    d.ids.resize(keep);
    d.cumulative.resize(keep);
  }
  const double total = d.cumulative.back();
  for (double& c : d.cumulative) c /= total;
  return d;
}

// Whether x (>= 0) is within kBoundaryTolerance relative of a boundary b: b in
// [x / (1 + tol), x / (1 - tol)]. REQUIRES: boundaries non-decreasing.
bool NearBoundary(double x, const std::vector<double>& boundaries) {
  const auto it =
      std::lower_bound(boundaries.begin(), boundaries.end(), x / (1.0 + kBoundaryTolerance));
  return it != boundaries.end() && *it <= x / (1.0 - kBoundaryTolerance);
}

class SamplingCase : public OpCase {
 public:
  explicit SamplingCase(SamplingSpec spec) : s_(std::move(spec)) {}

  std::string Name() const override {
    std::string name =
        "sampling/" + s_.variant + "/r" + std::to_string(s_.rows) + "_v" + std::to_string(s_.vocab);
    if (s_.ld != s_.vocab) name += "_ld" + std::to_string(s_.ld);
    return name;
  }

  void Draw(Rng& rng) override {
    logits_ = UniformFloats(rng, static_cast<size_t>(s_.rows * s_.ld), -8.0f, 8.0f);
    params_.assign(static_cast<size_t>(s_.rows), {});
    expected_.assign(static_cast<size_t>(s_.rows), -1);
    for (int64_t r = 0; r < s_.rows; ++r) {
      float* row = logits_.data() + r * s_.ld;
      cpu::SamplingRow& p = params_[static_cast<size_t>(r)];
      DrawSettings(rng, p);
      DrawTies(rng, row);
      expected_[static_cast<size_t>(r)] = DrawAwayFromBoundaries(rng, row, p);
    }
  }

  std::vector<Output> Reference() override {
    return {{"ids", Metric::kExact, 0, ToDoubles(expected_.data(), expected_.size())}};
  }

  StatusOr<std::vector<Output>> RunCpu() override {
    std::vector<int32_t> ids(static_cast<size_t>(s_.rows), -1);
    cpu::SampleRows(logits_.data(), s_.ld, s_.rows, s_.vocab, params_.data(), ids.data());
    return std::vector<Output>{{"ids", Metric::kExact, 0, ToDoubles(ids.data(), ids.size())}};
  }

  Work work() const override {
    // The floor: logits and settings read once, ids written once (the sort moves far more).
    return {static_cast<double>(s_.rows) *
                (4.0 * static_cast<double>(s_.vocab) + sizeof(cpu::SamplingRow) + 4.0),
            0.0};
  }

#ifdef KUBEMOE_HAVE_CUDA
  Status CudaPrepare() override {
    workspace_bytes_ = 0;
    if (!s_.argmax) {
      StatusOr<size_t> workspace_bytes = cuda::SamplingWorkspaceBytes(s_.rows, s_.vocab);
      KUBEMOE_RETURN_IF_ERROR(workspace_bytes.status());
      workspace_bytes_ = *workspace_bytes;
    }
    StatusOr<cuda::DeviceBuffer> logits = cuda::DeviceBuffer::Allocate(logits_.size() * 4);
    StatusOr<cuda::DeviceBuffer> params =
        cuda::DeviceBuffer::Allocate(params_.size() * sizeof(cpu::SamplingRow));
    StatusOr<cuda::DeviceBuffer> ids = cuda::DeviceBuffer::Allocate(params_.size() * 4);
    StatusOr<cuda::DeviceBuffer> workspace = cuda::DeviceBuffer::Allocate(workspace_bytes_);
    for (auto* b : {&logits, &params, &ids, &workspace}) KUBEMOE_RETURN_IF_ERROR(b->status());
    logits_d_ = std::move(*logits);
    params_d_ = std::move(*params);
    ids_d_ = std::move(*ids);
    workspace_d_ = std::move(*workspace);
    KUBEMOE_RETURN_IF_ERROR(logits_d_.Upload(logits_.data(), logits_.size() * 4));
    KUBEMOE_RETURN_IF_ERROR(
        params_d_.Upload(params_.data(), params_.size() * sizeof(cpu::SamplingRow)));
    KUBEMOE_RETURN_IF_ERROR(workspace_d_.Fill(0xFF));
    return ids_d_.Fill(0xFF);
  }

  Status CudaLaunch(CUstream_st* stream) override {
    if (s_.argmax) {
      return cuda::ArgmaxRows(logits_d_.as<float>(), s_.ld, s_.rows, s_.vocab, ids_d_.as<int32_t>(),
                              stream);
    }
    return cuda::SampleTokens(logits_d_.as<float>(), s_.ld, s_.rows, s_.vocab,
                              params_d_.as<cuda::SamplingRow>(), ids_d_.as<int32_t>(),
                              workspace_d_.data(), workspace_bytes_, stream);
  }

  StatusOr<std::vector<Output>> CudaResults() override {
    KUBEMOE_RETURN_IF_ERROR(cuda::SynchronizeDevice("sampling"));
    std::vector<int32_t> ids(static_cast<size_t>(s_.rows));
    KUBEMOE_RETURN_IF_ERROR(ids_d_.Download(ids.data(), ids.size() * 4));
    return std::vector<Output>{{"ids", Metric::kExact, 0, ToDoubles(ids.data(), ids.size())}};
  }
#endif

 private:
  void DrawSettings(Rng& rng, cpu::SamplingRow& p) const {
    auto uniform = [&rng](double lo, double hi) {
      return std::uniform_real_distribution<double>(lo, hi)(rng);
    };
    auto pick = [&rng](std::initializer_list<double> options) {
      std::uniform_int_distribution<size_t> i(0, options.size() - 1);
      return options.begin()[i(rng)];
    };
    const auto v = static_cast<double>(s_.vocab);
    switch (s_.mix) {
      case Mix::kMixed:
        p.temperature = static_cast<float>(pick({0.0, -1.0, 0.05, 0.3, 0.7, 1.0, 1.5}));
        p.top_k = static_cast<int32_t>(pick({0, -1, 1, 2, 5, 50, 1024, v - 1, v, v + 3}));
        p.top_p = static_cast<float>(pick({1.0, 1.0, 0.0, uniform(0.05, 0.99)}));
        break;
      case Mix::kGreedyTies:
        p.temperature = 0.0f;
        break;
      case Mix::kTopK:
        p.temperature = static_cast<float>(uniform(0.3, 1.3));
        p.top_k = static_cast<int32_t>(pick({1, 40, 256, 1024}));
        p.top_p = static_cast<float>(pick({1.0, uniform(0.8, 0.99)}));
        break;
      case Mix::kFullSoftmax:
        p.temperature = static_cast<float>(uniform(0.5, 1.5));
        p.top_k = 0;
        p.top_p = static_cast<float>(pick({1.0, uniform(0.9, 0.99)}));
        break;
    }
  }

  // Puts exact ties into about half the rows: values on a coarse grid (some of them -0 and
  // +0), and a few -inf, never all of a row.
  void DrawTies(Rng& rng, float* row) const {
    std::bernoulli_distribution coin(0.5);
    if (s_.mix != Mix::kGreedyTies && s_.mix != Mix::kMixed) return;
    if (s_.mix == Mix::kMixed && !coin(rng)) return;
    std::uniform_int_distribution<int> level(-8, 8);
    std::bernoulli_distribution rare(0.05);
    for (int64_t i = 0; i < s_.vocab; ++i) {
      const int l = level(rng);
      row[i] = l == 0 && coin(rng) ? -0.0f : 0.5f * static_cast<float>(l);
      if (i > 0 && rare(rng)) row[i] = -std::numeric_limits<float>::infinity();
    }
  }

  // Redraws top_p, then u, until neither is within kBoundaryTolerance of a cumulative
  // probability; returns the token the draw rule picks.
  int32_t DrawAwayFromBoundaries(Rng& rng, const float* row, cpu::SamplingRow& p) const {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    p.u = unit(rng);
    if (p.temperature <= 0.0f) {  // greedy: the first maximal logit
      return static_cast<int32_t>(std::max_element(row, row + s_.vocab) - row);
    }
    const Distribution top_k = TopK(row, s_.vocab, p.temperature, p.top_k);
    if (p.top_p < 1.0f && p.top_p > 0.0f) {
      for (int tries = 0; NearBoundary(p.top_p, top_k.cumulative); ++tries) {
        if (tries == kMaxRedraws) {
          p.top_p = 1.0f;
          break;
        }
        p.top_p = static_cast<float>(unit(rng));
      }
    }
    const Distribution d = Nucleus(top_k, p.top_p);
    for (int tries = 0; NearBoundary(p.u, d.cumulative) && tries < kMaxRedraws; ++tries) {
      p.u = unit(rng);
    }
    for (size_t i = 0; i < d.ids.size(); ++i) {
      if (p.u < d.cumulative[i]) return d.ids[i];
    }
    return d.ids.back();
  }

  SamplingSpec s_;
  std::vector<float> logits_;
  std::vector<cpu::SamplingRow> params_;
  std::vector<int32_t> expected_;
#ifdef KUBEMOE_HAVE_CUDA
  size_t workspace_bytes_ = 0;
  cuda::DeviceBuffer logits_d_, params_d_, ids_d_, workspace_d_;
#endif
};

void AddSamplingCases(Scale scale, CaseList& cases) {
  auto add = [&cases](std::string variant, Mix mix, int64_t rows, int64_t vocab, int64_t ld,
                      bool argmax = false) {
    cases.push_back(std::make_unique<SamplingCase>(
        SamplingSpec{std::move(variant), mix, rows, vocab, ld, argmax}));
  };
  constexpr int64_t kVocab = 102400;  // DeepSeek-V2
  if (scale == Scale::kBench) {
    for (int64_t rows : {64, 256}) {
      add("top_k", Mix::kTopK, rows, kVocab, kVocab);
      add("full_softmax", Mix::kFullSoftmax, rows, kVocab, kVocab);
      add("argmax", Mix::kGreedyTies, rows, kVocab, kVocab, true);
    }
    return;
  }
  add("mixed", Mix::kMixed, 1, 1, 1);
  add("mixed", Mix::kMixed, 6, 2, 3);
  add("mixed", Mix::kMixed, 9, 1000, 1000);
  add("mixed", Mix::kMixed, 7, 4099, 4101);
  add("mixed", Mix::kMixed, 300, 64, 64);  // more rows than one sort key byte
  add("greedy_ties", Mix::kGreedyTies, 12, 333, 333);
  add("argmax", Mix::kGreedyTies, 12, 333, 335, true);
  add("argmax", Mix::kGreedyTies, 3, 5000, 5000, true);
  add("top_k", Mix::kTopK, 5, 5000, 5000);
  add("full_softmax", Mix::kFullSoftmax, 2, kVocab, kVocab);
}

const bool kRegistered = RegisterCases("sampling", AddSamplingCases);

}  // namespace
}  // namespace kubemoe::kernel_ops
