// Harness cases for the dispatch layout, the permutation into expert-contiguous rows and the
// weighted combine (kernels/{cpu,cuda}/dispatch_layout.h). The references are written
// independently of the twins: the layout by a stable sort of the routes by expert, the combine
// in float64. Layout and permutation must be identical on every backend; the combine is f32
// sums of k bf16 products, within 1e-6 relative L2 of float64.
#include <algorithm>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "kernels/cpu/dispatch_layout.h"
#include "tests/kernel_ops/op_case.h"

#ifdef KUBEMOE_HAVE_CUDA
#include "kernels/cuda/dispatch_layout.h"
#include "kernels/cuda/runtime.h"
#endif

namespace kubemoe::kernel_ops {
namespace {

constexpr double kCombineBound = 1e-6;

struct LayoutSpec {
  int64_t tokens;
  int32_t top_k;
  int32_t experts;
  int32_t devices;
  int64_t hidden;
  bool some_invalid;  // a few routes carry id -1 (gating rows that failed)
};

// Distinct experts per token, drawn uniformly; with some_invalid, about 1 route in 50 is -1.
std::vector<int32_t> DrawIds(Rng& rng, const LayoutSpec& s) {
  std::vector<int32_t> ids(static_cast<size_t>(s.tokens * s.top_k));
  std::vector<int32_t> all(static_cast<size_t>(s.experts));
  std::iota(all.begin(), all.end(), 0);
  std::uniform_int_distribution<int> invalid(0, 49);
  for (int64_t t = 0; t < s.tokens; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    for (int32_t j = 0; j < s.top_k; ++j) {
      ids[static_cast<size_t>(t * s.top_k + j)] =
          s.some_invalid && invalid(rng) == 0 ? -1 : all[static_cast<size_t>(j)];
    }
  }
  return ids;
}

std::vector<int32_t> ContiguousExpertDevice(const LayoutSpec& s) {
  std::vector<int32_t> device(static_cast<size_t>(s.experts));
  for (int32_t e = 0; e < s.experts; ++e)
    device[static_cast<size_t>(e)] = e * s.devices / s.experts;
  return device;
}

std::string Shape(const LayoutSpec& s) {
  // Appended piece by piece: GCC 12's -O3 warns falsely (-Wrestrict) on "literal" + to_string.
  std::string shape = "t";
  shape += std::to_string(s.tokens);
  shape += "_k";
  shape += std::to_string(s.top_k);
  shape += "_e";
  shape += std::to_string(s.experts);
  if (s.some_invalid) shape += "_invalid_ids";
  return shape;
}

// ---- Layout: counts, offsets, route <-> row maps, tokens per device.
class LayoutCase : public OpCase {
 public:
  explicit LayoutCase(LayoutSpec spec) : s_(spec), expert_device_(ContiguousExpertDevice(spec)) {}

  std::string Name() const override {
    return "dispatch_layout/" + Shape(s_) + "_d" + std::to_string(s_.devices);
  }
  void Draw(Rng& rng) override { ids_ = DrawIds(rng, s_); }

  std::vector<Output> Reference() override {
    const size_t routes = ids_.size();
    std::vector<int32_t> order;
    for (size_t r = 0; r < routes; ++r) {
      if (ids_[r] >= 0) order.push_back(static_cast<int32_t>(r));
    }
    std::stable_sort(order.begin(), order.end(),
                     [this](int32_t a, int32_t b) { return ids_[a] < ids_[b]; });
    std::vector<int32_t> counts(static_cast<size_t>(s_.experts), 0);
    for (int32_t r : order) ++counts[static_cast<size_t>(ids_[r])];
    std::vector<int32_t> offsets(static_cast<size_t>(s_.experts) + 1, 0);
    std::partial_sum(counts.begin(), counts.end(), offsets.begin() + 1);
    std::vector<int32_t> route_rows(routes, -1);
    for (size_t row = 0; row < order.size(); ++row)
      route_rows[order[row]] = static_cast<int32_t>(row);
    std::vector<int32_t> device_tokens(static_cast<size_t>(s_.devices), 0);
    for (int64_t t = 0; t < s_.tokens; ++t) {
      std::set<int32_t> reached;
      for (int32_t j = 0; j < s_.top_k; ++j) {
        const int32_t e = ids_[static_cast<size_t>(t * s_.top_k + j)];
        if (e >= 0) reached.insert(expert_device_[static_cast<size_t>(e)]);
      }
      for (int32_t d : reached) ++device_tokens[static_cast<size_t>(d)];
    }
    return Pack(counts, offsets, route_rows, order, device_tokens);
  }

  StatusOr<std::vector<Output>> RunCpu() override {
    Outputs o(s_);
    cpu::DispatchLayout(ids_.data(), s_.tokens, s_.top_k, s_.experts, expert_device_.data(),
                        s_.devices, o.counts.data(), o.offsets.data(), o.route_rows.data(),
                        o.row_routes.data(), o.device_tokens.data());
    o.row_routes.resize(static_cast<size_t>(o.offsets.back()));
    return Pack(o.counts, o.offsets, o.route_rows, o.row_routes, o.device_tokens);
  }

  Work work() const override {
    // ids read once (the per-expert walk re-reads them from L2), maps and counts written once.
    return {static_cast<double>(ids_.size()) * 12.0, 0.0};
  }

#ifdef KUBEMOE_HAVE_CUDA
  Status CudaPrepare() override {
    const size_t routes = static_cast<size_t>(s_.tokens * s_.top_k);
    KUBEMOE_RETURN_IF_ERROR(cuda::AllocateCopy(&ids_d_, ids_.data(), routes * 4));
    KUBEMOE_RETURN_IF_ERROR(
        cuda::AllocateCopy(&device_d_, expert_device_.data(), expert_device_.size() * 4));
    KUBEMOE_RETURN_IF_ERROR(
        cuda::AllocateFilled(&counts_d_, static_cast<size_t>(s_.experts) * 4, 0xFF));
    KUBEMOE_RETURN_IF_ERROR(
        cuda::AllocateFilled(&offsets_d_, (static_cast<size_t>(s_.experts) + 1) * 4, 0xFF));
    KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(&route_rows_d_, routes * 4, 0xFF));
    KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(&row_routes_d_, routes * 4, 0xFF));
    KUBEMOE_RETURN_IF_ERROR(
        cuda::AllocateFilled(&device_tokens_d_, static_cast<size_t>(s_.devices) * 4, 0xFF));
    KUBEMOE_RETURN_IF_ERROR(cuda::AllocateFilled(
        &scratch_d_,
        static_cast<size_t>(cuda::DispatchLayoutScratchInts(s_.tokens, s_.top_k, s_.experts)) * 4,
        0xFF));
    return Status::Ok();
  }

  Status CudaLaunch(CUstream_st* stream) override {
    cuda::DispatchLayoutOutputs out{counts_d_.as<int32_t>(),        offsets_d_.as<int32_t>(),
                                    route_rows_d_.as<int32_t>(),    row_routes_d_.as<int32_t>(),
                                    device_tokens_d_.as<int32_t>(), scratch_d_.as<int32_t>()};
    return cuda::DispatchLayout(ids_d_.as<int32_t>(), s_.tokens, s_.top_k, s_.experts,
                                device_d_.as<int32_t>(), s_.devices, out, stream);
  }

  StatusOr<std::vector<Output>> CudaResults() override {
    KUBEMOE_RETURN_IF_ERROR(cuda::SynchronizeDevice("dispatch layout"));
    Outputs o(s_);
    KUBEMOE_RETURN_IF_ERROR(counts_d_.Download(o.counts.data(), o.counts.size() * 4));
    KUBEMOE_RETURN_IF_ERROR(offsets_d_.Download(o.offsets.data(), o.offsets.size() * 4));
    KUBEMOE_RETURN_IF_ERROR(route_rows_d_.Download(o.route_rows.data(), o.route_rows.size() * 4));
    KUBEMOE_RETURN_IF_ERROR(row_routes_d_.Download(o.row_routes.data(), o.row_routes.size() * 4));
    KUBEMOE_RETURN_IF_ERROR(
        device_tokens_d_.Download(o.device_tokens.data(), o.device_tokens.size() * 4));
    const int32_t rows = o.offsets.back();
    if (rows < 0 || static_cast<size_t>(rows) > o.row_routes.size()) {
      return Internal("dispatch layout: offsets end at " + std::to_string(rows));
    }
    o.row_routes.resize(static_cast<size_t>(rows));
    return Pack(o.counts, o.offsets, o.route_rows, o.row_routes, o.device_tokens);
  }
#endif

 private:
  struct Outputs {
    explicit Outputs(const LayoutSpec& s)
        : counts(static_cast<size_t>(s.experts)),
          offsets(static_cast<size_t>(s.experts) + 1),
          route_rows(static_cast<size_t>(s.tokens * s.top_k)),
          row_routes(static_cast<size_t>(s.tokens * s.top_k)),
          device_tokens(static_cast<size_t>(s.devices)) {}
    std::vector<int32_t> counts, offsets, route_rows, row_routes, device_tokens;
  };

  static std::vector<Output> Pack(const std::vector<int32_t>& counts,
                                  const std::vector<int32_t>& offsets,
                                  const std::vector<int32_t>& route_rows,
                                  const std::vector<int32_t>& row_routes,
                                  const std::vector<int32_t>& device_tokens) {
    auto out = [](const char* name, const std::vector<int32_t>& v) {
      return Output{name, Metric::kExact, 0, ToDoubles(v.data(), v.size())};
    };
    return {out("expert_counts", counts), out("expert_offsets", offsets),
            out("route_rows", route_rows), out("row_routes", row_routes),
            out("device_token_counts", device_tokens)};
  }

#ifdef KUBEMOE_HAVE_CUDA
  cuda::DeviceBuffer ids_d_, device_d_, counts_d_, offsets_d_, route_rows_d_, row_routes_d_,
      device_tokens_d_, scratch_d_;
#endif

  LayoutSpec s_;
  std::vector<int32_t> expert_device_;
  std::vector<int32_t> ids_;
};

// ---- Permute (gather into expert-contiguous rows) and combine (weighted scatter back).
class PermuteCombineCase : public OpCase {
 public:
  PermuteCombineCase(LayoutSpec spec, bool combine) : s_(spec), combine_(combine) {}

  std::string Name() const override {
    return std::string(combine_ ? "combine_rows/" : "permute_rows/") + Shape(s_) + "_h" +
           std::to_string(s_.hidden);
  }

  void Draw(Rng& rng) override {
    ids_ = DrawIds(rng, s_);
    const size_t routes = ids_.size();
    counts_.assign(static_cast<size_t>(s_.experts), 0);
    offsets_.assign(static_cast<size_t>(s_.experts) + 1, 0);
    route_rows_.assign(routes, 0);
    row_routes_.assign(routes, 0);
    cpu::DispatchLayout(ids_.data(), s_.tokens, s_.top_k, s_.experts, nullptr, 0, counts_.data(),
                        offsets_.data(), route_rows_.data(), row_routes_.data(), nullptr);
    rows_ = offsets_.back();
    hidden_ = UniformBf16(rng, static_cast<size_t>(s_.tokens * s_.hidden), -2.0f, 2.0f);
    expert_out_ = UniformBf16(rng, static_cast<size_t>(rows_ * s_.hidden), -2.0f, 2.0f);
    weights_ = UniformFloats(rng, routes, 0.0f, 1.0f);
  }

  std::vector<Output> Reference() override {
    const size_t h = static_cast<size_t>(s_.hidden);
    if (!combine_) {
      std::vector<double> out(static_cast<size_t>(rows_) * h);
      for (int64_t r = 0; r < rows_; ++r) {
        const size_t token = static_cast<size_t>(row_routes_[static_cast<size_t>(r)] / s_.top_k);
        for (size_t i = 0; i < h; ++i)
          out[static_cast<size_t>(r) * h + i] = Bf16ToF32(hidden_[token * h + i]);
      }
      return {{"permuted", Metric::kExact, 0, std::move(out)}};
    }
    std::vector<double> out(static_cast<size_t>(s_.tokens) * h, 0.0);
    for (size_t r = 0; r < ids_.size(); ++r) {
      const int32_t row = route_rows_[r];
      if (row < 0) continue;
      const size_t token = r / static_cast<size_t>(s_.top_k);
      for (size_t i = 0; i < h; ++i) {
        out[token * h + i] += static_cast<double>(weights_[r]) *
                              Bf16ToF32(expert_out_[static_cast<size_t>(row) * h + i]);
      }
    }
    return {{"combined", Metric::kRelativeL2, kCombineBound, std::move(out)}};
  }

  StatusOr<std::vector<Output>> RunCpu() override {
    const size_t h = static_cast<size_t>(s_.hidden);
    if (!combine_) {
      std::vector<uint16_t> out(static_cast<size_t>(rows_) * h);
      cpu::PermuteRowsBf16(hidden_.data(), row_routes_.data(), rows_, s_.top_k, s_.hidden,
                           out.data());
      return std::vector<Output>{
          {"permuted", Metric::kExact, 0, Bf16ToDoubles(out.data(), out.size())}};
    }
    std::vector<float> out(static_cast<size_t>(s_.tokens) * h);
    cpu::CombineRowsBf16(expert_out_.data(), route_rows_.data(), weights_.data(), s_.tokens,
                         s_.top_k, s_.hidden, out.data());
    return std::vector<Output>{
        {"combined", Metric::kRelativeL2, kCombineBound, ToDoubles(out.data(), out.size())}};
  }

  Work work() const override {
    const double h = static_cast<double>(s_.hidden);
    const double rows = static_cast<double>(s_.tokens * s_.top_k);
    // Permute: each token's row read once (its top_k copies hit the cache), each route's row
    // written once.
    if (!combine_) return {static_cast<double>(s_.tokens) * h * 2.0 + rows * h * 2.0, 0.0};
    return {rows * h * 2.0 + static_cast<double>(s_.tokens) * h * 4.0, rows * h * 2.0};
  }

#ifdef KUBEMOE_HAVE_CUDA
  Status CudaPrepare() override {
    const size_t h = static_cast<size_t>(s_.hidden);
    KUBEMOE_RETURN_IF_ERROR(
        cuda::AllocateCopy(&route_rows_d_, route_rows_.data(), route_rows_.size() * 4));
    KUBEMOE_RETURN_IF_ERROR(
        cuda::AllocateCopy(&row_routes_d_, row_routes_.data(), row_routes_.size() * 4));
    if (!combine_) {
      KUBEMOE_RETURN_IF_ERROR(cuda::AllocateCopy(&in_d_, hidden_.data(), hidden_.size() * 2));
      return cuda::AllocateFilled(&out_d_, static_cast<size_t>(rows_) * h * 2, 0xFF);
    }
    KUBEMOE_RETURN_IF_ERROR(cuda::AllocateCopy(&in_d_, expert_out_.data(), expert_out_.size() * 2));
    KUBEMOE_RETURN_IF_ERROR(cuda::AllocateCopy(&weights_d_, weights_.data(), weights_.size() * 4));
    return cuda::AllocateFilled(&out_d_, static_cast<size_t>(s_.tokens) * h * 4, 0xFF);
  }

  Status CudaLaunch(CUstream_st* stream) override {
    if (!combine_) {
      return cuda::PermuteRowsBf16(in_d_.as<uint16_t>(), row_routes_d_.as<int32_t>(), rows_,
                                   s_.top_k, s_.hidden, out_d_.as<uint16_t>(), stream);
    }
    return cuda::CombineRowsBf16(in_d_.as<uint16_t>(), route_rows_d_.as<int32_t>(),
                                 weights_d_.as<float>(), s_.tokens, s_.top_k, s_.hidden,
                                 out_d_.as<float>(), stream);
  }

  StatusOr<std::vector<Output>> CudaResults() override {
    KUBEMOE_RETURN_IF_ERROR(cuda::SynchronizeDevice(combine_ ? "combine rows" : "permute rows"));
    const size_t h = static_cast<size_t>(s_.hidden);
    if (!combine_) {
      std::vector<uint16_t> out(static_cast<size_t>(rows_) * h);
      KUBEMOE_RETURN_IF_ERROR(out_d_.Download(out.data(), out.size() * 2));
      return std::vector<Output>{
          {"permuted", Metric::kExact, 0, Bf16ToDoubles(out.data(), out.size())}};
    }
    std::vector<float> out(static_cast<size_t>(s_.tokens) * h);
    KUBEMOE_RETURN_IF_ERROR(out_d_.Download(out.data(), out.size() * 4));
    return std::vector<Output>{
        {"combined", Metric::kRelativeL2, kCombineBound, ToDoubles(out.data(), out.size())}};
  }
#endif

 private:
#ifdef KUBEMOE_HAVE_CUDA
  cuda::DeviceBuffer route_rows_d_, row_routes_d_, in_d_, weights_d_, out_d_;
#endif

  LayoutSpec s_;
  bool combine_;
  std::vector<int32_t> ids_, counts_, offsets_, route_rows_, row_routes_;
  int64_t rows_ = 0;
  std::vector<uint16_t> hidden_, expert_out_;
  std::vector<float> weights_;
};

void AddDispatchCases(Scale scale, CaseList& cases) {
  std::vector<LayoutSpec> specs;
  if (scale == Scale::kBench) {
    for (int64_t tokens : {128, 1024, 4096}) specs.push_back({tokens, 6, 160, 8, 5120, false});
  } else {
    // 300 x 6 routes span four 512-route chunks; 2000 x 8 span 32, with 256 experts.
    specs = {{53, 6, 64, 8, 64, false},
             {300, 6, 160, 8, 40, true},
             {7, 2, 5, 5, 24, false},
             {2000, 8, 256, 16, 8, true}};
  }
  for (const LayoutSpec& s : specs) {
    cases.push_back(std::make_unique<LayoutCase>(s));
    cases.push_back(std::make_unique<PermuteCombineCase>(s, false));
    cases.push_back(std::make_unique<PermuteCombineCase>(s, true));
  }
}

const bool kRegistered = RegisterCases("dispatch", AddDispatchCases);

}  // namespace
}  // namespace kubemoe::kernel_ops
