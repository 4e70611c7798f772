// Harness cases for the weight conversions (kernels/{cpu,cuda}/convert.h): every 16-bit pattern
// (infinities, NaNs, subnormals, -0 included), in a fresh order each draw, against the IEEE
// formulas evaluated in double. Exact: a conversion to a wider format has one right answer (NaN
// compares equal to NaN).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/cpu/convert.h"
#include "tests/kernel_ops/op_case.h"

#ifdef KUBEMOE_HAVE_CUDA
#include "kernels/cuda/convert.h"
#include "kernels/cuda/runtime.h"
#endif

namespace kubemoe::kernel_ops {
namespace {

double F16Value(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  if (exponent == 31) return mantissa != 0 ? std::nan("") : sign * HUGE_VAL;
  if (exponent == 0) return sign * std::ldexp(mantissa / 1024.0, -14);
  return sign * std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
}

double Bf16Value(uint16_t b) {
  const int sign = (b >> 15) ? -1 : 1;
  const int exponent = (b >> 7) & 0xff;
  const int mantissa = b & 0x7f;
  if (exponent == 255) return mantissa != 0 ? std::nan("") : sign * HUGE_VAL;
  if (exponent == 0) return sign * std::ldexp(mantissa / 128.0, -126);
  return sign * std::ldexp(1.0 + mantissa / 128.0, exponent - 127);
}

class ConvertCase : public OpCase {
 public:
  ConvertCase(bool bf16, int copies) : bf16_(bf16), copies_(copies) {}

  std::string Name() const override {
    return std::string("convert/") + (bf16_ ? "bf16_to_f32" : "f16_to_f32") + "/n" +
           std::to_string(65536 * copies_);
  }

  void Draw(Rng& rng) override {
    in_.resize(static_cast<size_t>(65536) * copies_);
    for (size_t i = 0; i < in_.size(); ++i) in_[i] = static_cast<uint16_t>(i);
    std::shuffle(in_.begin(), in_.end(), rng);
  }

  std::vector<Output> Reference() override {
    std::vector<double> out(in_.size());
    for (size_t i = 0; i < in_.size(); ++i) out[i] = bf16_ ? Bf16Value(in_[i]) : F16Value(in_[i]);
    return {{"f32", Metric::kExact, 0, std::move(out)}};
  }

  StatusOr<std::vector<Output>> RunCpu() override {
    std::vector<float> out(in_.size());
    (bf16_ ? cpu::Bf16ToF32 : cpu::F16ToF32)(in_.data(), out.data(), in_.size());
    return std::vector<Output>{{"f32", Metric::kExact, 0, ToDoubles(out.data(), out.size())}};
  }

  Work work() const override { return {static_cast<double>(in_.size()) * 6.0, 0.0}; }

#ifdef KUBEMOE_HAVE_CUDA
  Status CudaPrepare() override {
    StatusOr<cuda::DeviceBuffer> in = cuda::DeviceBuffer::Allocate(in_.size() * 2);
    StatusOr<cuda::DeviceBuffer> out = cuda::DeviceBuffer::Allocate(in_.size() * 4);
    KUBEMOE_RETURN_IF_ERROR(in.status());
    KUBEMOE_RETURN_IF_ERROR(out.status());
    in_d_ = std::move(*in);
    out_d_ = std::move(*out);
    KUBEMOE_RETURN_IF_ERROR(in_d_.Upload(in_.data(), in_.size() * 2));
    return out_d_.Fill(0xFF);
  }

  Status CudaLaunch(CUstream_st* stream) override {
    return (bf16_ ? cuda::Bf16ToF32 : cuda::F16ToF32)(in_d_.as<uint16_t>(), out_d_.as<float>(),
                                                      in_.size(), stream);
  }

  StatusOr<std::vector<Output>> CudaResults() override {
    KUBEMOE_RETURN_IF_ERROR(cuda::SynchronizeDevice("convert"));
    std::vector<float> out(in_.size());
    KUBEMOE_RETURN_IF_ERROR(out_d_.Download(out.data(), out.size() * 4));
    return std::vector<Output>{{"f32", Metric::kExact, 0, ToDoubles(out.data(), out.size())}};
  }
#endif

  bool OutputsMayHoldNaN() const override { return true; }  // NaN patterns convert to NaN

 private:
#ifdef KUBEMOE_HAVE_CUDA
  cuda::DeviceBuffer in_d_, out_d_;
#endif
  bool bf16_;
  int copies_;
  std::vector<uint16_t> in_;
};

void AddConvertCases(Scale scale, CaseList& cases) {
  // At bench size, 64 Mi elements (128 MB in, 256 MB out): a weight tensor's conversion.
  const int copies = scale == Scale::kBench ? 1024 : 1;
  cases.push_back(std::make_unique<ConvertCase>(true, copies));
  cases.push_back(std::make_unique<ConvertCase>(false, copies));
}

const bool kRegistered = RegisterCases("convert", AddConvertCases);

}  // namespace
}  // namespace kubemoe::kernel_ops
