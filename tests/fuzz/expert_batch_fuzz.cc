// Fuzzes what a worker does with the bytes of a RunExperts request before any expert runs: parse
// an ExpertBatch, decode its hidden states and routes, validate the routes. Any input gives a
// batch or a clear error, never a crash; a tensor that decodes survives re-encoding unchanged.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kubemoe/v1/expert_service.pb.h"
#include "layers/routes.h"
#include "transport/tensor_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1 << 20) return 0;  // bound the work per input
  kubemoe::v1::ExpertBatch batch;
  if (!batch.ParseFromArray(data, static_cast<int>(size))) return 0;
  const kubemoe::v1::Tensor& hidden = batch.hidden_states();
  // The width a worker would expect: here whatever the input claims, so decoding gets past the
  // shape check often enough to exercise the byte-length and conversion paths.
  const int64_t cols = hidden.shape_size() >= 2 ? hidden.shape(1) : 1;
  auto decoded = kubemoe::transport::DecodeTensor(hidden, cols, "hidden_states");
  if (!decoded.ok()) return 0;
  const int64_t rows = hidden.shape(0);
  if (static_cast<int64_t>(decoded->size()) != rows * cols) __builtin_trap();
  auto dtype = kubemoe::transport::TensorWireDType(hidden);
  if (!dtype.ok()) __builtin_trap();  // decoded, so the dtype is known
  kubemoe::v1::Tensor again;
  kubemoe::transport::EncodeTensor(decoded->data(), rows, cols, *dtype, &again);
  // bf16 -> f32 -> bf16 is exact except NaN payloads, which may be quieted: compare f32 bytes.
  if (*dtype == kubemoe::transport::WireDType::kF32 && again.data() != hidden.data()) {
    __builtin_trap();
  }
  auto routes = kubemoe::transport::DecodeRoutes(batch, rows);
  if (!routes.ok()) return 0;
  if (routes->num_tokens() != rows) __builtin_trap();
  (void)kubemoe::layers::ValidateRoutes(*routes, /*num_experts=*/16, /*num_devices=*/4);
  return 0;
}
