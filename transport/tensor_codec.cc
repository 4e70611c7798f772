#include "transport/tensor_codec.h"

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>

#include "kernels/cpu/convert.h"
#include "model/dtype.h"

namespace kubemoe::transport {
namespace {

// tensor.proto says little-endian; memcpy of host floats is only right on a little-endian host.
static_assert(std::endian::native == std::endian::little, "the wire codec assumes little-endian");

size_t ElementBytes(WireDType dtype) { return dtype == WireDType::kF32 ? 4 : 2; }

std::string ShapeString(const kubemoe::v1::Tensor& t) {
  std::string s = "[";
  for (int i = 0; i < t.shape_size(); ++i) s += (i ? ", " : "") + std::to_string(t.shape(i));
  return s + "]";
}

}  // namespace

StatusOr<WireDType> ParseWireDType(std::string_view name) {
  if (name == "f32") return WireDType::kF32;
  if (name == "bf16") return WireDType::kBf16;
  return InvalidArgument("unknown wire dtype \"" + std::string(name) + "\" (use f32 or bf16)");
}

const char* WireDTypeName(WireDType dtype) { return dtype == WireDType::kF32 ? "f32" : "bf16"; }

void EncodeTensor(const float* data, int64_t rows, int64_t cols, WireDType dtype,
                  kubemoe::v1::Tensor* out) {
  out->Clear();
  out->set_dtype(dtype == WireDType::kF32 ? kubemoe::v1::DTYPE_F32 : kubemoe::v1::DTYPE_BF16);
  out->add_shape(rows);
  out->add_shape(cols);
  const size_t n = static_cast<size_t>(rows * cols);
  std::string* bytes = out->mutable_data();
  bytes->resize(n * ElementBytes(dtype));
  if (dtype == WireDType::kF32) {
    if (n > 0) std::memcpy(bytes->data(), data, n * sizeof(float));
    return;
  }
  char* dst = bytes->data();
  for (size_t i = 0; i < n; ++i) {
    const uint16_t bits = FloatToBf16(data[i]);  // round to nearest even, NaN stays NaN
    std::memcpy(dst + 2 * i, &bits, sizeof bits);
  }
}

StatusOr<WireDType> TensorWireDType(const kubemoe::v1::Tensor& tensor) {
  switch (tensor.dtype()) {
    case kubemoe::v1::DTYPE_F32:
      return WireDType::kF32;
    case kubemoe::v1::DTYPE_BF16:
      return WireDType::kBf16;
    default:
      return InvalidArgument("tensor dtype " + std::to_string(static_cast<int>(tensor.dtype())) +
                             " (" + kubemoe::v1::DType_Name(tensor.dtype()) +
                             ") is not supported on the wire (use DTYPE_F32 or DTYPE_BF16)");
  }
}

StatusOr<std::vector<float>> DecodeTensor(const kubemoe::v1::Tensor& tensor, int64_t cols,
                                          std::string_view what) {
  const std::string name(what);
  StatusOr<WireDType> dtype = TensorWireDType(tensor);
  if (!dtype.ok()) return InvalidArgument(name + ": " + dtype.status().message());
  // Widths past 2^40 are no hidden size; bounding them keeps the byte arithmetic below exact.
  if (cols <= 0 || cols > (int64_t{1} << 40)) {
    return InvalidArgument(name + ": expected width " + std::to_string(cols) + " is out of range");
  }
  if (tensor.shape_size() != 2 || tensor.shape(0) < 0 || tensor.shape(1) != cols) {
    return InvalidArgument(name + ": shape " + ShapeString(tensor) + " is not [num_tokens, " +
                           std::to_string(cols) + "]");
  }
  // Compare by division so a huge shape[0] cannot overflow the expected byte count.
  const size_t row_bytes = static_cast<size_t>(cols) * ElementBytes(*dtype);
  const size_t have = tensor.data().size();
  const auto rows = static_cast<uint64_t>(tensor.shape(0));
  if (have % row_bytes != 0 || have / row_bytes != rows) {
    return InvalidArgument(name + ": " + std::to_string(have) + " bytes of data, but shape " +
                           ShapeString(tensor) + " in " + WireDTypeName(*dtype) + " needs " +
                           std::to_string(row_bytes) + " per row");
  }
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  std::vector<float> out(n);
  if (n == 0) return out;
  const char* src = tensor.data().data();
  if (*dtype == WireDType::kF32) {
    std::memcpy(out.data(), src, n * sizeof(float));
  } else if (reinterpret_cast<uintptr_t>(src) % alignof(uint16_t) == 0) {
    cpu::Bf16ToF32(reinterpret_cast<const uint16_t*>(src), out.data(), n);
  } else {  // protobuf does not promise aligned bytes; widen one element at a time
    for (size_t i = 0; i < n; ++i) {
      uint16_t bits;
      std::memcpy(&bits, src + 2 * i, sizeof bits);
      out[i] = Bf16ToFloat(bits);
    }
  }
  return out;
}

void EncodeRoutes(const layers::RaggedRoutes& routes, int32_t devices_per_shard,
                  kubemoe::v1::ExpertBatch* batch) {
  const bool placed = !routes.devices.empty();
  for (int64_t t = 0; t < routes.num_tokens(); ++t) {
    kubemoe::v1::TokenRoute* r = batch->add_routes();
    for (int64_t i = routes.begin(t); i < routes.end(t); ++i) {
      const auto at = static_cast<size_t>(i);
      r->add_expert_ids(routes.expert_ids[at]);
      r->add_gate_weights(routes.weights[at]);
      if (placed) {
        const int32_t d = routes.devices[at];
        r->add_devices(devices_per_shard > 0 ? d % devices_per_shard : d);
      }
    }
  }
}

StatusOr<layers::RaggedRoutes> DecodeRoutes(const kubemoe::v1::ExpertBatch& batch,
                                            int64_t num_tokens) {
  if (batch.routes_size() != num_tokens) {
    return InvalidArgument("routes: " + std::to_string(batch.routes_size()) + " token routes for " +
                           std::to_string(num_tokens) + " rows of hidden_states");
  }
  // Devices are all-or-nothing in RaggedRoutes: placed when any token names a device.
  bool placed = false;
  for (const auto& r : batch.routes()) placed = placed || r.devices_size() > 0;
  layers::RaggedRoutes out;
  out.token_offsets.reserve(static_cast<size_t>(num_tokens) + 1);
  for (int t = 0; t < batch.routes_size(); ++t) {
    const kubemoe::v1::TokenRoute& r = batch.routes(t);
    const int n = r.expert_ids_size();
    if (r.gate_weights_size() != n || (placed && r.devices_size() != n)) {
      return InvalidArgument("routes[" + std::to_string(t) + "]: " + std::to_string(n) +
                             " expert_ids, " + std::to_string(r.gate_weights_size()) +
                             " gate_weights and " + std::to_string(r.devices_size()) +
                             " devices (the lists must have equal lengths" +
                             (placed ? ", and devices are given for other tokens)" : ")"));
    }
    out.AddToken(std::span<const int32_t>(r.expert_ids().data(), static_cast<size_t>(n)),
                 std::span<const float>(r.gate_weights().data(), static_cast<size_t>(n)),
                 placed ? std::span<const int32_t>(r.devices().data(), static_cast<size_t>(n))
                        : std::span<const int32_t>());
  }
  return out;
}

}  // namespace kubemoe::transport
