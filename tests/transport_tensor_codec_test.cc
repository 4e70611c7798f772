// The router <-> worker wire codec (transport/tensor_codec.h): tensors in f32 and bf16, routes
// with global -> shard-local devices, and every malformed input refused with InvalidArgument.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "model/dtype.h"
#include "transport/tensor_codec.h"

namespace kubemoe::transport {
namespace {

std::vector<float> Values(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::sin(0.37f * static_cast<float>(i) + 0.1f) * 3.0f;
  return v;
}

TEST(WireDType, ParsesAndNames) {
  EXPECT_EQ(*ParseWireDType("f32"), WireDType::kF32);
  EXPECT_EQ(*ParseWireDType("bf16"), WireDType::kBf16);
  StatusOr<WireDType> bad = ParseWireDType("fp8");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("fp8"), std::string::npos);
  EXPECT_STREQ(WireDTypeName(WireDType::kBf16), "bf16");
}

TEST(TensorCodec, F32RoundTripIsExact) {
  std::vector<float> x = Values(3 * 5);
  x[4] = -0.0f;
  x[7] = std::numeric_limits<float>::denorm_min();
  v1::Tensor t;
  EncodeTensor(x.data(), 3, 5, WireDType::kF32, &t);
  EXPECT_EQ(t.dtype(), v1::DTYPE_F32);
  ASSERT_EQ(t.shape_size(), 2);
  EXPECT_EQ(t.shape(0), 3);
  EXPECT_EQ(t.shape(1), 5);
  EXPECT_EQ(t.data().size(), 3u * 5 * 4);
  StatusOr<std::vector<float>> back = DecodeTensor(t, 5, "x");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), x.size());
  EXPECT_EQ(std::memcmp(back->data(), x.data(), x.size() * sizeof(float)), 0);
  EXPECT_EQ(*TensorWireDType(t), WireDType::kF32);
}

TEST(TensorCodec, Bf16RoundTripWithinRounding) {
  const std::vector<float> x = Values(4 * 8);
  v1::Tensor t;
  EncodeTensor(x.data(), 4, 8, WireDType::kBf16, &t);
  EXPECT_EQ(t.dtype(), v1::DTYPE_BF16);
  EXPECT_EQ(t.data().size(), 4u * 8 * 2);
  StatusOr<std::vector<float>> back = DecodeTensor(t, 8, "x");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  for (size_t i = 0; i < x.size(); ++i) {
    // bf16 keeps 8 significant bits: rounding to nearest errs by at most 2^-8 relative.
    EXPECT_LE(std::fabs((*back)[i] - x[i]), std::ldexp(std::fabs(x[i]), -8)) << i;
    EXPECT_EQ((*back)[i], Bf16ToFloat(FloatToBf16(x[i]))) << i;
  }
}

TEST(TensorCodec, Bf16TiesRoundToEven) {
  // 1 + 2^-8 lies exactly between bf16 1.0 (even mantissa) and 1 + 2^-7 (odd): goes down.
  // 1 + 3 * 2^-8 lies between 1 + 2^-7 (odd) and 1 + 2^-6 (even): goes up.
  const std::vector<float> x = {1.0f + std::ldexp(1.0f, -8), 1.0f + 3 * std::ldexp(1.0f, -8)};
  v1::Tensor t;
  EncodeTensor(x.data(), 1, 2, WireDType::kBf16, &t);
  uint16_t bits[2];
  std::memcpy(bits, t.data().data(), sizeof bits);
  EXPECT_EQ(bits[0], 0x3f80);  // little-endian on the wire, as tensor.proto says
  EXPECT_EQ(bits[1], 0x3f82);
  StatusOr<std::vector<float>> back = DecodeTensor(t, 2, "x");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ((*back)[0], 1.0f);
  EXPECT_EQ((*back)[1], 1.0f + std::ldexp(1.0f, -6));
}

TEST(TensorCodec, EmptyBatchRoundTrips) {
  v1::Tensor t;
  EncodeTensor(nullptr, 0, 16, WireDType::kBf16, &t);
  StatusOr<std::vector<float>> back = DecodeTensor(t, 16, "x");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->empty());
}

void ExpectInvalid(const v1::Tensor& t, int64_t cols, const std::string& needle) {
  StatusOr<std::vector<float>> r = DecodeTensor(t, cols, "hidden_states");
  ASSERT_FALSE(r.ok()) << needle;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("hidden_states"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

TEST(TensorCodec, RejectsEveryMalformedTensor) {
  const std::vector<float> x = Values(2 * 4);
  v1::Tensor good;
  EncodeTensor(x.data(), 2, 4, WireDType::kF32, &good);

  v1::Tensor t = good;
  t.set_dtype(v1::DTYPE_UNSPECIFIED);
  ExpectInvalid(t, 4, "dtype");
  t = good;
  t.set_dtype(v1::DTYPE_F16);  // in tensor.proto, but not a wire dtype for hidden states
  ExpectInvalid(t, 4, "DTYPE_F16");
  t = good;
  t.set_dtype(static_cast<v1::DType>(77));
  ExpectInvalid(t, 4, "77");
  t = good;
  t.clear_shape();
  t.add_shape(8);
  ExpectInvalid(t, 4, "shape [8]");
  t = good;
  t.add_shape(1);
  ExpectInvalid(t, 4, "shape [2, 4, 1]");
  ExpectInvalid(good, 5, "shape [2, 4]");  // wrong width
  t = good;
  t.set_shape(0, -1);
  ExpectInvalid(t, 4, "shape [-1, 4]");
  t = good;
  t.mutable_data()->pop_back();
  ExpectInvalid(t, 4, "31 bytes");
  t = good;
  t.mutable_data()->append(4, '\0');
  ExpectInvalid(t, 4, "36 bytes");
  t = good;
  t.set_shape(0, std::numeric_limits<int64_t>::max());  // would overflow a byte count
  ExpectInvalid(t, 4, "bytes");
  t = good;
  t.set_dtype(v1::DTYPE_BF16);  // f32 bytes read as bf16: twice the rows the shape says
  ExpectInvalid(t, 4, "32 bytes");
  ExpectInvalid(good, 0, "width");
  ExpectInvalid(good, -4, "width");
}

layers::RaggedRoutes SampleRoutes() {
  layers::RaggedRoutes r;
  const std::vector<int32_t> ids0 = {3, 9}, dev0 = {1, 4};
  const std::vector<float> w0 = {0.75f, 0.25f};
  r.AddToken(ids0, w0, dev0);
  r.AddToken({}, {}, {});  // a token with no route on this shard
  const std::vector<int32_t> ids2 = {9}, dev2 = {5};
  const std::vector<float> w2 = {1.0f};
  r.AddToken(ids2, w2, dev2);
  return r;
}

TEST(RoutesCodec, RoundTripConvertsDevicesToShardLocal) {
  const layers::RaggedRoutes in = SampleRoutes();
  v1::ExpertBatch batch;
  EncodeRoutes(in, /*devices_per_shard=*/4, &batch);
  ASSERT_EQ(batch.routes_size(), 3);
  EXPECT_EQ(batch.routes(0).devices(0), 1);
  EXPECT_EQ(batch.routes(0).devices(1), 0);  // global 4 = shard 1, local 0
  EXPECT_EQ(batch.routes(1).expert_ids_size(), 0);
  StatusOr<layers::RaggedRoutes> out = DecodeRoutes(batch, 3);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->token_offsets, in.token_offsets);
  EXPECT_EQ(out->expert_ids, in.expert_ids);
  EXPECT_EQ(out->weights, in.weights);
  EXPECT_EQ(out->devices, (std::vector<int32_t>{1, 0, 1}));
  EXPECT_TRUE(layers::ValidateRoutes(*out, 16, 4).ok());
}

TEST(RoutesCodec, UnplacedRoutesKeepNoDevices) {
  layers::RaggedRoutes in;
  const std::vector<int32_t> ids = {2, 0};
  const std::vector<float> w = {0.5f, 0.5f};
  in.AddToken(ids, w);
  v1::ExpertBatch batch;
  EncodeRoutes(in, 2, &batch);
  EXPECT_EQ(batch.routes(0).devices_size(), 0);
  StatusOr<layers::RaggedRoutes> out = DecodeRoutes(batch, 1);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->devices.empty());
  EXPECT_EQ(out->expert_ids, ids);
}

void ExpectRoutesInvalid(const v1::ExpertBatch& batch, int64_t tokens, const std::string& needle) {
  StatusOr<layers::RaggedRoutes> r = DecodeRoutes(batch, tokens);
  ASSERT_FALSE(r.ok()) << needle;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

TEST(RoutesCodec, RejectsMalformedRoutes) {
  v1::ExpertBatch good;
  EncodeRoutes(SampleRoutes(), 4, &good);
  ExpectRoutesInvalid(good, 4, "3 token routes for 4 rows");
  v1::ExpertBatch b = good;
  b.mutable_routes(2)->add_gate_weights(0.5f);
  ExpectRoutesInvalid(b, 3, "routes[2]");
  b = good;
  b.mutable_routes(0)->mutable_devices()->RemoveLast();
  ExpectRoutesInvalid(b, 3, "routes[0]");
  b = good;
  b.mutable_routes(2)->clear_devices();  // devices for some tokens but not all
  ExpectRoutesInvalid(b, 3, "routes[2]");
  // Out-of-range ids decode (the codec does not know the model) and ValidateRoutes refuses them.
  b = good;
  b.mutable_routes(0)->set_expert_ids(1, 16);
  StatusOr<layers::RaggedRoutes> r = DecodeRoutes(b, 3);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(layers::ValidateRoutes(*r, 16, 4).code(), StatusCode::kInvalidArgument);
  b = good;
  b.mutable_routes(2)->set_devices(0, -1);
  r = DecodeRoutes(b, 3);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(layers::ValidateRoutes(*r, 16, 4).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kubemoe::transport
