// Cases for the routed experts' grouped SwiGLU FFN (kernels/cuda/grouped_ffn.h; CPU twin
// cpu::SwiGluFfn per expert on f32 copies of the bf16 weights and rows) and for the dense bf16
// GEMM it is measured against ("dense_gemm/...": at kBench each has the FLOPs of one grouped
// case, m = its rows, n = 3 x intermediate, k = hidden).
//
// Reference: float64 from the bf16 inputs, with no intermediate rounding. The CUDA FFN rounds
// to bf16 four times (gate and up products, SwiGLU product, output); a host simulation of that
// at these value ranges gives relative L2 3.4e-3 (one rounding alone: 1.7e-3) at the test and
// DeepSeek-V2 shapes alike: bound relative L2 <= 1e-2. The dense GEMM rounds once (its output):
// bound 5e-3. The CPU twins compute in f32 without rounding and land far below both.
//
// Scale::kBench uses DeepSeek-V2's shapes (hidden 5120, expert intermediate 1536, 160 experts,
// top-6 of group-limited routing over 8 groups, 3 kept) at 128, 1024 and 4096 tokens. The
// experts' 7.5 GB of weights are drawn once per process from a fixed seed and shared by every
// bench case alive at the time (host and device copies); rows and routing are fresh per draw.
// A full float64 reference there is about a TFLOP, so at kBench Reference, RunCpu and
// CudaResults cover a sample of rows (kBenchCheckedRows, spread over the experts); the GPU
// benchmark times CudaLaunch and does not call Reference at kBench.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <tuple>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/swiglu.h"
#include "tests/kernel_ops/op_case.h"

#ifdef KUBEMOE_HAVE_CUDA
#include "kernels/cuda/grouped_ffn.h"
#include "kernels/cuda/runtime.h"
#endif

namespace kubemoe::kernel_ops {
namespace {

constexpr double kFfnBound = 1e-2;
constexpr double kDenseBound = 5e-3;
constexpr int64_t kBenchCheckedRows = 64;
constexpr uint64_t kBenchWeightSeed = 0x5eed'f00d'2024'0005ULL;

// Inline bf16 conversions for the bench's billions of values (op_case.h's are out of line).
// Narrow rounds to nearest even and assumes a finite value.
inline float Widen(uint16_t bits) {
  const uint32_t u = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint16_t Narrow(float value) {
  uint32_t u;
  std::memcpy(&u, &value, sizeof u);
  return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// n bf16 values uniform in [-scale, scale) from `seed`: a counter-based generator in fixed
// chunks, so the values do not depend on the thread count; fast enough for the bench's 3.8
// billion weights (mt19937 with a distribution would take about a minute).
void FillBf16(uint64_t seed, uint16_t* out, size_t n, float scale) {
  constexpr size_t kChunk = size_t{1} << 20;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  const float step = scale / 32768.0f;
  auto fill_chunk = [&](size_t c) {
    uint64_t state = seed ^ (0xD1B54A32D192ED03ULL * (c + 1));
    const size_t end = std::min(n, (c + 1) * kChunk);
    for (size_t i = c * kChunk; i < end; i += 4) {
      uint64_t bits = SplitMix(state);
      for (size_t j = i; j < std::min(end, i + 4); ++j, bits >>= 16) {
        out[j] = Narrow(static_cast<float>(static_cast<int32_t>(bits & 0xFFFF) - 32768) * step);
      }
    }
  };
  const size_t threads =
      std::min<size_t>(chunks, std::max(1u, std::thread::hardware_concurrency()));
  if (threads <= 1) {
    for (size_t c = 0; c < chunks; ++c) fill_chunk(c);
    return;
  }
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (size_t c = t; c < chunks; c += threads) fill_chunk(c);
    });
  }
  for (std::thread& thread : pool) thread.join();
}

std::vector<float> ToFloats(const uint16_t* bf16, size_t n) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = Widen(bf16[i]);
  return out;
}

// "all_written": {0} when no element of a whole output is NaN, {NaN} otherwise. At kBench the
// compared output holds only the sampled rows; this one covers every row, and the benchmark's NaN
// scan of the outputs sees it (the outputs were poisoned with NaN before the launch).
Output AllWritten(const uint16_t* bf16, size_t n) {
  bool nan = false;
  for (size_t i = 0; i < n; ++i) nan |= (bf16[i] & 0x7FFF) > 0x7F80;
  return {"all_written", Metric::kExact, 0.0, {nan ? std::nan("") : 0.0}};
}

Output AllWrittenExpected() { return {"all_written", Metric::kExact, 0.0, {0.0}}; }

// Uniform ranges giving pre-activations, SwiGLU products and outputs of order 1.
float InputScale() { return 1.0f; }
float WeightScale(int64_t fan_in) { return 3.0f / std::sqrt(static_cast<float>(fan_in)); }

// One layer's routed experts, bf16 in the Hugging Face layout, and their device copy once made.
struct Experts {
  int32_t count = 0, hidden = 0, inter = 0;
  std::vector<uint16_t> gate, up, down;  // [E x I x H], [E x I x H], [E x H x I]
#ifdef KUBEMOE_HAVE_CUDA
  cuda::DeviceBuffer gate_dev, up_dev, down_dev;
  bool uploaded = false;
#endif
};

std::shared_ptr<Experts> DrawExperts(uint64_t seed, int32_t count, int32_t hidden, int32_t inter) {
  auto experts = std::make_shared<Experts>();
  experts->count = count;
  experts->hidden = hidden;
  experts->inter = inter;
  const size_t n = static_cast<size_t>(count) * hidden * inter;
  experts->gate.resize(n);
  experts->up.resize(n);
  experts->down.resize(n);
  FillBf16(seed, experts->gate.data(), n, WeightScale(hidden));
  FillBf16(seed + 1, experts->up.data(), n, WeightScale(hidden));
  FillBf16(seed + 2, experts->down.data(), n, WeightScale(inter));
  return experts;
}

// The bench shape's weights, shared by the bench cases alive at once.
std::shared_ptr<Experts> BenchExperts(int32_t count, int32_t hidden, int32_t inter) {
  static std::mutex mu;
  static std::map<std::tuple<int32_t, int32_t, int32_t>, std::weak_ptr<Experts>> cache;
  std::lock_guard<std::mutex> lock(mu);
  std::weak_ptr<Experts>& slot = cache[{count, hidden, inter}];
  std::shared_ptr<Experts> experts = slot.lock();
  if (experts == nullptr) {
    experts = DrawExperts(kBenchWeightSeed, count, hidden, inter);
    slot = experts;
  }
  return experts;
}

// Rows per expert for `tokens` tokens, each routed to top_k experts by DeepSeek-V2's
// group-limited rule (group score = best expert score, the best topk_group groups, then the
// top_k experts in them), on scores = a per-draw expert popularity (log-normal, sigma 0.5: some
// experts hot, some cold) plus Gumbel noise per token and expert.
std::vector<int64_t> RoutedCounts(Rng& rng, int64_t tokens, int32_t experts, int32_t top_k,
                                  int32_t groups, int32_t topk_group) {
  std::normal_distribution<double> popularity(0.0, 0.5);
  std::uniform_real_distribution<double> uniform(1e-12, 1.0);
  std::vector<double> bias(experts);
  for (double& b : bias) b = popularity(rng);
  const int32_t per_group = experts / groups;
  std::vector<int64_t> counts(experts, 0);
  std::vector<double> score(experts);
  std::vector<int32_t> order(groups), candidates;
  std::vector<double> group_score(groups);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int32_t e = 0; e < experts; ++e) score[e] = bias[e] - std::log(-std::log(uniform(rng)));
    for (int32_t g = 0; g < groups; ++g) {
      group_score[g] =
          *std::max_element(score.begin() + g * per_group, score.begin() + (g + 1) * per_group);
    }
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + topk_group, order.end(),
                      [&](int32_t a, int32_t b) { return group_score[a] > group_score[b]; });
    candidates.clear();
    for (int32_t g = 0; g < topk_group; ++g) {
      for (int32_t e = order[g] * per_group; e < (order[g] + 1) * per_group; ++e) {
        candidates.push_back(e);
      }
    }
    std::partial_sort(candidates.begin(), candidates.begin() + top_k, candidates.end(),
                      [&](int32_t a, int32_t b) { return score[a] > score[b]; });
    for (int32_t k = 0; k < top_k; ++k) ++counts[candidates[k]];
  }
  return counts;
}

// At kTest every row; at kBench `limit` rows spread evenly, each the first or last row of its
// expert in turn (the expert boundaries are where indexing goes wrong).
std::vector<int64_t> CheckedRows(const std::vector<int64_t>& offsets, int64_t limit) {
  const int64_t rows = offsets.back();
  std::vector<int64_t> checked;
  if (rows <= limit) {
    checked.resize(rows);
    std::iota(checked.begin(), checked.end(), int64_t{0});
    return checked;
  }
  for (int64_t i = 0; i < limit; ++i) {
    const int64_t row = (2 * i + 1) * rows / (2 * limit);
    const size_t e = std::upper_bound(offsets.begin(), offsets.end(), row) - offsets.begin() - 1;
    checked.push_back(i % 2 == 0 ? offsets[e] : offsets[e + 1] - 1);
  }
  std::sort(checked.begin(), checked.end());
  checked.erase(std::unique(checked.begin(), checked.end()), checked.end());
  return checked;
}

// cuda::ExpertGemmPath, named here so the case list is the same without CUDA.
enum class FfnPath { kGrouped, kPerExpert, kMultiStream, kBucketed, kBucketedBatched, kAuto };

struct FfnConfig {
  std::string name;
  int32_t experts = 0, hidden = 0, inter = 0;
  FfnPath path = FfnPath::kGrouped;
  // kTest: each expert empty with probability empty_fraction, else its row count uniform in
  // [1, max_rows_per_expert]. kBench (tokens > 0): tokens routed top-6 as above.
  int32_t max_rows_per_expert = 0;
  double empty_fraction = 0.0;
  int64_t tokens = 0;
};

#ifdef KUBEMOE_HAVE_CUDA
cuda::ExpertGemmPath CudaPath(FfnPath path) {
  switch (path) {
    case FfnPath::kGrouped:
      return cuda::ExpertGemmPath::kGrouped;
    case FfnPath::kPerExpert:
      return cuda::ExpertGemmPath::kPerExpert;
    case FfnPath::kMultiStream:
      return cuda::ExpertGemmPath::kMultiStream;
    case FfnPath::kBucketed:
      return cuda::ExpertGemmPath::kBucketed;
    case FfnPath::kBucketedBatched:
      return cuda::ExpertGemmPath::kBucketedBatched;
    case FfnPath::kAuto:
      return cuda::ExpertGemmPath::kAuto;
  }
  return cuda::ExpertGemmPath::kGrouped;
}
#endif

class GroupedFfnCase : public OpCase {
 public:
  explicit GroupedFfnCase(FfnConfig config) : config_(std::move(config)) {}

  std::string Name() const override { return config_.name; }

  void Draw(Rng& rng) override {
    const FfnConfig& c = config_;
    std::vector<int64_t> counts;
    if (c.tokens > 0) {
      experts_ = BenchExperts(c.experts, c.hidden, c.inter);
      counts = RoutedCounts(rng, c.tokens, c.experts, 6, 8, 3);
    } else {
      experts_ = DrawExperts(rng(), c.experts, c.hidden, c.inter);
      std::uniform_int_distribution<int32_t> rows(1, c.max_rows_per_expert);
      std::bernoulli_distribution empty(c.empty_fraction);
      counts.resize(c.experts);
      for (int64_t& n : counts) n = empty(rng) ? 0 : rows(rng);
    }
    offsets_.assign(1, 0);
    for (int64_t n : counts) offsets_.push_back(offsets_.back() + n);
    x_.resize(static_cast<size_t>(offsets_.back()) * c.hidden);
    FillBf16(rng(), x_.data(), x_.size(), InputScale());
    checked_ = CheckedRows(offsets_, c.tokens > 0 ? kBenchCheckedRows : offsets_.back());
  }

  std::vector<Output> Reference() override {
    const int64_t h = config_.hidden, inter = config_.inter;
    Output out{"out", Metric::kRelativeL2, kFfnBound, {}};
    out.values.reserve(checked_.size() * h);
    std::vector<double> x(h), act(inter);
    for (int64_t row : checked_) {
      const int64_t e = ExpertOf(row);
      for (int64_t k = 0; k < h; ++k) x[k] = Widen(x_[row * h + k]);
      const uint16_t* gate = experts_->gate.data() + e * inter * h;
      const uint16_t* up = experts_->up.data() + e * inter * h;
      const uint16_t* down = experts_->down.data() + e * h * inter;
      for (int64_t j = 0; j < inter; ++j) {
        double g = 0.0, u = 0.0;
        for (int64_t k = 0; k < h; ++k) {
          g += x[k] * Widen(gate[j * h + k]);
          u += x[k] * Widen(up[j * h + k]);
        }
        act[j] = g / (1.0 + std::exp(-g)) * u;
      }
      for (int64_t k = 0; k < h; ++k) {
        double y = 0.0;
        for (int64_t j = 0; j < inter; ++j) y += act[j] * Widen(down[k * inter + j]);
        out.values.push_back(y);
      }
    }
    return {std::move(out), AllWrittenExpected()};
  }

  // cpu::SwiGluFfn per expert on f32 copies of its weights and its checked rows.
  StatusOr<std::vector<Output>> RunCpu() override {
    const int64_t h = config_.hidden, inter = config_.inter, matrix = h * inter;
    Output out{"out", Metric::kRelativeL2, kFfnBound, {}};
    out.values.reserve(checked_.size() * h);
    for (size_t begin = 0; begin < checked_.size();) {
      const int64_t e = ExpertOf(checked_[begin]);
      size_t end = begin;
      while (end < checked_.size() && checked_[end] < offsets_[e + 1]) ++end;
      const int64_t n = static_cast<int64_t>(end - begin);
      std::vector<float> x(n * h), y(n * h), scratch(cpu::SwiGluScratchFloats(n, inter));
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t k = 0; k < h; ++k) x[i * h + k] = Widen(x_[checked_[begin + i] * h + k]);
      }
      const std::vector<float> gate = ToFloats(experts_->gate.data() + e * matrix, matrix);
      const std::vector<float> up = ToFloats(experts_->up.data() + e * matrix, matrix);
      const std::vector<float> down = ToFloats(experts_->down.data() + e * matrix, matrix);
      cpu::SwiGluFfn(x.data(), n, h, inter, gate.data(), up.data(), down.data(), scratch.data(),
                     y.data());
      out.values.insert(out.values.end(), y.begin(), y.end());
      begin = end;
    }
    return std::vector<Output>{std::move(out), AllWrittenExpected()};
  }

#ifdef KUBEMOE_HAVE_CUDA
  Status CudaPrepare() override {
    Experts& w = *experts_;
    if (!w.uploaded) {
      for (auto [host, dev] : {std::pair{&w.gate, &w.gate_dev}, std::pair{&w.up, &w.up_dev},
                               std::pair{&w.down, &w.down_dev}}) {
        StatusOr<cuda::DeviceBuffer> buffer = cuda::DeviceBuffer::Allocate(host->size() * 2);
        if (!buffer.ok()) return buffer.status();
        KUBEMOE_RETURN_IF_ERROR(buffer->Upload(host->data(), host->size() * 2));
        *dev = std::move(*buffer);
      }
      w.uploaded = true;
    }
    const size_t bytes = x_.size() * sizeof(uint16_t);
    StatusOr<cuda::DeviceBuffer> x = cuda::DeviceBuffer::Allocate(bytes);
    if (!x.ok()) return x.status();
    KUBEMOE_RETURN_IF_ERROR(x->Upload(x_.data(), bytes));
    x_dev_ = std::move(*x);
    StatusOr<cuda::DeviceBuffer> out = cuda::DeviceBuffer::Allocate(bytes);
    if (!out.ok()) return out.status();
    KUBEMOE_RETURN_IF_ERROR(out->Fill(0xFF));
    out_dev_ = std::move(*out);
    const int64_t rows = std::max<int64_t>(offsets_.back(), 1);
    if (ffn_ == nullptr || ffn_->max_rows() < rows) {
      StatusOr<cuda::GroupedExpertFfn> ffn = cuda::GroupedExpertFfn::Create(
          rows, config_.hidden, config_.inter, CudaPath(config_.path));
      if (!ffn.ok()) return ffn.status();
      ffn_ = std::make_unique<cuda::GroupedExpertFfn>(std::move(*ffn));
    }
    return Status::Ok();
  }

  Status CudaLaunch(CUstream_st* stream) override {
    const Experts& w = *experts_;
    const cuda::ExpertWeightsBf16 weights{w.count,
                                          w.hidden,
                                          w.inter,
                                          w.gate_dev.as<uint16_t>(),
                                          w.up_dev.as<uint16_t>(),
                                          w.down_dev.as<uint16_t>()};
    return ffn_->Run(weights, x_dev_.as<uint16_t>(), offsets_.data(), out_dev_.as<uint16_t>(),
                     stream);
  }

  StatusOr<std::vector<Output>> CudaResults() override {
    const int64_t h = config_.hidden;
    std::vector<uint16_t> all(x_.size());
    KUBEMOE_RETURN_IF_ERROR(out_dev_.Download(all.data(), all.size() * sizeof(uint16_t)));
    Output out{"out", Metric::kRelativeL2, kFfnBound, {}};
    out.values.reserve(checked_.size() * h);
    for (int64_t row : checked_) {
      for (int64_t k = 0; k < h; ++k) out.values.push_back(Widen(all[row * h + k]));
    }
    return std::vector<Output>{std::move(out), AllWritten(all.data(), all.size())};
  }
#endif

  // The floor: each used expert's three matrices, x and out once each; 6 FLOPs per row, hidden
  // and intermediate element (three products, multiply-add = 2).
  Work work() const override {
    if (offsets_.empty()) return {};
    const double h = config_.hidden, inter = config_.inter, rows = offsets_.back();
    double used = 0.0;
    for (size_t e = 0; e + 1 < offsets_.size(); ++e) used += offsets_[e + 1] > offsets_[e];
    return {2.0 * (used * 3.0 * h * inter + 2.0 * rows * h), 6.0 * rows * h * inter};
  }

 private:
  int64_t ExpertOf(int64_t row) const {
    return std::upper_bound(offsets_.begin(), offsets_.end(), row) - offsets_.begin() - 1;
  }

  FfnConfig config_;
  std::shared_ptr<Experts> experts_;
  std::vector<int64_t> offsets_;  // num_experts + 1 prefix sums
  std::vector<uint16_t> x_;       // [rows x hidden]
  std::vector<int64_t> checked_;  // ascending rows compared with the reference
#ifdef KUBEMOE_HAVE_CUDA
  cuda::DeviceBuffer x_dev_, out_dev_;
  std::unique_ptr<cuda::GroupedExpertFfn> ffn_;
#endif
};

// y[m x n] = x[m x k] * w[n x k]^T in bf16 with f32 accumulation; CPU twin cpu::Linear.
class DenseGemmCase : public OpCase {
 public:
  DenseGemmCase(std::string name, int64_t m, int64_t n, int64_t k, bool bench)
      : name_(std::move(name)), m_(m), n_(n), k_(k), bench_(bench) {}

  std::string Name() const override { return name_; }

  void Draw(Rng& rng) override {
    x_.resize(m_ * k_);
    w_.resize(n_ * k_);
    FillBf16(rng(), x_.data(), x_.size(), InputScale());
    FillBf16(rng(), w_.data(), w_.size(), WeightScale(k_));
    std::vector<int64_t> row_offsets(m_ + 1);
    std::iota(row_offsets.begin(), row_offsets.end(), int64_t{0});
    checked_ = CheckedRows(row_offsets, bench_ ? kBenchCheckedRows : m_);
  }

  std::vector<Output> Reference() override {
    Output y{"y", Metric::kRelativeL2, kDenseBound, {}};
    y.values.reserve(checked_.size() * n_);
    const size_t rows = checked_.size();
    std::vector<double> x(rows * k_), w(k_);
    for (size_t i = 0; i < rows; ++i) {
      for (int64_t c = 0; c < k_; ++c) x[i * k_ + c] = Widen(x_[checked_[i] * k_ + c]);
    }
    y.values.resize(rows * n_);
    for (int64_t j = 0; j < n_; ++j) {  // each weight row widened once
      for (int64_t c = 0; c < k_; ++c) w[c] = Widen(w_[j * k_ + c]);
      for (size_t i = 0; i < rows; ++i) {
        double sum = 0.0;
        for (int64_t c = 0; c < k_; ++c) sum += x[i * k_ + c] * w[c];
        y.values[i * n_ + j] = sum;
      }
    }
    return {std::move(y), AllWrittenExpected()};
  }

  StatusOr<std::vector<Output>> RunCpu() override {
    const int64_t rows = static_cast<int64_t>(checked_.size());
    std::vector<float> x(rows * k_), y(rows * n_);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t c = 0; c < k_; ++c) x[i * k_ + c] = Widen(x_[checked_[i] * k_ + c]);
    }
    const std::vector<float> w = ToFloats(w_.data(), w_.size());
    cpu::Linear(x.data(), rows, k_, w.data(), n_, y.data());
    return std::vector<Output>{
        {"y", Metric::kRelativeL2, kDenseBound, ToDoubles(y.data(), y.size())},
        AllWrittenExpected()};
  }

#ifdef KUBEMOE_HAVE_CUDA
  Status CudaPrepare() override {
    for (auto [host, dev] : {std::pair{&x_, &x_dev_}, std::pair{&w_, &w_dev_}}) {
      StatusOr<cuda::DeviceBuffer> buffer = cuda::DeviceBuffer::Allocate(host->size() * 2);
      if (!buffer.ok()) return buffer.status();
      KUBEMOE_RETURN_IF_ERROR(buffer->Upload(host->data(), host->size() * 2));
      *dev = std::move(*buffer);
    }
    StatusOr<cuda::DeviceBuffer> y = cuda::DeviceBuffer::Allocate(m_ * n_ * 2);
    if (!y.ok()) return y.status();
    KUBEMOE_RETURN_IF_ERROR(y->Fill(0xFF));
    y_dev_ = std::move(*y);
    if (gemm_ == nullptr) {
      StatusOr<cuda::DenseGemmBf16> gemm = cuda::DenseGemmBf16::Create();
      if (!gemm.ok()) return gemm.status();
      gemm_ = std::make_unique<cuda::DenseGemmBf16>(std::move(*gemm));
    }
    return Status::Ok();
  }

  Status CudaLaunch(CUstream_st* stream) override {
    return gemm_->Run(x_dev_.as<uint16_t>(), w_dev_.as<uint16_t>(), y_dev_.as<uint16_t>(), m_, n_,
                      k_, stream);
  }

  StatusOr<std::vector<Output>> CudaResults() override {
    std::vector<uint16_t> all(m_ * n_);
    KUBEMOE_RETURN_IF_ERROR(y_dev_.Download(all.data(), all.size() * sizeof(uint16_t)));
    Output y{"y", Metric::kRelativeL2, kDenseBound, {}};
    y.values.reserve(checked_.size() * n_);
    for (int64_t row : checked_) {
      for (int64_t j = 0; j < n_; ++j) y.values.push_back(Widen(all[row * n_ + j]));
    }
    return std::vector<Output>{std::move(y), AllWritten(all.data(), all.size())};
  }
#endif

  Work work() const override {
    const double m = m_, n = n_, k = k_;
    return {2.0 * (m * k + n * k + m * n), 2.0 * m * n * k};
  }

 private:
  std::string name_;
  int64_t m_, n_, k_;
  bool bench_;
  std::vector<uint16_t> x_, w_;
  std::vector<int64_t> checked_;
#ifdef KUBEMOE_HAVE_CUDA
  cuda::DeviceBuffer x_dev_, w_dev_, y_dev_;
  std::unique_ptr<cuda::DenseGemmBf16> gemm_;
#endif
};

void AddGroupedFfnCases(Scale scale, CaseList& cases) {
  auto add_ffn = [&](FfnConfig config) {
    const std::pair<FfnPath, const char*> paths[] = {
        {FfnPath::kGrouped, "grouped_"},
        {FfnPath::kPerExpert, "per_expert_"},
        {FfnPath::kMultiStream, "multi_stream_"},
        {FfnPath::kBucketed, "bucketed_"},
        {FfnPath::kBucketedBatched, "bucketed_batched_"},
        {FfnPath::kAuto, "auto_"}};
    for (const auto& [path, prefix] : paths) {
      // The grouped and bucketed cuBLAS calls need even sizes (GroupedExpertFfn::Create refuses
      // odd ones).
      const bool needs_even = path == FfnPath::kGrouped || path == FfnPath::kBucketed ||
                              path == FfnPath::kBucketedBatched || path == FfnPath::kAuto;
      if (needs_even && (config.hidden % 2 != 0 || config.inter % 2 != 0)) continue;
      FfnConfig variant = config;
      variant.path = path;
      variant.name = "grouped_ffn/" + std::string(prefix) + config.name;
      cases.push_back(std::make_unique<GroupedFfnCase>(std::move(variant)));
    }
  };
  auto dims = [](int64_t m, int64_t n, int64_t k) {
    return "m" + std::to_string(m) + "_n" + std::to_string(n) + "_k" + std::to_string(k);
  };
  if (scale == Scale::kTest) {
    // Few rows per expert so equal counts share cuBLAS groups; about a third of experts empty.
    add_ffn({"h128_i96_e16", 16, 128, 96, FfnPath::kGrouped, 6, 0.35, 0});
    // Nearly every expert empty: groups of one, long runs of empty experts.
    add_ffn({"h64_i32_e16_sparse", 16, 64, 32, FfnPath::kGrouped, 9, 0.85, 0});
    // Rows that are not whole 16-byte vectors (cuBLAS's 4-byte alignment, the SwiGLU tail).
    add_ffn({"h66_i34_e12", 12, 66, 34, FfnPath::kGrouped, 7, 0.3, 0});
    // Up to 200 rows per expert: the bucketed paths' padded layout spans several buckets
    // (64 to 256 rows) and most experts carry padding rows.
    add_ffn({"h64_i48_e10_many_rows", 10, 64, 48, FfnPath::kGrouped, 200, 0.2, 0});
    // Odd sizes: only the per-expert paths take them.
    add_ffn({"h65_i33_e8", 8, 65, 33, FfnPath::kGrouped, 5, 0.25, 0});
    cases.push_back(
        std::make_unique<DenseGemmCase>("dense_gemm/" + dims(37, 48, 80), 37, 48, 80, false));
    cases.push_back(
        std::make_unique<DenseGemmCase>("dense_gemm/" + dims(33, 45, 65), 33, 45, 65, false));
    return;
  }
  constexpr int32_t kExperts = 160, kHidden = 5120, kInter = 1536, kTopK = 6;
  for (int64_t tokens : {128, 1024, 4096}) {
    const std::string shape = "t" + std::to_string(tokens) + "_e160_k6";
    add_ffn({shape, kExperts, kHidden, kInter, FfnPath::kGrouped, 0, 0.0, tokens});
    const int64_t m = tokens * kTopK, n = 3 * kInter, k = kHidden;  // the FFN's FLOPs
    cases.push_back(std::make_unique<DenseGemmCase>(
        "dense_gemm/ffn_t" + std::to_string(tokens) + "_" + dims(m, n, k), m, n, k, true));
  }
}

const bool kRegistered = RegisterCases("grouped_ffn", AddGroupedFfnCases);

}  // namespace
}  // namespace kubemoe::kernel_ops
