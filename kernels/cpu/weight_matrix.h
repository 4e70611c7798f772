// A read-only view of a Linear weight as the CPU weight-streaming kernels (weight_matmul.h) read
// it: bf16 exactly as a checkpoint stores it, or Q8_0 blocks made at load time (q8_0.h). The view
// owns nothing; the bytes may live in an mmapped checkpoint.
#pragma once

#include <cstdint>

namespace kubemoe::cpu {

// Q8_0 groups each row into blocks of this many consecutive weights sharing one scale.
inline constexpr int64_t kQ8_0Block = 32;

enum class WeightFormat {
  kBf16,  // uint16_t bf16 bits, row-major [rows x cols], row stride = cols
  kQ8_0,  // int8 quants row-major [rows x cols] and f32 scales row-major [rows x cols/32];
          // weight (r, c) = quants[r*cols + c] * scales[r*(cols/32) + c/32]. cols % 32 == 0.
};

// Hugging Face Linear layout: rows = out_features (N), cols = in_features (K), so the product
// is y = x * W^T. No alignment is required of any pointer.
struct WeightMatrix {
  WeightFormat format = WeightFormat::kBf16;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint16_t* bf16 = nullptr;  // kBf16 only
  const int8_t* quants = nullptr;  // kQ8_0 only
  const float* scales = nullptr;   // kQ8_0 only

  static WeightMatrix Bf16(const uint16_t* w, int64_t rows, int64_t cols) {
    WeightMatrix m;
    m.format = WeightFormat::kBf16;
    m.rows = rows;
    m.cols = cols;
    m.bf16 = w;
    return m;
  }

  // Bytes a full pass over the weight reads (what bounds a decode step).
  int64_t Bytes() const {
    return format == WeightFormat::kBf16 ? rows * cols * 2
                                         : rows * cols + rows * (cols / kQ8_0Block) * 4;
  }
};

}  // namespace kubemoe::cpu
