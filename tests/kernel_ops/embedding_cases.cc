// Harness cases for the token embedding lookup (kernels/cuda/embedding.h; CPU twin
// cpu::EmbedBf16). A gather with an exact widening, so every output is compared exactly: the
// rows, the count of out-of-range ids (whose rows must be NaN), and the untouched elements
// between rows (still the NaN poison). The table holds raw bf16 bit patterns of every kind but
// NaN: zeros of both signs, subnormals, infinities.
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/embedding.h"
#include "tests/kernel_ops/op_case.h"

#ifdef KUBEMOE_HAVE_CUDA
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/runtime.h"
#endif

namespace kubemoe::kernel_ops {
namespace {

struct EmbeddingSpec {
  int64_t tokens = 0;
  int64_t vocab = 0;
  int64_t hidden = 0;
  int64_t ld_out = 0;
  bool bad_ids = false;  // also draw ids outside [0, vocab)
};

class EmbeddingCase : public OpCase {
 public:
  explicit EmbeddingCase(EmbeddingSpec spec) : s_(spec) {}

  std::string Name() const override {
    std::string name = std::string("embedding/") + (s_.bad_ids ? "bad_ids" : "bf16") + "/t" +
                       std::to_string(s_.tokens) + "_v" + std::to_string(s_.vocab) + "_h" +
                       std::to_string(s_.hidden);
    if (s_.ld_out != s_.hidden) name += "_ldo" + std::to_string(s_.ld_out);
    return name;
  }

  void Draw(Rng& rng) override {
    // The bench table is 1 GiB: fill it from a cheap generator seeded by rng (splitmix64).
    table_.resize(static_cast<size_t>(s_.vocab * s_.hidden));
    uint64_t state = rng();
    for (size_t i = 0; i < table_.size(); i += 4) {
      state += 0x9E3779B97F4A7C15ull;
      uint64_t z = state;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      for (size_t k = 0; k < 4 && i + k < table_.size(); ++k) {
        auto bits = static_cast<uint16_t>(z >> (16 * k));
        if ((bits & 0x7F80) == 0x7F80 && (bits & 0x007F) != 0) bits &= 0xFF80;  // NaN -> inf
        table_[i + k] = bits;
      }
    }
    ids_.resize(static_cast<size_t>(s_.tokens));
    std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(s_.vocab - 1));
    for (int32_t& v : ids_) v = id(rng);
    if (s_.bad_ids) {
      const int32_t bad[] = {-1, static_cast<int32_t>(s_.vocab),
                             std::numeric_limits<int32_t>::max(),
                             std::numeric_limits<int32_t>::min()};
      std::uniform_int_distribution<size_t> pick(0, 3);
      // About one token in six, and always the first and the last.
      std::bernoulli_distribution flip(1.0 / 6.0);
      for (size_t t = 0; t < ids_.size(); ++t) {
        if (t == 0 || t + 1 == ids_.size() || flip(rng)) ids_[t] = bad[pick(rng)];
      }
    }
  }

  std::vector<Output> Reference() override {
    std::vector<double> rows;
    rows.reserve(static_cast<size_t>(s_.tokens * s_.hidden));
    int64_t bad = 0;
    for (int32_t id : ids_) {
      const bool out_of_range = id < 0 || id >= s_.vocab;
      bad += out_of_range ? 1 : 0;
      for (int64_t j = 0; j < s_.hidden; ++j) {
        rows.push_back(out_of_range ? std::numeric_limits<double>::quiet_NaN()
                                    : Bf16ToF32(table_[static_cast<size_t>(id * s_.hidden + j)]));
      }
    }
    return Outputs(std::move(rows), bad,
                   std::vector<double>(static_cast<size_t>(s_.tokens * (s_.ld_out - s_.hidden)),
                                       std::numeric_limits<double>::quiet_NaN()));
  }

  StatusOr<std::vector<Output>> RunCpu() override {
    std::vector<float> out(static_cast<size_t>(s_.tokens * s_.ld_out),
                           std::numeric_limits<float>::quiet_NaN());
    const int64_t bad = cpu::EmbedBf16(table_.data(), s_.vocab, s_.hidden, ids_.data(), s_.tokens,
                                       out.data(), s_.ld_out);
    return Collect(out, bad);
  }

  Work work() const override {
    const double elements = static_cast<double>(s_.tokens * s_.hidden);
    return {elements * (2.0 + 4.0) + 4.0 * static_cast<double>(s_.tokens), 0.0};
  }

#ifdef KUBEMOE_HAVE_CUDA
  Status CudaPrepare() override {
    StatusOr<cuda::DeviceBuffer> table = cuda::DeviceBuffer::Allocate(table_.size() * 2);
    StatusOr<cuda::DeviceBuffer> ids = cuda::DeviceBuffer::Allocate(ids_.size() * 4);
    StatusOr<cuda::DeviceBuffer> out =
        cuda::DeviceBuffer::Allocate(static_cast<size_t>(s_.tokens * s_.ld_out) * 4);
    StatusOr<cuda::DeviceBuffer> bad = cuda::DeviceBuffer::Allocate(4);
    for (auto* b : {&table, &ids, &out, &bad}) KUBEMOE_RETURN_IF_ERROR(b->status());
    table_d_ = std::move(*table);
    ids_d_ = std::move(*ids);
    out_d_ = std::move(*out);
    bad_d_ = std::move(*bad);
    KUBEMOE_RETURN_IF_ERROR(table_d_.Upload(table_.data(), table_.size() * 2));
    KUBEMOE_RETURN_IF_ERROR(ids_d_.Upload(ids_.data(), ids_.size() * 4));
    KUBEMOE_RETURN_IF_ERROR(out_d_.Fill(0xFF));
    return bad_d_.Fill(0);
  }

  Status CudaLaunch(CUstream_st* stream) override {
    return cuda::EmbedBf16(table_d_.as<uint16_t>(), s_.vocab, s_.hidden, ids_d_.as<int32_t>(),
                           s_.tokens, out_d_.as<float>(), s_.ld_out, bad_d_.as<int32_t>(), stream);
  }

  StatusOr<std::vector<Output>> CudaResults() override {
    KUBEMOE_RETURN_IF_ERROR(cuda::SynchronizeDevice("embedding"));
    std::vector<float> out(static_cast<size_t>(s_.tokens * s_.ld_out));
    int32_t bad = 0;
    KUBEMOE_RETURN_IF_ERROR(out_d_.Download(out.data(), out.size() * 4));
    KUBEMOE_RETURN_IF_ERROR(bad_d_.Download(&bad, 4));
    return Collect(out, bad);
  }
#endif

 private:
  std::vector<Output> Outputs(std::vector<double> rows, int64_t bad,
                              std::vector<double> padding) const {
    std::vector<Output> outputs = {{"out", Metric::kExact, 0, std::move(rows)},
                                   {"bad_ids", Metric::kExact, 0, {static_cast<double>(bad)}}};
    if (s_.ld_out > s_.hidden)
      outputs.push_back({"padding", Metric::kExact, 0, std::move(padding)});
    return outputs;
  }

  std::vector<Output> Collect(const std::vector<float>& out, int64_t bad) const {
    std::vector<double> rows;
    std::vector<double> pad;
    for (int64_t t = 0; t < s_.tokens; ++t) {
      for (int64_t j = 0; j < s_.ld_out; ++j) {
        (j < s_.hidden ? rows : pad).push_back(out[static_cast<size_t>(t * s_.ld_out + j)]);
      }
    }
    return Outputs(std::move(rows), bad, std::move(pad));
  }

  EmbeddingSpec s_;
  std::vector<uint16_t> table_;
  std::vector<int32_t> ids_;
#ifdef KUBEMOE_HAVE_CUDA
  cuda::DeviceBuffer table_d_, ids_d_, out_d_, bad_d_;
#endif
};

void AddEmbeddingCases(Scale scale, CaseList& cases) {
  auto add = [&cases](int64_t tokens, int64_t vocab, int64_t hidden, int64_t ld_out, bool bad) {
    cases.push_back(
        std::make_unique<EmbeddingCase>(EmbeddingSpec{tokens, vocab, hidden, ld_out, bad}));
  };
  if (scale == Scale::kBench) {
    add(4096, 102400, 5120, 5120, false);  // DeepSeek-V2 prefill
    add(256, 102400, 5120, 5120, false);   // a decode batch
    return;
  }
  add(1, 1, 1, 1, false);
  add(37, 1000, 67, 67, false);    // scalar path
  add(64, 4096, 512, 512, false);  // vector path
  add(9, 50, 5120, 5124, false);   // vector path, strided output
  add(21, 300, 40, 43, true);      // scalar path with bad ids
  add(19, 70, 1536, 1536, true);   // vector path with bad ids
}

const bool kRegistered = RegisterCases("embedding", AddEmbeddingCases);

}  // namespace
}  // namespace kubemoe::kernel_ops
