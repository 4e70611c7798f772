// One case of the kernel harness (after ggml's test-backend-ops): an op at one shape, its inputs
// drawn fresh from a seeded generator, its expected outputs computed on the host, and each
// backend's outputs compared with them under the op's stated error bound.
//
// Backends: "cpu" is the op's CPU twin (kernels/cpu/, or the engine's own CPU code), "cuda" the
// kernel in kernels/cuda/. A case whose reference IS its CPU twin (the routing library for gating,
// say) has no separate cpu row. The harness (tests/kernel_ops_test.cc) and the GPU benchmark
// (bench/kernel_ops_gpu.cc) both run the cases registered here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"

struct CUstream_st;

namespace kubemoe::kernel_ops {

using Rng = std::mt19937_64;

// How a backend's output is compared with the reference.
enum class Metric {
  kExact,       // every element equal (ids, counts, permutations, exact conversions)
  kRelativeL2,  // ||out - ref|| / ||ref|| <= bound (METHOD.md; ||ref|| = 0 compares ||out||)
  kMaxAbs,      // max |out - ref| <= bound (values near zero, where a norm ratio says little)
};

// One named output, flattened to doubles (ids and counts convert exactly).
struct Output {
  std::string name;
  Metric metric = Metric::kExact;
  double bound = 0.0;  // unused for kExact
  std::vector<double> values;
};

// What one launch moves and computes, for the benchmark's rates: bytes read plus bytes written
// at least once each (the floor), and floating-point operations (multiply-add = 2).
struct Work {
  double bytes = 0.0;
  double flops = 0.0;
};

// Problem sizes: kTest keeps the CI run short; kBench is DeepSeek-V2's (bench/RESULTS.md).
enum class Scale { kTest, kBench };

class OpCase {
 public:
  virtual ~OpCase() = default;

  // "op/variant", unique over all cases, e.g. "gating/group_limited/t128_e160_k6".
  virtual std::string Name() const = 0;
  // Draws new inputs; every call replaces the previous ones.
  virtual void Draw(Rng& rng) = 0;
  // Expected outputs for the drawn inputs, with each output's metric and bound.
  virtual std::vector<Output> Reference() = 0;

  // The CPU twin's outputs, or nothing when the reference is the CPU twin itself.
  virtual bool HasCpuTwin() const { return true; }
  virtual StatusOr<std::vector<Output>> RunCpu() = 0;

  // CUDA: upload the inputs and allocate outputs poisoned with NaN (0xFF bytes), then launch only
  // the op's kernels on `stream` (the benchmark times CudaLaunch alone, many times over), then
  // read the outputs back. The defaults report the op as having no CUDA kernel.
  virtual Status CudaPrepare() { return NoCudaKernel(); }
  virtual Status CudaLaunch(CUstream_st* /*stream*/) { return NoCudaKernel(); }
  virtual StatusOr<std::vector<Output>> CudaResults() { return NoCudaKernel(); }

  virtual Work work() const { return {}; }

  // False when a NaN in the outputs can only mean an unwritten element, which the benchmark then
  // reports (it has no reference at its sizes). True for ops whose valid outputs include NaN.
  virtual bool OutputsMayHoldNaN() const { return false; }

 private:
  Status NoCudaKernel() const { return {StatusCode::kUnimplemented, Name() + " has no CUDA kernel"}; }
};

using CaseList = std::vector<std::unique_ptr<OpCase>>;
using CaseFactory = std::function<void(Scale, CaseList&)>;

// Each *_cases.cc registers its factory at static initialization:
//   const bool kRegistered = RegisterCases("gating", AddGatingCases);
// (the case files are an OBJECT library, so nothing drops the registrations).
bool RegisterCases(const std::string& op, CaseFactory factory);

// Every registered case at `scale`, ordered by name.
CaseList MakeAllCases(Scale scale);

// Compares one backend's outputs with the reference: same names, same lengths, no NaN anywhere
// (an unwritten poisoned element shows as NaN), and each output within its metric's bound.
// Returns OK or InvalidArgument describing the first failure (output, index, values, error).
// *worst, when not null, receives the largest error ratio seen (error / bound; 0 for exact).
Status CompareOutputs(const std::vector<Output>& reference, const std::vector<Output>& got,
                      double* worst = nullptr);

// Helpers for case files.
std::vector<double> ToDoubles(const float* values, size_t n);
std::vector<double> ToDoubles(const int32_t* values, size_t n);
// Widens bf16 bit patterns (the high half of an f32) to doubles.
std::vector<double> Bf16ToDoubles(const uint16_t* values, size_t n);
// Round-to-nearest-even f32 -> bf16, as the kernels store it.
uint16_t F32ToBf16(float value);
float Bf16ToF32(uint16_t bits);
// n values uniform in [lo, hi).
std::vector<float> UniformFloats(Rng& rng, size_t n, float lo, float hi);
// n values uniform in [lo, hi), rounded to bf16 bit patterns.
std::vector<uint16_t> UniformBf16(Rng& rng, size_t n, float lo, float hi);

}  // namespace kubemoe::kernel_ops
