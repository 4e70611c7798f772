#include "kernels/cpu/q8_0.h"

#include <cmath>
#include <string>

#include "kernels/cpu/convert.h"

namespace kubemoe::cpu {
namespace {

Status CheckShape(int64_t rows, int64_t cols) {
  if (rows < 0 || cols <= 0 || cols % kQ8_0Block != 0) {
    return InvalidArgument("Q8_0 needs a row length that is a positive multiple of " +
                           std::to_string(kQ8_0Block) + "; got a [" + std::to_string(rows) + " x " +
                           std::to_string(cols) + "] weight");
  }
  return Status::Ok();
}

// Quantizes one row of cols f32 weights into q and its cols/32 scales.
Status QuantizeRow(const float* w, int64_t cols, int8_t* q, float* scales) {
  for (int64_t b = 0; b < cols / kQ8_0Block; ++b) {
    const float* wb = w + b * kQ8_0Block;
    float amax = 0.0f;
    for (int64_t i = 0; i < kQ8_0Block; ++i) {
      if (!std::isfinite(wb[i])) return InvalidArgument("Q8_0: weight is not finite");
      amax = std::fmax(amax, std::fabs(wb[i]));
    }
    const float scale = amax / 127.0f;
    // Dividing by the stored scale (not multiplying by 127/amax) keeps q*scale nearest to w.
    for (int64_t i = 0; i < kQ8_0Block; ++i) {
      const float r = scale == 0.0f ? 0.0f : std::nearbyint(wb[i] / scale);
      q[b * kQ8_0Block + i] = static_cast<int8_t>(std::fmax(-127.0f, std::fmin(127.0f, r)));
    }
    scales[b] = scale;
  }
  return Status::Ok();
}

Q8_0Matrix Allocate(int64_t rows, int64_t cols) {
  Q8_0Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.quants.resize(static_cast<size_t>(rows * cols));
  m.scales.resize(static_cast<size_t>(rows * (cols / kQ8_0Block)));
  return m;
}

}  // namespace

StatusOr<Q8_0Matrix> QuantizeQ8_0(const float* w, int64_t rows, int64_t cols) {
  if (Status s = CheckShape(rows, cols); !s.ok()) return s;
  Q8_0Matrix m = Allocate(rows, cols);
  const int64_t blocks = cols / kQ8_0Block;
  for (int64_t r = 0; r < rows; ++r) {
    Status s =
        QuantizeRow(w + r * cols, cols, m.quants.data() + r * cols, m.scales.data() + r * blocks);
    if (!s.ok()) return s;
  }
  return m;
}

StatusOr<Q8_0Matrix> QuantizeQ8_0Bf16(const uint16_t* w, int64_t rows, int64_t cols) {
  if (Status s = CheckShape(rows, cols); !s.ok()) return s;
  Q8_0Matrix m = Allocate(rows, cols);
  const int64_t blocks = cols / kQ8_0Block;
  std::vector<float> row(static_cast<size_t>(cols));  // one widened row at a time, not the matrix
  for (int64_t r = 0; r < rows; ++r) {
    Bf16ToF32(w + r * cols, row.data(), static_cast<size_t>(cols));
    Status s =
        QuantizeRow(row.data(), cols, m.quants.data() + r * cols, m.scales.data() + r * blocks);
    if (!s.ok()) return s;
  }
  return m;
}

void DequantizeQ8_0(const Q8_0Matrix& q, float* out) {
  const int64_t blocks = q.cols / kQ8_0Block;
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      out[r * q.cols + c] = static_cast<float>(q.quants[static_cast<size_t>(r * q.cols + c)]) *
                            q.scales[static_cast<size_t>(r * blocks + c / kQ8_0Block)];
    }
  }
}

}  // namespace kubemoe::cpu
