// Hidden states and routes on the wire between router and expert-shard workers (proto/kubemoe/v1):
// floats <-> kubemoe.v1.Tensor in f32 or bf16, and layers::RaggedRoutes <-> ExpertBatch.routes.
// Both sides link this, so the encoding has one definition.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "kubemoe/v1/expert_service.pb.h"
#include "kubemoe/v1/tensor.pb.h"
#include "layers/routes.h"

namespace kubemoe::transport {

// The dtype of hidden states on the wire. bf16 halves the bytes (what expert-parallel systems
// dispatch); f32 is exact.
enum class WireDType { kF32, kBf16 };

// "f32" or "bf16"; InvalidArgument naming the value otherwise.
StatusOr<WireDType> ParseWireDType(std::string_view name);
const char* WireDTypeName(WireDType dtype);

// Writes rows x cols floats (row-major) into `out` as a 2-D tensor [rows, cols] of `dtype`
// (bf16: round to nearest even, as kernels/cpu/convert.h does).
void EncodeTensor(const float* data, int64_t rows, int64_t cols, WireDType dtype,
                  kubemoe::v1::Tensor* out);

// Reads a 2-D f32 or bf16 tensor whose second dimension is `cols` into floats
// ([rows x cols], rows = shape[0]). InvalidArgument, naming `what`, for an unknown dtype, a shape
// that is not [rows, cols] with rows >= 0, or a byte length that does not match the shape.
StatusOr<std::vector<float>> DecodeTensor(const kubemoe::v1::Tensor& tensor, int64_t cols,
                                          std::string_view what);

// The wire dtype of a tensor (kF32 for DTYPE_F32, kBf16 for DTYPE_BF16); InvalidArgument else.
StatusOr<WireDType> TensorWireDType(const kubemoe::v1::Tensor& tensor);

// Appends routes as ExpertBatch.routes, one TokenRoute per token, converting every global device
// to the index within its shard (device % devices_per_shard). routes.devices may be empty (then
// TokenRoute.devices stays empty).
void EncodeRoutes(const layers::RaggedRoutes& routes, int32_t devices_per_shard,
                  kubemoe::v1::ExpertBatch* batch);

// Reads ExpertBatch.routes back: devices stay shard-local. InvalidArgument (naming the token) when
// a TokenRoute's lists differ in length (devices may be empty) or the number of routes is not
// `num_tokens`.
StatusOr<layers::RaggedRoutes> DecodeRoutes(const kubemoe::v1::ExpertBatch& batch,
                                            int64_t num_tokens);

}  // namespace kubemoe::transport
