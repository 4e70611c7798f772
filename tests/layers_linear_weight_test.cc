// LinearWeight and LoadLinear: bf16/f16/f32 tensors are used in place from the mapped file (or
// an aligned copy when misaligned), Q8_0 is made on request within its bound, Rows() views the
// right rows of every format, and a wrong shape or unknown tensor is an error naming it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/linear_weight.h"
#include "model/dtype.h"
#include "model/safetensors_writer.h"
#include "tests/temp_dir.h"

namespace kubemoe::layers {
namespace {

constexpr int64_t kRows = 6, kCols = 64;

std::vector<float> Values(int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = scale * std::sin(0.7f * i + 0.3f);
  return v;
}

// The value a dtype stores for f (what the kernels must see when kept as stored).
float Stored(DType dtype, float f) {
  if (dtype == DType::kBF16) return Bf16ToFloat(FloatToBf16(f));
  if (dtype == DType::kF16) return F16ToFloat(FloatToF16(f));
  return f;
}

class LoadLinearTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SafetensorsWriter w;
    // "odd" is 3 bf16 values (6 bytes), so a tensor after it may start misaligned.
    ASSERT_TRUE(w.AddFloat("a_odd", DType::kBF16, {3}, {1, 2, 3}).ok());
    ASSERT_TRUE(w.AddFloat("b_f32", DType::kF32, {kRows, kCols}, values_).ok());
    ASSERT_TRUE(w.AddFloat("c_bf16", DType::kBF16, {kRows, kCols}, values_).ok());
    ASSERT_TRUE(w.AddFloat("d_f16", DType::kF16, {kRows, kCols}, values_).ok());
    ASSERT_TRUE(w.AddFloat("e_narrow", DType::kBF16, {kRows, 40}, Values(kRows * 40, 0.5f)).ok());
    ASSERT_TRUE(w.WriteFile(dir_.File("model.safetensors")).ok());
    StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir_.path());
    ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
    ckpt_ = std::make_shared<const Checkpoint>(std::move(*ckpt));
  }

  TempDir dir_;
  std::vector<float> values_ = Values(kRows * kCols, 0.25f);
  std::shared_ptr<const Checkpoint> ckpt_;
};

TEST_F(LoadLinearTest, KeepsEachDtypeAsStored) {
  struct Case {
    const char* name;
    DType dtype;
    cpu::WeightFormat format;
  };
  for (const Case& c : {Case{"b_f32", DType::kF32, cpu::WeightFormat::kF32},
                        Case{"c_bf16", DType::kBF16, cpu::WeightFormat::kBf16},
                        Case{"d_f16", DType::kF16, cpu::WeightFormat::kF16}}) {
    StatusOr<LinearWeight> w = LoadLinear(ckpt_, c.name, kRows, kCols, WeightDType::kAsStored);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    EXPECT_EQ(w->matrix().format, c.format) << c.name;
    EXPECT_EQ(w->Bytes(), kRows * kCols * static_cast<int64_t>(DTypeSize(c.dtype)));
    const std::vector<float> got = w->ToF32();
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i], Stored(c.dtype, values_[i])) << c.name << " element " << i;
    }
  }
}

TEST_F(LoadLinearTest, ReadsInPlace) {
  for (const char* name : {"b_f32", "c_bf16", "d_f16"}) {
    StatusOr<std::span<const uint8_t>> bytes = ckpt_->Tensor(name);
    StatusOr<LinearWeight> w = LoadLinear(ckpt_, name, kRows, kCols, WeightDType::kAsStored);
    ASSERT_TRUE(bytes.ok() && w.ok());
    const cpu::WeightMatrix& m = w->matrix();
    const void* data = m.f32 != nullptr    ? static_cast<const void*>(m.f32)
                       : m.bf16 != nullptr ? static_cast<const void*>(m.bf16)
                                           : static_cast<const void*>(m.f16);
    EXPECT_EQ(data, static_cast<const void*>(bytes->data())) << name;
  }
}

// A file whose f32 tensor starts 2 bytes into the data buffer (our writer, like the Python
// package, never writes one, but the format allows it).
TEST(LoadLinear, CopiesAMisalignedTensor) {
  TempDir dir;
  const std::vector<float> values = Values(2 * 32, 1.0f);
  const std::string header =
      "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[2,32],\"data_offsets\":[2,258]}}";
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  const uint64_t n = padded.size();
  std::memcpy(file.data(), &n, 8);
  file += padded;
  file += std::string(2, '\0');
  file.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  std::ofstream(dir.File("model.safetensors"), std::ios::binary) << file;
  StatusOr<Checkpoint> opened = Checkpoint::Open(dir.path());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto ckpt = std::make_shared<const Checkpoint>(std::move(*opened));
  StatusOr<std::span<const uint8_t>> bytes = ckpt->Tensor("w");
  ASSERT_TRUE(bytes.ok());
  ASSERT_NE(reinterpret_cast<uintptr_t>(bytes->data()) % alignof(float), 0u);
  StatusOr<LinearWeight> w = LoadLinear(ckpt, "w", 2, 32, WeightDType::kAsStored);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w->matrix().f32) % alignof(float), 0u);
  EXPECT_EQ(w->ToF32(), values);
}

TEST_F(LoadLinearTest, TheWeightKeepsTheCheckpointAlive) {
  StatusOr<LinearWeight> w = LoadLinear(ckpt_, "c_bf16", kRows, kCols, WeightDType::kAsStored);
  ASSERT_TRUE(w.ok());
  ckpt_.reset();  // the weight's owner is now the only reference to the mapping
  const std::vector<float> got = w->ToF32();
  EXPECT_EQ(got[5], Stored(DType::kBF16, values_[5]));
}

TEST_F(LoadLinearTest, Q8_0WithinItsBoundFromEveryDtype) {
  for (auto [name, dtype] : {std::pair{"b_f32", DType::kF32}, std::pair{"c_bf16", DType::kBF16},
                             std::pair{"d_f16", DType::kF16}}) {
    StatusOr<LinearWeight> w = LoadLinear(ckpt_, name, kRows, kCols, WeightDType::kQ8_0);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    EXPECT_EQ(w->matrix().format, cpu::WeightFormat::kQ8_0) << name;
    EXPECT_EQ(w->Bytes(), kRows * kCols + kRows * (kCols / 32) * 4);
    const std::vector<float> got = w->ToF32();
    for (int64_t b = 0; b < kRows * kCols / 32; ++b) {
      float block_max = 0;
      for (int64_t i = b * 32; i < (b + 1) * 32; ++i) {
        block_max = std::max(block_max, std::fabs(Stored(dtype, values_[static_cast<size_t>(i)])));
      }
      for (int64_t i = b * 32; i < (b + 1) * 32; ++i) {
        // Half a quantization step of the stored weight (q8_0.h), plus f32 rounding.
        EXPECT_NEAR(got[static_cast<size_t>(i)], Stored(dtype, values_[static_cast<size_t>(i)]),
                    block_max / 254 * (1 + 1e-5))
            << name << " element " << i;
      }
    }
  }
}

TEST_F(LoadLinearTest, Q8_0NeedsWholeBlocksElseKeepsTheStoredWeight) {
  StatusOr<LinearWeight> w = LoadLinear(ckpt_, "e_narrow", kRows, 40, WeightDType::kQ8_0);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->matrix().format, cpu::WeightFormat::kBf16);
}

TEST_F(LoadLinearTest, RowsViewTheRightRowsOfEveryFormat) {
  for (WeightDType dtype : {WeightDType::kAsStored, WeightDType::kQ8_0}) {
    for (const char* name : {"b_f32", "c_bf16", "d_f16"}) {
      StatusOr<LinearWeight> w = LoadLinear(ckpt_, name, kRows, kCols, dtype);
      ASSERT_TRUE(w.ok());
      const std::vector<float> all = w->ToF32();
      const LinearWeight rows = w->Rows(2, 5);
      EXPECT_EQ(rows.rows(), 3);
      EXPECT_EQ(rows.cols(), kCols);
      const std::vector<float> part = rows.ToF32();
      for (int64_t i = 0; i < 3 * kCols; ++i) {
        ASSERT_EQ(part[static_cast<size_t>(i)], all[static_cast<size_t>(2 * kCols + i)]) << name;
      }
    }
  }
}

TEST_F(LoadLinearTest, ErrorsNameTheTensor) {
  StatusOr<LinearWeight> missing = LoadLinear(ckpt_, "nope", kRows, kCols, WeightDType::kAsStored);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  StatusOr<LinearWeight> shape = LoadLinear(ckpt_, "c_bf16", kCols, kRows, WeightDType::kQ8_0);
  ASSERT_FALSE(shape.ok());
  EXPECT_EQ(shape.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(shape.status().message().find("c_bf16"), std::string::npos);
}

TEST(WeightDType, ParsesTheFlagValues) {
  EXPECT_EQ(*ParseWeightDType("as-stored"), WeightDType::kAsStored);
  EXPECT_EQ(*ParseWeightDType("bf16"), WeightDType::kAsStored);
  EXPECT_EQ(*ParseWeightDType("q8_0"), WeightDType::kQ8_0);
  StatusOr<WeightDType> bad = ParseWeightDType("q4_k");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("q8_0"), std::string::npos);
  EXPECT_STREQ(WeightDTypeName(WeightDType::kQ8_0), "q8_0");
}

TEST(LinearWeight, FromF32OwnsItsCopy) {
  std::vector<float> v = Values(2 * 32, 1.0f);
  LinearWeight w = LinearWeight::FromF32(v, 2, 32);
  v.assign(v.size(), 0.0f);
  EXPECT_EQ(w.ToF32(), Values(2 * 32, 1.0f));
  EXPECT_EQ(w.matrix().format, cpu::WeightFormat::kF32);
}

}  // namespace
}  // namespace kubemoe::layers
