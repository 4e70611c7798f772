// Host-side argument checks of the small CUDA ops (rmsnorm, rope, embedding, sampling): each bad
// argument is rejected with InvalidArgument naming it, before anything reaches the device, so
// these run without a GPU. The kernels themselves are tested by the harness (kernel_ops_test).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#ifdef KUBEMOE_HAVE_CUDA
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/sampling.h"
#endif

namespace kubemoe {
namespace {

#ifdef KUBEMOE_HAVE_CUDA

// Never dereferenced: every call below fails its checks first, or has nothing to do.
template <typename T>
T* Fake(uintptr_t address = 0x10000) {
  return reinterpret_cast<T*>(address);
}

void ExpectRejected(const Status& s, const std::string& field) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find(field), std::string::npos) << s.ToString();
}

TEST(CudaSmallOpsArgs, RmsNorm) {
  const float* in = Fake<const float>(0x10000);
  const float* w = Fake<const float>(0x20000);
  float* out = Fake<float>(0x30000);
  ExpectRejected(cuda::RmsNorm(in, 8, -1, 8, w, 1e-6f, out, 8, nullptr), "rows");
  ExpectRejected(cuda::RmsNorm(in, 8, 2, 0, w, 1e-6f, out, 8, nullptr), "dim");
  ExpectRejected(cuda::RmsNorm(in, 7, 2, 8, w, 1e-6f, out, 8, nullptr), "ld_in");
  ExpectRejected(cuda::RmsNorm(in, 8, 2, 8, w, 1e-6f, out, 7, nullptr), "ld_out");
  ExpectRejected(cuda::RmsNorm(in, 8, 2, 8, w, -1.0f, out, 8, nullptr), "eps");
  ExpectRejected(cuda::RmsNorm(nullptr, 8, 2, 8, w, 1e-6f, out, 8, nullptr), "in is null");
  ExpectRejected(cuda::RmsNorm(in, 8, 2, 8, nullptr, 1e-6f, out, 8, nullptr), "weight");
  ExpectRejected(cuda::RmsNorm(in, 8, 2, 8, w, 1e-6f, nullptr, 8, nullptr), "out is null");
  // In place needs equal strides; partly overlapping arrays are refused.
  ExpectRejected(cuda::RmsNorm(in, 8, 2, 8, w, 1e-6f, const_cast<float*>(in), 9, nullptr),
                 "in-place");
  ExpectRejected(cuda::RmsNorm(in, 8, 2, 8, w, 1e-6f, const_cast<float*>(in) + 4, 8, nullptr),
                 "overlap");
  ExpectRejected(
      cuda::RmsNormBf16In(Fake<const uint16_t>(0x30000), 8, 2, 8, w, 1e-6f, out, 8, nullptr),
      "in-place");
  EXPECT_TRUE(cuda::RmsNorm(in, 8, 0, 8, w, 1e-6f, out, 8, nullptr).ok());  // nothing to do
}

TEST(CudaSmallOpsArgs, EmbedBf16) {
  const uint16_t* table = Fake<const uint16_t>(0x10000);
  const int32_t* ids = Fake<const int32_t>(0x20000);
  float* out = Fake<float>(0x30000);
  ExpectRejected(cuda::EmbedBf16(table, 0, 8, ids, 2, out, 8, nullptr, nullptr), "vocab");
  ExpectRejected(cuda::EmbedBf16(table, 4, 0, ids, 2, out, 8, nullptr, nullptr), "hidden");
  ExpectRejected(cuda::EmbedBf16(table, 4, 8, ids, -1, out, 8, nullptr, nullptr), "tokens");
  ExpectRejected(cuda::EmbedBf16(table, 4, 8, ids, 2, out, 7, nullptr, nullptr), "ld_out");
  ExpectRejected(cuda::EmbedBf16(nullptr, 4, 8, ids, 2, out, 8, nullptr, nullptr), "table");
  ExpectRejected(cuda::EmbedBf16(table, 4, 8, nullptr, 2, out, 8, nullptr, nullptr), "ids");
  ExpectRejected(cuda::EmbedBf16(table, 4, 8, ids, 2, nullptr, 8, nullptr, nullptr), "out");
  ExpectRejected(cuda::EmbedBf16(table, 4, 8, ids, 2, Fake<float>(0x10010), 8, nullptr, nullptr),
                 "overlap");
  EXPECT_TRUE(cuda::EmbedBf16(table, 4, 8, ids, 0, out, 8, nullptr, nullptr).ok());
}

TEST(CudaSmallOpsArgs, ApplyRope) {
  float* x = Fake<float>(0x10000);
  const int64_t* pos = Fake<const int64_t>(0x20000);
  const float* freq = Fake<const float>(0x30000);
  ExpectRejected(cuda::ApplyRope(x, 64, 2, 1, 63, pos, freq, 1.0f, nullptr), "dim");
  ExpectRejected(cuda::ApplyRope(x, 4096, 2, 1, 4096, pos, freq, 1.0f, nullptr), "dim");
  ExpectRejected(cuda::ApplyRope(x, 63, 2, 1, 64, pos, freq, 1.0f, nullptr), "ld");
  ExpectRejected(cuda::ApplyRope(x, 64, -1, 1, 64, pos, freq, 1.0f, nullptr), "tokens");
  ExpectRejected(cuda::ApplyRope(x, 64, 2, 0, 64, pos, freq, 1.0f, nullptr), "rows_per_token");
  ExpectRejected(
      cuda::ApplyRope(x, 64, 2, 1, 64, pos, freq, std::numeric_limits<float>::infinity(), nullptr),
      "scale");
  ExpectRejected(cuda::ApplyRope(nullptr, 64, 2, 1, 64, pos, freq, 1.0f, nullptr), "x is null");
  ExpectRejected(cuda::ApplyRope(x, 64, 2, 1, 64, nullptr, freq, 1.0f, nullptr), "positions");
  ExpectRejected(cuda::ApplyRope(x, 64, 2, 1, 64, pos, nullptr, 1.0f, nullptr), "inv_freq");
  ExpectRejected(
      cuda::ApplyRope(x, 64, 2, 1, 64, Fake<const int64_t>(0x10008), freq, 1.0f, nullptr),
      "overlap");
  EXPECT_TRUE(cuda::ApplyRope(x, 64, 0, 1, 64, pos, freq, 1.0f, nullptr).ok());
}

TEST(CudaSmallOpsArgs, SampleTokens) {
  const float* logits = Fake<const float>(0x10000);
  const cuda::SamplingRow* params = Fake<const cuda::SamplingRow>(0x20000);
  int32_t* ids = Fake<int32_t>(0x30000);
  void* ws = Fake<void>(0x40000);
  ExpectRejected(cuda::SampleTokens(logits, 8, -1, 8, params, ids, ws, 1 << 20, nullptr), "rows");
  ExpectRejected(cuda::SampleTokens(logits, 8, 2, 0, params, ids, ws, 1 << 20, nullptr), "vocab");
  ExpectRejected(
      cuda::SampleTokens(logits, 102400, 32768, 102400, params, ids, ws, 1 << 20, nullptr),
      "rows * vocab");
  ExpectRejected(cuda::SampleTokens(logits, 7, 2, 8, params, ids, ws, 1 << 20, nullptr), "ld");
  ExpectRejected(cuda::SampleTokens(nullptr, 8, 2, 8, params, ids, ws, 1 << 20, nullptr),
                 "logits is null");
  ExpectRejected(cuda::SampleTokens(logits, 8, 2, 8, nullptr, ids, ws, 1 << 20, nullptr),
                 "params is null");
  ExpectRejected(cuda::SampleTokens(logits, 8, 2, 8, params, nullptr, ws, 1 << 20, nullptr),
                 "out_ids is null");
  ExpectRejected(cuda::SampleTokens(logits, 8, 2, 8, params, ids, nullptr, 1 << 20, nullptr),
                 "workspace is null");
  EXPECT_TRUE(cuda::SampleTokens(logits, 8, 0, 8, params, ids, ws, 0, nullptr).ok());
}

TEST(CudaSmallOpsArgs, ArgmaxRows) {
  const float* logits = Fake<const float>(0x10000);
  int32_t* ids = Fake<int32_t>(0x30000);
  ExpectRejected(cuda::ArgmaxRows(logits, 8, -1, 8, ids, nullptr), "rows");
  ExpectRejected(cuda::ArgmaxRows(logits, 8, 2, 0, ids, nullptr), "vocab");
  ExpectRejected(cuda::ArgmaxRows(logits, 7, 2, 8, ids, nullptr), "ld");
  ExpectRejected(cuda::ArgmaxRows(nullptr, 8, 2, 8, ids, nullptr), "logits is null");
  ExpectRejected(cuda::ArgmaxRows(logits, 8, 2, 8, nullptr, nullptr), "out_ids is null");
  EXPECT_TRUE(cuda::ArgmaxRows(logits, 8, 0, 8, ids, nullptr).ok());
}

#else

TEST(CudaSmallOpsArgs, NeedsTheToolkit) { GTEST_SKIP() << "built without CUDA"; }

#endif

}  // namespace
}  // namespace kubemoe
