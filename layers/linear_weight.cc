#include "layers/linear_weight.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/weight_matmul.h"
#include "layers/ffn.h"

namespace kubemoe::layers {
namespace {

// Drops the whole pages of `bytes` from this process's resident set: they are file-backed and
// unmodified, so a later read would fault them in again from the file.
void ReleaseMappedPages(std::span<const uint8_t> bytes) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(bytes.data());
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t last = (begin + bytes.size()) / page * page;
  if (last > first) {
    // Advisory: on failure the pages just stay resident.
    (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  }
}

// An aligned, owned copy of `bytes` as elements of T.
template <typename T>
std::shared_ptr<const std::vector<T>> AlignedCopy(std::span<const uint8_t> bytes) {
  auto copy = std::make_shared<std::vector<T>>(bytes.size() / sizeof(T));
  std::memcpy(copy->data(), bytes.data(), copy->size() * sizeof(T));
  return copy;
}

bool AlignedFor(const void* p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

StatusOr<LinearWeight> QuantizedLinear(const TensorInfo& info, std::span<const uint8_t> bytes,
                                       int64_t rows, int64_t cols, const std::string& name) {
  StatusOr<cpu::Q8_0Matrix> q = [&]() -> StatusOr<cpu::Q8_0Matrix> {
    if (info.dtype == DType::kBF16 && AlignedFor(bytes.data(), 2)) {
      return cpu::QuantizeQ8_0Bf16(reinterpret_cast<const uint16_t*>(bytes.data()), rows, cols);
    }
    // One f32 copy of this tensor at a time; freed once quantized.
    std::vector<float> f32(static_cast<size_t>(rows * cols));
    if (info.dtype == DType::kBF16) {
      cpu::Bf16ToF32(AlignedCopy<uint16_t>(bytes)->data(), f32.data(), f32.size());
    } else if (info.dtype == DType::kF16) {
      cpu::F16ToF32(AlignedCopy<uint16_t>(bytes)->data(), f32.data(), f32.size());
    } else {
      std::memcpy(f32.data(), bytes.data(), f32.size() * sizeof(float));
    }
    return cpu::QuantizeQ8_0(f32.data(), rows, cols);
  }();
  if (!q.ok()) return Status(q.status().code(), name + ": " + q.status().message());
  ReleaseMappedPages(bytes);
  return LinearWeight::FromQ8_0(std::move(*q));
}

}  // namespace

const char* WeightDTypeName(WeightDType dtype) {
  return dtype == WeightDType::kQ8_0 ? "q8_0" : "as-stored";
}

StatusOr<WeightDType> ParseWeightDType(const std::string& name) {
  if (name == "as-stored" || name == "bf16") return WeightDType::kAsStored;
  if (name == "q8_0") return WeightDType::kQ8_0;
  return InvalidArgument("unknown weight dtype \"" + name +
                         "\" (accepted: as-stored, bf16 (= as-stored), q8_0)");
}

LinearWeight LinearWeight::FromF32(std::vector<float> w, int64_t rows, int64_t cols) {
  auto owned = std::make_shared<const std::vector<float>>(std::move(w));
  return LinearWeight(cpu::WeightMatrix::F32(owned->data(), rows, cols), owned);
}

LinearWeight LinearWeight::FromQ8_0(cpu::Q8_0Matrix q) {
  auto owned = std::make_shared<const cpu::Q8_0Matrix>(std::move(q));
  return LinearWeight(owned->View(), owned);
}

LinearWeight LinearWeight::Rows(int64_t begin, int64_t end) const {
  cpu::WeightMatrix m = matrix_;
  m.rows = end - begin;
  const int64_t offset = begin * matrix_.cols;
  switch (matrix_.format) {
    case cpu::WeightFormat::kBf16:
      m.bf16 += offset;
      break;
    case cpu::WeightFormat::kF16:
      m.f16 += offset;
      break;
    case cpu::WeightFormat::kF32:
      m.f32 += offset;
      break;
    case cpu::WeightFormat::kQ8_0:
      m.quants += offset;
      m.scales += begin * (matrix_.cols / cpu::kQ8_0Block);
      break;
  }
  return LinearWeight(m, owner_);
}

std::vector<float> LinearWeight::ToF32() const {
  std::vector<float> out(static_cast<size_t>(rows() * cols()));
  cpu::WeightRowsToF32(matrix_, 0, rows(), out.data());
  return out;
}

StatusOr<LinearWeight> LoadLinear(const std::shared_ptr<const Checkpoint>& ckpt,
                                  const std::string& name, int64_t rows, int64_t cols,
                                  WeightDType dtype) {
  StatusOr<TensorInfo> info = CheckTensorShape(*ckpt, name, {rows, cols});
  if (!info.ok()) return info.status();
  StatusOr<std::span<const uint8_t>> bytes = ckpt->Tensor(name);
  if (!bytes.ok()) return bytes.status();
  if (dtype == WeightDType::kQ8_0 && cols % cpu::kQ8_0Block == 0) {
    return QuantizedLinear(*info, *bytes, rows, cols, name);
  }
  // In place, keeping the checkpoint (and so its mapping) alive.
  std::shared_ptr<const void> owner = ckpt;
  const uint8_t* p = bytes->data();
  if (!AlignedFor(p, DTypeSize(info->dtype))) {
    if (info->dtype == DType::kF32) {
      auto copy = AlignedCopy<float>(*bytes);
      return LinearWeight(cpu::WeightMatrix::F32(copy->data(), rows, cols), copy);
    }
    auto copy = AlignedCopy<uint16_t>(*bytes);
    owner = copy;
    p = reinterpret_cast<const uint8_t*>(copy->data());
  }
  switch (info->dtype) {
    case DType::kBF16:
      return LinearWeight(cpu::WeightMatrix::Bf16(reinterpret_cast<const uint16_t*>(p), rows, cols),
                          owner);
    case DType::kF16:
      return LinearWeight(cpu::WeightMatrix::F16(reinterpret_cast<const uint16_t*>(p), rows, cols),
                          owner);
    case DType::kF32:
      return LinearWeight(cpu::WeightMatrix::F32(reinterpret_cast<const float*>(p), rows, cols),
                          owner);
  }
  return Internal(name + ": unknown dtype");
}

}  // namespace kubemoe::layers
