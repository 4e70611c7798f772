// Harness cases for RoPE (kernels/cuda/rope.h; CPU twin cpu::RopeCosSin + cpu::ApplyRope) on
// buffers laid out as the engine's: rows of `ld` floats whose rope slice starts at `offset`
// (the query's heads: offset = qk_nope_head_dim, ld = q_head_dim, heads rows per token; the
// latent row: offset = kv_lora_rank, one row per token). Inverse frequencies come from
// cpu::RopeInvFreq, with DeepSeek-V2's YaRN settings in the yarn variants.
//
// The reference is float64 from the same fp32 angle, float(position) * inv_freq[i] (part of
// the op's definition, as in the original code). Inputs lie in [-1, 1], so with S = max(1,
// scale) each output's error is at most: 2 * 2 ulp from cosf/sinf (CUDA's bound; glibc's is
// 1 ulp), 2 * 1 ulp from scaling them, 3 roundings in the rotation, about 14 * 2^-24 * S =
// 8.3e-7 * S in all. The bound, max |error| <= 2e-6 * S, leaves a factor of 2.4.
// A second output counts the elements outside the rope slices that changed (exactly 0).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/rope.h"
#include "tests/kernel_ops/op_case.h"

#ifdef KUBEMOE_HAVE_CUDA
#include "kernels/cuda/rope.h"
#include "kernels/cuda/runtime.h"
#endif

namespace kubemoe::kernel_ops {
namespace {

constexpr double kBoundPerScale = 2e-6;
constexpr int64_t kMaxPosition = 163840;  // DeepSeek-V2's max_position_embeddings

enum class Freq {
  kPlain,       // base^(-2i/dim), scale 1
  kYarnV2,      // DeepSeek-V2: factor 40, mscale = mscale_all_dim = 0.707 (scale 1)
  kYarnScaled,  // factor 40, mscale 1, mscale_all_dim 0: scale 0.1 ln 40 + 1 = 1.369
};

struct RopeSpec {
  std::string variant;
  Freq freq = Freq::kPlain;
  int64_t tokens = 0;
  int64_t rows_per_token = 0;
  int64_t dim = 0;
  int64_t offset = 0;  // of the rope slice in its row
  int64_t ld = 0;      // row stride of the whole buffer
};

class RopeCase : public OpCase {
 public:
  explicit RopeCase(RopeSpec spec) : s_(std::move(spec)) {
    cpu::YarnParams yarn;
    yarn.factor = 40.0;
    yarn.original_max_position_embeddings = 4096;
    yarn.beta_fast = 32.0;
    yarn.beta_slow = 1.0;
    if (s_.freq == Freq::kYarnV2) {
      yarn.mscale = 0.707;
      yarn.mscale_all_dim = 0.707;
    } else {
      yarn.mscale = 1.0;
      yarn.mscale_all_dim = 0.0;
    }
    const cpu::YarnParams* y = s_.freq == Freq::kPlain ? nullptr : &yarn;
    inv_freq_.resize(static_cast<size_t>(s_.dim / 2));
    cpu::RopeInvFreq(s_.dim, 10000.0, y, inv_freq_.data());
    scale_ = static_cast<float>(cpu::RopeCosSinScale(y));
  }

  std::string Name() const override {
    return "rope/" + s_.variant + "/t" + std::to_string(s_.tokens) + "_h" +
           std::to_string(s_.rows_per_token) + "_d" + std::to_string(s_.dim) + "_ld" +
           std::to_string(s_.ld);
  }

  void Draw(Rng& rng) override {
    x_ = UniformFloats(rng, static_cast<size_t>(Rows() * s_.ld), -1.0f, 1.0f);
    positions_.resize(static_cast<size_t>(s_.tokens));
    std::uniform_int_distribution<int64_t> position(0, kMaxPosition - 1);
    for (int64_t& p : positions_) p = position(rng);
    positions_.front() = 0;
    if (s_.tokens > 1) positions_.back() = kMaxPosition - 1;
  }

  std::vector<Output> Reference() override {
    const int64_t half = s_.dim / 2;
    std::vector<double> rope(static_cast<size_t>(Rows() * s_.dim));
    for (int64_t t = 0; t < s_.tokens; ++t) {
      for (int64_t h = 0; h < s_.rows_per_token; ++h) {
        const int64_t r = t * s_.rows_per_token + h;
        const float* x = x_.data() + r * s_.ld + s_.offset;
        double* y = rope.data() + r * s_.dim;
        for (int64_t i = 0; i < half; ++i) {
          const float angle = static_cast<float>(positions_[static_cast<size_t>(t)]) * inv_freq_[i];
          const double c = std::cos(static_cast<double>(angle)) * scale_;
          const double s = std::sin(static_cast<double>(angle)) * scale_;
          const double a = x[2 * i];
          const double b = x[2 * i + 1];
          y[i] = a * c - b * s;
          y[i + half] = b * c + a * s;
        }
      }
    }
    return Outputs(std::move(rope), 0);
  }

  StatusOr<std::vector<Output>> RunCpu() override {
    const int64_t half = s_.dim / 2;
    std::vector<float> cos(static_cast<size_t>(s_.tokens * half));
    std::vector<float> sin(cos.size());
    cpu::RopeCosSin(positions_.data(), s_.tokens, inv_freq_.data(), half, scale_, cos.data(),
                    sin.data());
    std::vector<float> out = x_;
    for (int64_t t = 0; t < s_.tokens; ++t) {
      for (int64_t h = 0; h < s_.rows_per_token; ++h) {
        cpu::ApplyRope(out.data() + (t * s_.rows_per_token + h) * s_.ld + s_.offset, s_.dim,
                       cos.data() + t * half, sin.data() + t * half);
      }
    }
    return Collect(out);
  }

  Work work() const override {
    const double elements = static_cast<double>(Rows() * s_.dim);
    // Read and write each rotated element; 3 flops per element (two products and a sum).
    return {8.0 * elements + 8.0 * static_cast<double>(s_.tokens) + 2.0 * s_.dim, 3.0 * elements};
  }

#ifdef KUBEMOE_HAVE_CUDA
  Status CudaPrepare() override {
    StatusOr<cuda::DeviceBuffer> x = cuda::DeviceBuffer::Allocate(x_.size() * 4);
    StatusOr<cuda::DeviceBuffer> positions = cuda::DeviceBuffer::Allocate(positions_.size() * 8);
    StatusOr<cuda::DeviceBuffer> inv_freq = cuda::DeviceBuffer::Allocate(inv_freq_.size() * 4);
    for (auto* b : {&x, &positions, &inv_freq}) KUBEMOE_RETURN_IF_ERROR(b->status());
    x_d_ = std::move(*x);
    positions_d_ = std::move(*positions);
    inv_freq_d_ = std::move(*inv_freq);
    // In place, so nothing can be poisoned; but rotation and de-interleaving move nearly every
    // value (all but x[0] at position 0 with scale 1), so an element left unwritten shows.
    KUBEMOE_RETURN_IF_ERROR(x_d_.Upload(x_.data(), x_.size() * 4));
    KUBEMOE_RETURN_IF_ERROR(positions_d_.Upload(positions_.data(), positions_.size() * 8));
    return inv_freq_d_.Upload(inv_freq_.data(), inv_freq_.size() * 4);
  }

  Status CudaLaunch(CUstream_st* stream) override {
    return cuda::ApplyRope(x_d_.as<float>() + s_.offset, s_.ld, s_.tokens, s_.rows_per_token,
                           s_.dim, positions_d_.as<int64_t>(), inv_freq_d_.as<float>(), scale_,
                           stream);
  }

  StatusOr<std::vector<Output>> CudaResults() override {
    KUBEMOE_RETURN_IF_ERROR(cuda::SynchronizeDevice("rope"));
    std::vector<float> out(x_.size());
    KUBEMOE_RETURN_IF_ERROR(x_d_.Download(out.data(), out.size() * 4));
    return Collect(out);
  }
#endif

 private:
  int64_t Rows() const { return s_.tokens * s_.rows_per_token; }

  std::vector<Output> Outputs(std::vector<double> rope, int64_t changed) const {
    const double bound = kBoundPerScale * std::max(1.0, std::fabs(static_cast<double>(scale_)));
    return {{"rope", Metric::kMaxAbs, bound, std::move(rope)},
            {"others_changed", Metric::kExact, 0, {static_cast<double>(changed)}}};
  }

  // The rope slices, and the number of other elements whose bits differ from the input.
  std::vector<Output> Collect(const std::vector<float>& out) const {
    std::vector<double> rope;
    rope.reserve(static_cast<size_t>(Rows() * s_.dim));
    int64_t changed = 0;
    for (int64_t r = 0; r < Rows(); ++r) {
      for (int64_t j = 0; j < s_.ld; ++j) {
        const size_t k = static_cast<size_t>(r * s_.ld + j);
        if (j >= s_.offset && j < s_.offset + s_.dim) {
          rope.push_back(out[k]);
        } else if (std::memcmp(&out[k], &x_[k], sizeof(float)) != 0) {
          ++changed;
        }
      }
    }
    return Outputs(std::move(rope), changed);
  }

  RopeSpec s_;
  std::vector<float> inv_freq_;
  float scale_ = 1.0f;
  std::vector<float> x_;
  std::vector<int64_t> positions_;
#ifdef KUBEMOE_HAVE_CUDA
  cuda::DeviceBuffer x_d_, positions_d_, inv_freq_d_;
#endif
};

void AddRopeCases(Scale scale, CaseList& cases) {
  auto add = [&cases](std::string variant, Freq freq, int64_t tokens, int64_t rows_per_token,
                      int64_t dim, int64_t offset, int64_t ld) {
    cases.push_back(std::make_unique<RopeCase>(
        RopeSpec{std::move(variant), freq, tokens, rows_per_token, dim, offset, ld}));
  };
  if (scale == Scale::kBench) {
    // DeepSeek-V2 prefill of 4096 tokens: the queries' 128 heads (q_head_dim 192, rope at 128)
    // and the latent rows (576 wide, rope at 512).
    add("q_yarn", Freq::kYarnV2, 4096, 128, 64, 128, 192);
    add("kv_yarn", Freq::kYarnV2, 4096, 1, 64, 512, 576);
    return;
  }
  add("plain", Freq::kPlain, 1, 1, 2, 0, 2);
  add("plain", Freq::kPlain, 5, 3, 6, 5, 11);  // odd half, odd offset and stride
  add("kv_yarn", Freq::kYarnV2, 37, 1, 64, 16, 80);
  add("q_yarn", Freq::kYarnV2, 19, 7, 64, 32, 96);
  add("q_yarn", Freq::kYarnV2, 4, 128, 64, 128, 192);  // 8 rows per pass, 16 passes
  add("q_yarn_scaled", Freq::kYarnScaled, 13, 16, 64, 0, 64);
  add("wide", Freq::kPlain, 3, 2, 1024, 7, 1040);       // half 512: one row per pass
  add("wide", Freq::kYarnScaled, 2, 3, 2048, 0, 2048);  // the largest dim
}

const bool kRegistered = RegisterCases("rope", AddRopeCases);

}  // namespace
}  // namespace kubemoe::kernel_ops
