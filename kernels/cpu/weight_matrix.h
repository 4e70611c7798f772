// A read-only view of a Linear weight as the CPU weight-streaming kernels (weight_matmul.h) read
// it: f32, f16 or bf16 exactly as a checkpoint stores it, or Q8_0 blocks made at load time
// (q8_0.h). The view owns nothing; the bytes may live in an mmapped checkpoint.
#pragma once

#include <cstdint>

namespace kubemoe::cpu {

// Q8_0 groups each row into blocks of this many consecutive weights sharing one scale.
inline constexpr int64_t kQ8_0Block = 32;

enum class WeightFormat {
  kBf16,  // uint16_t bf16 bits, row-major [rows x cols], row stride = cols
  kQ8_0,  // int8 quants row-major [rows x cols] and f32 scales row-major [rows x cols/32];
          // weight (r, c) = quants[r*cols + c] * scales[r*(cols/32) + c/32]. cols % 32 == 0.
  kF32,   // float, row-major [rows x cols], row stride = cols
  kF16,   // uint16_t IEEE 754 binary16 bits, row-major [rows x cols], row stride = cols
};

// Hugging Face Linear layout: rows = out_features (N), cols = in_features (K), so the product
// is y = x * W^T. No alignment is required of any pointer. Only the pointer(s) of `format` are
// read; the others stay null.
struct WeightMatrix {
  WeightFormat format = WeightFormat::kBf16;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint16_t* bf16 = nullptr;  // kBf16 only
  const int8_t* quants = nullptr;  // kQ8_0 only
  const float* scales = nullptr;   // kQ8_0 only
  const float* f32 = nullptr;      // kF32 only
  const uint16_t* f16 = nullptr;   // kF16 only

  // A view of this format and shape with no data yet; the factories below fill in the pointer.
  static WeightMatrix Shape(WeightFormat format, int64_t rows, int64_t cols) {
    WeightMatrix m;
    m.format = format;
    m.rows = rows;
    m.cols = cols;
    return m;
  }
  static WeightMatrix Bf16(const uint16_t* w, int64_t rows, int64_t cols) {
    WeightMatrix m = Shape(WeightFormat::kBf16, rows, cols);
    m.bf16 = w;
    return m;
  }
  static WeightMatrix F32(const float* w, int64_t rows, int64_t cols) {
    WeightMatrix m = Shape(WeightFormat::kF32, rows, cols);
    m.f32 = w;
    return m;
  }
  static WeightMatrix F16(const uint16_t* w, int64_t rows, int64_t cols) {
    WeightMatrix m = Shape(WeightFormat::kF16, rows, cols);
    m.f16 = w;
    return m;
  }

  // Bytes a full pass over the weight reads (what bounds a decode step).
  int64_t Bytes() const {
    switch (format) {
      case WeightFormat::kF32:
        return rows * cols * 4;
      case WeightFormat::kBf16:
      case WeightFormat::kF16:
        return rows * cols * 2;
      case WeightFormat::kQ8_0:
        return rows * cols + rows * (cols / kQ8_0Block) * 4;
    }
    return 0;
  }
};

}  // namespace kubemoe::cpu
