// Harness cases for RMSNorm (kernels/cuda/rmsnorm.h; CPU twin cpu::RmsNorm). The reference is
// float64 throughout. Both backends accumulate the mean of squares in double, so their only
// errors are three f32 roundings per element (inv, x * inv, weight * that): at most 1.5 ulp,
// about 9e-8 relative; the bound, 5e-7 relative L2, leaves a factor of 5.
// Rows are strided; the elements between rows (ld > dim) must come back untouched: NaN (the
// poison) out of place, the input in place.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/rmsnorm.h"
#include "tests/kernel_ops/op_case.h"

#ifdef KUBEMOE_HAVE_CUDA
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/runtime.h"
#endif

namespace kubemoe::kernel_ops {
namespace {

constexpr double kBound = 5e-7;
constexpr float kEps = 1e-6f;

enum class Layout {
  kF32,         // f32 in, f32 out, separate arrays
  kF32InPlace,  // f32, out == in (ld_out == ld_in)
  kBf16In,      // bf16 in, f32 out
};

struct RmsNormSpec {
  Layout layout = Layout::kF32;
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t ld_in = 0;
  int64_t ld_out = 0;
};

class RmsNormCase : public OpCase {
 public:
  explicit RmsNormCase(RmsNormSpec spec) : s_(spec) {}

  std::string Name() const override {
    const char* kind = s_.layout == Layout::kF32          ? "f32"
                       : s_.layout == Layout::kF32InPlace ? "f32_in_place"
                                                          : "bf16_in";
    std::string name = std::string("rmsnorm/") + kind + "/r" + std::to_string(s_.rows) + "_d" +
                       std::to_string(s_.dim);
    if (s_.ld_in != s_.dim) name += "_ldi" + std::to_string(s_.ld_in);
    if (s_.ld_out != s_.dim && s_.layout != Layout::kF32InPlace) {
      name += "_ldo" + std::to_string(s_.ld_out);
    }
    return name;
  }

  void Draw(Rng& rng) override {
    const size_t n = static_cast<size_t>(s_.rows * s_.ld_in);
    // Row scales from 1/8 to 8, so the normalization has work to do.
    std::vector<float> x = UniformFloats(rng, n, -2.0f, 2.0f);
    for (int64_t r = 0; r < s_.rows; ++r) {
      const float scale = std::ldexp(1.0f, static_cast<int>(r % 7) - 3);
      for (int64_t i = 0; i < s_.ld_in; ++i) x[static_cast<size_t>(r * s_.ld_in + i)] *= scale;
    }
    if (s_.layout == Layout::kBf16In) {
      x_bf16_.resize(n);
      x_.resize(n);
      for (size_t i = 0; i < n; ++i) {
        x_bf16_[i] = F32ToBf16(x[i]);
        x_[i] = Bf16ToF32(x_bf16_[i]);
      }
    } else {
      x_ = std::move(x);
    }
    weight_ = UniformFloats(rng, static_cast<size_t>(s_.dim), 0.5f, 1.5f);
  }

  std::vector<Output> Reference() override {
    std::vector<double> out(static_cast<size_t>(s_.rows * s_.dim));
    for (int64_t r = 0; r < s_.rows; ++r) {
      const float* x = x_.data() + r * s_.ld_in;
      double sum = 0.0;
      for (int64_t i = 0; i < s_.dim; ++i) sum += static_cast<double>(x[i]) * x[i];
      const double inv = 1.0 / std::sqrt(sum / static_cast<double>(s_.dim) + kEps);
      for (int64_t i = 0; i < s_.dim; ++i) {
        out[static_cast<size_t>(r * s_.dim + i)] = static_cast<double>(weight_[i]) * x[i] * inv;
      }
    }
    std::vector<Output> outputs = {{"out", Metric::kRelativeL2, kBound, std::move(out)}};
    if (HasPadding()) outputs.push_back({"padding", Metric::kExact, 0, ExpectedPadding()});
    return outputs;
  }

  StatusOr<std::vector<Output>> RunCpu() override {
    const int64_t ld_out = LdOut();
    std::vector<float> out;
    if (s_.layout == Layout::kF32InPlace) {
      out = x_;
      cpu::RmsNorm(out.data(), s_.ld_in, s_.rows, s_.dim, weight_.data(), kEps, out.data(), ld_out);
    } else {
      // The bf16 twin is the exact widening (already in x_) followed by cpu::RmsNorm.
      out.assign(static_cast<size_t>(s_.rows * ld_out), std::numeric_limits<float>::quiet_NaN());
      cpu::RmsNorm(x_.data(), s_.ld_in, s_.rows, s_.dim, weight_.data(), kEps, out.data(), ld_out);
    }
    return Collect(out);
  }

  Work work() const override {
    const double elements = static_cast<double>(s_.rows * s_.dim);
    const double in_bytes = s_.layout == Layout::kBf16In ? 2.0 : 4.0;
    // Square-accumulate (2), x * inv and weight * that (2) per element.
    return {elements * (in_bytes + 4.0) + 4.0 * static_cast<double>(s_.dim), 4.0 * elements};
  }

#ifdef KUBEMOE_HAVE_CUDA
  Status CudaPrepare() override {
    const bool bf16 = s_.layout == Layout::kBf16In;
    const size_t in_bytes = x_.size() * (bf16 ? 2 : 4);
    StatusOr<cuda::DeviceBuffer> in = cuda::DeviceBuffer::Allocate(in_bytes);
    StatusOr<cuda::DeviceBuffer> weight = cuda::DeviceBuffer::Allocate(weight_.size() * 4);
    KUBEMOE_RETURN_IF_ERROR(in.status());
    KUBEMOE_RETURN_IF_ERROR(weight.status());
    in_d_ = std::move(*in);
    weight_d_ = std::move(*weight);
    KUBEMOE_RETURN_IF_ERROR(in_d_.Upload(
        bf16 ? static_cast<const void*>(x_bf16_.data()) : static_cast<const void*>(x_.data()),
        in_bytes));
    KUBEMOE_RETURN_IF_ERROR(weight_d_.Upload(weight_.data(), weight_.size() * 4));
    if (s_.layout != Layout::kF32InPlace) {
      StatusOr<cuda::DeviceBuffer> out =
          cuda::DeviceBuffer::Allocate(static_cast<size_t>(s_.rows * LdOut()) * 4);
      KUBEMOE_RETURN_IF_ERROR(out.status());
      out_d_ = std::move(*out);
      KUBEMOE_RETURN_IF_ERROR(out_d_.Fill(0xFF));
    }
    return Status::Ok();
  }

  Status CudaLaunch(CUstream_st* stream) override {
    switch (s_.layout) {
      case Layout::kF32:
        return cuda::RmsNorm(in_d_.as<float>(), s_.ld_in, s_.rows, s_.dim, weight_d_.as<float>(),
                             kEps, out_d_.as<float>(), s_.ld_out, stream);
      case Layout::kF32InPlace:
        return cuda::RmsNorm(in_d_.as<float>(), s_.ld_in, s_.rows, s_.dim, weight_d_.as<float>(),
                             kEps, in_d_.as<float>(), s_.ld_in, stream);
      case Layout::kBf16In:
        return cuda::RmsNormBf16In(in_d_.as<uint16_t>(), s_.ld_in, s_.rows, s_.dim,
                                   weight_d_.as<float>(), kEps, out_d_.as<float>(), s_.ld_out,
                                   stream);
    }
    return InvalidArgument("rmsnorm case: unknown layout");
  }

  StatusOr<std::vector<Output>> CudaResults() override {
    KUBEMOE_RETURN_IF_ERROR(cuda::SynchronizeDevice("rmsnorm"));
    std::vector<float> out(static_cast<size_t>(s_.rows * LdOut()));
    const cuda::DeviceBuffer& from = s_.layout == Layout::kF32InPlace ? in_d_ : out_d_;
    KUBEMOE_RETURN_IF_ERROR(from.Download(out.data(), out.size() * 4));
    return Collect(out);
  }
#endif

 private:
  int64_t LdOut() const { return s_.layout == Layout::kF32InPlace ? s_.ld_in : s_.ld_out; }
  bool HasPadding() const { return LdOut() > s_.dim; }

  // What the elements between output rows must hold: untouched.
  std::vector<double> ExpectedPadding() const {
    std::vector<double> pad;
    for (int64_t r = 0; r < s_.rows; ++r) {
      for (int64_t i = s_.dim; i < LdOut(); ++i) {
        pad.push_back(s_.layout == Layout::kF32InPlace
                          ? static_cast<double>(x_[static_cast<size_t>(r * s_.ld_in + i)])
                          : std::numeric_limits<double>::quiet_NaN());
      }
    }
    return pad;
  }

  std::vector<Output> Collect(const std::vector<float>& out) const {
    std::vector<double> rows;
    std::vector<double> pad;
    for (int64_t r = 0; r < s_.rows; ++r) {
      for (int64_t i = 0; i < LdOut(); ++i) {
        const double v = out[static_cast<size_t>(r * LdOut() + i)];
        (i < s_.dim ? rows : pad).push_back(v);
      }
    }
    std::vector<Output> outputs = {{"out", Metric::kRelativeL2, kBound, std::move(rows)}};
    if (HasPadding()) outputs.push_back({"padding", Metric::kExact, 0, std::move(pad)});
    return outputs;
  }

  RmsNormSpec s_;
  std::vector<float> x_;          // f32 values (the widened bf16 values for kBf16In)
  std::vector<uint16_t> x_bf16_;  // kBf16In only
  std::vector<float> weight_;
#ifdef KUBEMOE_HAVE_CUDA
  cuda::DeviceBuffer in_d_, weight_d_, out_d_;
#endif
};

void AddRmsNormCases(Scale scale, CaseList& cases) {
  auto add = [&cases](Layout layout, int64_t rows, int64_t dim, int64_t ld_in, int64_t ld_out) {
    cases.push_back(std::make_unique<RmsNormCase>(RmsNormSpec{layout, rows, dim, ld_in, ld_out}));
  };
  if (scale == Scale::kBench) {
    // DeepSeek-V2: the decoder norms (hidden 5120), q_a_layernorm (1536), kv_a_layernorm (512 of
    // each 576-wide latent row, in place).
    add(Layout::kF32, 4096, 5120, 5120, 5120);
    add(Layout::kBf16In, 4096, 5120, 5120, 5120);
    add(Layout::kF32InPlace, 4096, 1536, 1536, 1536);
    add(Layout::kF32InPlace, 4096, 512, 576, 576);
    return;
  }
  add(Layout::kF32, 1, 1, 1, 1);
  add(Layout::kF32, 7, 67, 70, 75);        // scalar path: odd dim and strides
  add(Layout::kF32, 33, 512, 512, 512);    // vector path, 128 threads
  add(Layout::kF32, 5, 5120, 5128, 5124);  // vector path, 256 threads, strided
  add(Layout::kF32, 3, 4100, 4101, 4100);  // odd ld_in: scalar path at a width that loops
  add(Layout::kF32InPlace, 9, 512, 576, 576);
  add(Layout::kF32InPlace, 4, 33, 33, 33);
  add(Layout::kBf16In, 11, 5120, 5120, 5120);
  add(Layout::kBf16In, 6, 77, 81, 77);  // scalar bf16 path
  add(Layout::kBf16In, 5, 1536, 1544, 1540);
}

const bool kRegistered = RegisterCases("rmsnorm", AddRmsNormCases);

}  // namespace
}  // namespace kubemoe::kernel_ops
