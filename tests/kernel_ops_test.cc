// The kernel harness: every case registered in tests/kernel_ops/ on every backend, against its
// host reference, under the op's stated bound. One GoogleTest test per case and backend, named
// "<backend>.<op>/<variant>", so a run lists each GPU case it skipped by name.
//
// Each test draws fresh inputs several times (KUBEMOE_KERNEL_SEED=<n> repeats a run; the seed in
// use is printed first). CUDA outputs are poisoned with NaN before every launch, so an element a
// kernel never wrote fails the comparison.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <random>
#include <string>

#include "tests/kernel_ops/op_case.h"

#ifdef KUBEMOE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace kubemoe::kernel_ops {
namespace {

constexpr int kDrawsPerCase = 3;

uint64_t BaseSeed() {
  if (const char* env = std::getenv("KUBEMOE_KERNEL_SEED"); env != nullptr && *env != '\0') {
    return std::strtoull(env, nullptr, 10);
  }
  return std::random_device{}();
}

// Why CUDA cases cannot run here, or empty when they can.
std::string CudaUnavailableReason() {
#ifdef KUBEMOE_HAVE_CUDA
  std::string why;
  if (cuda::VisibleDeviceCount(&why) > 0) return "";
  return "no CUDA device (" + why + ")";
#else
  return "built without CUDA (no toolkit found)";
#endif
}

class CaseTest : public testing::Test {
 public:
  CaseTest(OpCase* op_case, bool cuda, uint64_t seed) : case_(op_case), cuda_(cuda), seed_(seed) {}

  void TestBody() override {
    if (cuda_) {
      static const std::string unavailable = CudaUnavailableReason();
      if (!unavailable.empty()) GTEST_SKIP() << unavailable;
    }
    Rng rng(seed_);
    for (int draw = 0; draw < kDrawsPerCase; ++draw) {
      case_->Draw(rng);
      const std::vector<Output> want = case_->Reference();
      StatusOr<std::vector<Output>> got = cuda_ ? RunCuda() : case_->RunCpu();
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      double worst = 0.0;
      const Status match = CompareOutputs(want, *got, &worst);
      ASSERT_TRUE(match.ok()) << "draw " << draw << " (seed " << seed_ << "): " << match.ToString();
      RecordProperty("draw" + std::to_string(draw) + "_error_over_bound", std::to_string(worst));
    }
  }

 private:
  StatusOr<std::vector<Output>> RunCuda() {
    KUBEMOE_RETURN_IF_ERROR(case_->CudaPrepare());
    KUBEMOE_RETURN_IF_ERROR(case_->CudaLaunch(nullptr));
    return case_->CudaResults();
  }

  OpCase* case_;
  bool cuda_;
  uint64_t seed_;
};

}  // namespace
}  // namespace kubemoe::kernel_ops

int main(int argc, char** argv) {
  using namespace kubemoe::kernel_ops;
  testing::InitGoogleTest(&argc, argv);
  static CaseList cases = MakeAllCases(Scale::kTest);
  const uint64_t base_seed = BaseSeed();
  std::cout << "kernel harness: " << cases.size() << " cases, KUBEMOE_KERNEL_SEED=" << base_seed
            << "\n";
  uint64_t index = 0;
  for (auto& op_case : cases) {
    OpCase* raw = op_case.get();
    const uint64_t seed = base_seed + 1000003 * index++;
    if (raw->HasCpuTwin()) {
      testing::RegisterTest("cpu", raw->Name().c_str(), nullptr, nullptr, __FILE__, __LINE__,
                            [=]() -> testing::Test* { return new CaseTest(raw, false, seed); });
    }
    testing::RegisterTest("cuda", raw->Name().c_str(), nullptr, nullptr, __FILE__, __LINE__,
                          [=]() -> testing::Test* { return new CaseTest(raw, true, seed); });
  }
  return RUN_ALL_TESTS();
}
