// A Linear weight ([out_features x in_features], y = x * W^T) as the CPU engine keeps it: the
// checkpoint's own bytes (bf16, f16 or f32, read in place from the mapped file) or Q8_0 blocks
// made at load time, together with whatever keeps those bytes alive. Copies share the bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/cpu/q8_0.h"
#include "kernels/cpu/weight_matrix.h"
#include "model/checkpoint.h"

namespace kubemoe::layers {

// How the engine stores the weights it may convert (see LoadLinear).
enum class WeightDType {
  kAsStored,  // the checkpoint's dtype, read in place: nothing converted
  kQ8_0,      // Q8_0 blocks (kernels/cpu/q8_0.h): 1.125 bytes per weight
};
// "as-stored" / "q8_0".
const char* WeightDTypeName(WeightDType dtype);
// Parses a --weight-dtype value ("bf16" and "as-stored" both mean kAsStored). InvalidArgument
// names the accepted values.
StatusOr<WeightDType> ParseWeightDType(const std::string& name);

class LinearWeight {
 public:
  LinearWeight() = default;
  // A view whose bytes `owner` keeps alive (null: the caller guarantees their lifetime).
  LinearWeight(const cpu::WeightMatrix& matrix, std::shared_ptr<const void> owner)
      : matrix_(matrix), owner_(std::move(owner)) {}
  // Owns a copy of f32 weights [rows x cols] (tests and synthetic models).
  static LinearWeight FromF32(std::vector<float> w, int64_t rows, int64_t cols);
  static LinearWeight FromQ8_0(cpu::Q8_0Matrix q);

  const cpu::WeightMatrix& matrix() const { return matrix_; }
  int64_t rows() const { return matrix_.rows; }
  int64_t cols() const { return matrix_.cols; }
  int64_t Bytes() const { return matrix_.Bytes(); }
  bool empty() const { return matrix_.rows == 0; }

  // Rows [begin, end) as a weight of their own, sharing the bytes.
  // REQUIRES: 0 <= begin <= end <= rows().
  LinearWeight Rows(int64_t begin, int64_t end) const;
  // The f32 values the kernels see, [rows x cols] (references and tests).
  std::vector<float> ToF32() const;

 private:
  cpu::WeightMatrix matrix_;
  std::shared_ptr<const void> owner_;
};

// Reads Linear weight `name` of shape [rows x cols] from `ckpt`. kAsStored keeps bf16, f16 and
// f32 tensors in the mapped file (an aligned copy only when the file misaligns one). kQ8_0
// quantizes it (cols must be a multiple of 32, else it stays as stored) and releases the mapped
// pages it read, so the process keeps only the quantized bytes. Errors like ReadTensor's.
StatusOr<LinearWeight> LoadLinear(const std::shared_ptr<const Checkpoint>& ckpt,
                                  const std::string& name, int64_t rows, int64_t cols,
                                  WeightDType dtype);

}  // namespace kubemoe::layers
