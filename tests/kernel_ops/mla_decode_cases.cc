// Cases for MLA decode attention in absorbed form (kernels/cuda/mla_decode.h): a batch of
// sequences of different lengths, each head's absorbed query against its sequence's bf16 latent
// rows [c_kv | k_pe]. The reference runs in float64 on the bf16 inputs; the cpu row is the
// engine's own cpu::Attention on f32 copies of them, as engine/mla.cc calls it for decode.
//
// Three CUDA variants per test shape: "tensor_core" (MlaDecode's first split kernel), "tc_v2"
// (MlaDecodeVariant::kTensorCoreV2, probabilities kept in registers) and "f32" (MlaDecodeF32, f32
// on CUDA cores), so a device run shows which one is wrong if they disagree. The bench shapes
// time both tensor-core variants side by side.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/attention.h"
#include "tests/kernel_ops/op_case.h"

#ifdef KUBEMOE_HAVE_CUDA
#include "kernels/cuda/mla_decode.h"
#include "kernels/cuda/runtime.h"
#endif

namespace kubemoe::kernel_ops {
namespace {

// Bounds on ||out - ref|| / ||ref||. The tensor-core kernel rounds the softmax probabilities to
// bf16 before P V (up to 2^-9 relative per weight); a host emulation of the kernel's fragments
// on these test shapes gave 0.7e-4 .. 3.7e-4 (tc_v2's: 1.4e-4 .. 3.7e-4), so 4e-3 keeps a 10x
// margin while a row dropped or doubled in each sequence (~1/sqrt(length) relative) or a wrong
// rescale lands above it.
// The f32 paths (CUDA cores, cpu::Attention) only reorder f32 sums over <= ~10^4 terms: ~1e-7.
constexpr double kTensorCoreBound = 4e-3;
constexpr double kF32Bound = 1e-5;

enum class Kernel { kTensorCore, kTensorCoreV2, kF32 };

#ifdef KUBEMOE_HAVE_CUDA
template <typename T>
Status Put(const std::vector<T>& host, cuda::DeviceBuffer& device) {
  StatusOr<cuda::DeviceBuffer> buffer = cuda::DeviceBuffer::Allocate(host.size() * sizeof(T));
  if (!buffer.ok()) return buffer.status();
  device = std::move(*buffer);
  return device.Upload(host.data(), device.bytes());
}

// All-ones bytes: NaN as f32, so an element nothing wrote fails the comparison.
Status Poisoned(size_t bytes, cuda::DeviceBuffer& device) {
  StatusOr<cuda::DeviceBuffer> buffer = cuda::DeviceBuffer::Allocate(bytes);
  if (!buffer.ok()) return buffer.status();
  device = std::move(*buffer);
  return device.Fill(0xFF);
}
#endif

struct Shape {
  std::string label;
  int32_t heads = 0;
  int32_t rank = 0;  // kv_lora_rank
  int32_t rope = 0;
  int32_t batch = 0;
  int32_t min_length = 1;  // lengths are drawn in [min_length, max_length]; the last sequence
  int32_t max_length = 1;  // always has max_length and, when short_first, the first has 1
  bool short_first = true;
  double logit_scale = 2.5;  // softmax_scale = logit_scale / sqrt(row): logits' spread ~ this
};

class MlaDecodeCase final : public OpCase {
 public:
  MlaDecodeCase(Kernel kernel, Shape shape) : kernel_(kernel), shape_(std::move(shape)) {
    row_ = shape_.rank + shape_.rope;
    scale_ = static_cast<float>(shape_.logit_scale / std::sqrt(static_cast<double>(row_)));
  }

  std::string Name() const override {
    const char* kernel = kernel_ == Kernel::kTensorCore     ? "tensor_core"
                         : kernel_ == Kernel::kTensorCoreV2 ? "tc_v2"
                                                            : "f32";
    return std::string("mla_decode/") + kernel + "/" + shape_.label;
  }

  void Draw(Rng& rng) override {
    const int32_t batch = shape_.batch;
    std::uniform_int_distribution<int32_t> length(shape_.min_length, shape_.max_length);
    lengths_.resize(batch);
    for (int32_t& n : lengths_) n = length(rng);
    if (shape_.short_first) lengths_.front() = 1;
    lengths_.back() = shape_.max_length;
    // Sequences lie in the cache in reverse order with two unrelated rows between them, so a
    // kernel that ignores row_start, or reads past a sequence's end, reads the wrong rows.
    row_start_.assign(batch, 0);
    int64_t rows = 0;
    for (int32_t b = batch - 1; b >= 0; --b) {
      row_start_[b] = rows + 2;
      rows += 2 + lengths_[b];
    }
    rows_ = rows + 2;
    q_ = UniformBf16(rng, static_cast<size_t>(batch) * shape_.heads * row_, -1.0f, 1.0f);
    cache_ = UniformBf16(rng, static_cast<size_t>(rows_) * row_, -1.0f, 1.0f);
  }

  std::vector<Output> Reference() override {
    const size_t out_size = static_cast<size_t>(shape_.batch) * shape_.heads * shape_.rank;
    std::vector<double> out(out_size);
    // Sequences are independent: spread them over the host's cores (the bench shapes are
    // ~70 GFLOP in float64).
    const int32_t workers =
        static_cast<int32_t>(std::clamp<unsigned>(std::thread::hardware_concurrency(), 1u, 16u));
    std::vector<std::thread> threads;
    for (int32_t w = 0; w < workers; ++w) {
      threads.emplace_back([this, w, workers, &out] {
        for (int32_t b = w; b < shape_.batch; b += workers) ReferenceSequence(b, out.data());
      });
    }
    for (std::thread& t : threads) t.join();
    return {Output{"out", Metric::kRelativeL2, Bound(), std::move(out)}};
  }

  StatusOr<std::vector<Output>> RunCpu() override {
    const size_t out_size = static_cast<size_t>(shape_.batch) * shape_.heads * shape_.rank;
    std::vector<float> out(out_size);
    std::vector<float> q(static_cast<size_t>(shape_.heads) * row_);
    for (int32_t b = 0; b < shape_.batch; ++b) {
      const int64_t n = lengths_[b];
      for (size_t i = 0; i < q.size(); ++i) q[i] = Bf16ToF32(q_[b * q.size() + i]);
      std::vector<float> rows(static_cast<size_t>(n) * row_);
      const uint16_t* src = cache_.data() + row_start_[b] * row_;
      for (size_t i = 0; i < rows.size(); ++i) rows[i] = Bf16ToF32(src[i]);
      const std::vector<int64_t> limits(shape_.heads, n);
      std::vector<float> scratch(static_cast<size_t>(cpu::AttentionScratchFloats(shape_.heads, n)));
      cpu::Attention(q.data(), row_, shape_.heads, limits.data(), rows.data(), row_, rows.data(),
                     row_, n, row_, shape_.rank, scale_,
                     out.data() + static_cast<size_t>(b) * shape_.heads * shape_.rank, shape_.rank,
                     scratch.data());
    }
    return std::vector<Output>{
        Output{"out", Metric::kRelativeL2, Bound(), ToDoubles(out.data(), out.size())}};
  }

#ifdef KUBEMOE_HAVE_CUDA
  Status CudaPrepare() override {
    KUBEMOE_RETURN_IF_ERROR(Put(q_, q_d_));
    KUBEMOE_RETURN_IF_ERROR(Put(cache_, cache_d_));
    KUBEMOE_RETURN_IF_ERROR(Put(row_start_, row_start_d_));
    KUBEMOE_RETURN_IF_ERROR(Put(lengths_, length_d_));
    const size_t out_bytes =
        static_cast<size_t>(shape_.batch) * shape_.heads * shape_.rank * sizeof(float);
    KUBEMOE_RETURN_IF_ERROR(Poisoned(out_bytes, out_d_));
    if (kernel_ != Kernel::kF32) {
      const size_t bytes =
          cuda::MlaDecodeWorkspaceBytes(KernelShape(), shape_.batch, shape_.max_length, Variant());
      if (bytes == 0) return InvalidArgument(Name() + ": shape rejected by MlaDecode");
      // Poisoned too: a combine that read a chunk the split kernel never wrote shows as NaN.
      KUBEMOE_RETURN_IF_ERROR(Poisoned(bytes, workspace_d_));
    }
    return Status::Ok();
  }

  Status CudaLaunch(CUstream_st* stream) override {
    if (kernel_ != Kernel::kF32) {
      return cuda::MlaDecode(KernelShape(), q_d_.as<uint16_t>(), cache_d_.as<uint16_t>(),
                             row_start_d_.as<int64_t>(), length_d_.as<int32_t>(), shape_.batch,
                             shape_.max_length, workspace_d_.data(), out_d_.as<float>(), stream,
                             Variant());
    }
    return cuda::MlaDecodeF32(KernelShape(), q_d_.as<uint16_t>(), cache_d_.as<uint16_t>(),
                              row_start_d_.as<int64_t>(), length_d_.as<int32_t>(), shape_.batch,
                              out_d_.as<float>(), stream);
  }

  StatusOr<std::vector<Output>> CudaResults() override {
    KUBEMOE_RETURN_IF_ERROR(cuda::SynchronizeDevice(Name().c_str()));
    std::vector<float> out(out_d_.bytes() / sizeof(float));
    KUBEMOE_RETURN_IF_ERROR(out_d_.Download(out.data(), out_d_.bytes()));
    return std::vector<Output>{
        Output{"out", Metric::kRelativeL2, Bound(), ToDoubles(out.data(), out.size())}};
  }
#endif

  // Each sequence's rows read once (the floor: 128 heads share them), the queries read, the
  // outputs written; per row and head, row MACs for the score and rank MACs for P V.
  Work work() const override {
    double positions = 0.0;
    for (int32_t n : lengths_) positions += n;
    if (lengths_.empty()) positions = shape_.batch * 0.5 * (shape_.min_length + shape_.max_length);
    const double heads = static_cast<double>(shape_.batch) * shape_.heads;
    Work w;
    w.bytes = positions * row_ * 2.0 + heads * row_ * 2.0 + heads * shape_.rank * 4.0;
    w.flops = positions * shape_.heads * 2.0 * (row_ + shape_.rank);
    return w;
  }

 private:
  double Bound() const { return kernel_ == Kernel::kF32 ? kF32Bound : kTensorCoreBound; }

#ifdef KUBEMOE_HAVE_CUDA
  cuda::MlaDecodeVariant Variant() const {
    return kernel_ == Kernel::kTensorCoreV2 ? cuda::MlaDecodeVariant::kTensorCoreV2
                                            : cuda::MlaDecodeVariant::kTensorCore;
  }
  cuda::MlaDecodeShape KernelShape() const {
    cuda::MlaDecodeShape s;
    s.num_heads = shape_.heads;
    s.kv_lora_rank = shape_.rank;
    s.rope_dim = shape_.rope;
    s.softmax_scale = scale_;
    return s;
  }
#endif

  // out[b, h, :] in float64, with a two-pass softmax.
  void ReferenceSequence(int32_t b, double* out) const {
    const int64_t n = lengths_[b];
    std::vector<double> rows(static_cast<size_t>(n) * row_);
    const uint16_t* src = cache_.data() + row_start_[b] * row_;
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = Bf16ToF32(src[i]);
    std::vector<double> q(row_);
    std::vector<double> weight(static_cast<size_t>(n));
    for (int32_t h = 0; h < shape_.heads; ++h) {
      const uint16_t* q_src = q_.data() + (static_cast<size_t>(b) * shape_.heads + h) * row_;
      for (int32_t d = 0; d < row_; ++d) q[d] = Bf16ToF32(q_src[d]);
      double top = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        const double* r = rows.data() + j * row_;
        double dot = 0.0;
        for (int32_t d = 0; d < row_; ++d) dot += q[d] * r[d];
        weight[j] = static_cast<double>(scale_) * dot;
        top = std::max(top, weight[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        weight[j] = std::exp(weight[j] - top);
        sum += weight[j];
      }
      double* o = out + (static_cast<size_t>(b) * shape_.heads + h) * shape_.rank;
      std::fill(o, o + shape_.rank, 0.0);
      for (int64_t j = 0; j < n; ++j) {
        const double* r = rows.data() + j * row_;
        const double w = weight[j] / sum;
        for (int32_t d = 0; d < shape_.rank; ++d) o[d] += w * r[d];
      }
    }
  }

  Kernel kernel_;
  Shape shape_;
  int32_t row_ = 0;
  float scale_ = 0.0f;
  std::vector<int32_t> lengths_;
  std::vector<int64_t> row_start_;
  int64_t rows_ = 0;
  std::vector<uint16_t> q_;      // [batch x heads x row]
  std::vector<uint16_t> cache_;  // [rows_ x row]
#ifdef KUBEMOE_HAVE_CUDA
  cuda::DeviceBuffer q_d_, cache_d_, row_start_d_, length_d_, out_d_, workspace_d_;
#endif
};

void AddMlaDecodeCases(Scale scale, CaseList& cases) {
  std::vector<Shape> shapes;
  if (scale == Scale::kTest) {
    // The tensor-core kernel's tiles: 64 heads, 32 rows, 16-column groups; splits of >= 512
    // rows. Each shape below misses some of them.
    shapes = {
        {"h3_r64_p16_b4", 3, 64, 16, 4, 1, 70},
        // 3 position splits for the longest sequence, a partial head tile of 20.
        {"h20_r128_p32_b5", 20, 128, 32, 5, 1, 1300},
        // rank 72: a half-used column group; row 88 padded to 96; sharp softmax.
        {"h4_r72_p16_b3", 4, 72, 16, 3, 1, 45, true, 8.0},
        // 66 heads: a second head tile with 2 heads; row 72 padded to 80; 2 splits.
        {"h66_r64_p8_b3", 66, 64, 8, 3, 1, 600},
        // DeepSeek-V2's row (512 + 64): every warp's four column groups.
        {"h16_r512_p64_b3", 16, 512, 64, 3, 1, 100},
    };
  } else {
    // DeepSeek-V2 decode (bench/RESULTS.md): 128 heads, kv_lora_rank 512, rope 64, and its
    // softmax_scale 1 / sqrt(q_head_dim = 192) (logit_scale sqrt(576 / 192)).
    const double logit_scale = std::sqrt(576.0 / 192.0);
    shapes = {
        {"h128_r512_p64_b64", 128, 512, 64, 64, 1024, 8192, false, logit_scale},
        {"h128_r512_p64_b8", 128, 512, 64, 8, 1024, 8192, false, logit_scale},
    };
  }
  for (const Shape& shape : shapes) {
    cases.push_back(std::make_unique<MlaDecodeCase>(Kernel::kTensorCore, shape));
    cases.push_back(std::make_unique<MlaDecodeCase>(Kernel::kTensorCoreV2, shape));
    // The f32 kernel re-reads every row once per head: a cross-check, timed only at test sizes.
    if (scale == Scale::kTest)
      cases.push_back(std::make_unique<MlaDecodeCase>(Kernel::kF32, shape));
  }
}

const bool kRegistered = RegisterCases("mla_decode", AddMlaDecodeCases);

}  // namespace
}  // namespace kubemoe::kernel_ops
