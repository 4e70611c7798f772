// Fuzzes the safetensors header parser: any bytes must give a Status or a header whose every
// promise holds (spans inside the data buffer, sizes matching shapes, no overlap, sorted names).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "model/safetensors.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using kubemoe::TensorInfo;
  const std::span<const uint8_t> bytes(data, size);
  kubemoe::StatusOr<kubemoe::SafetensorsHeader> header =
      kubemoe::ParseSafetensorsHeader(bytes, size, "fuzz");
  if (!header.ok()) {
    Check(!header.status().message().empty());
    return 0;
  }
  Check(header->data_offset == 8 + header->header_bytes);
  Check(header->data_offset + header->data_bytes == size);
  std::vector<const TensorInfo*> spans;
  for (size_t i = 0; i < header->tensors.size(); ++i) {
    const TensorInfo& t = header->tensors[i];
    if (i > 0) Check(header->tensors[i - 1].name < t.name);
    Check(t.begin <= t.end && t.end <= header->data_bytes);
    Check(t.num_elements() * kubemoe::DTypeSize(t.dtype) == t.num_bytes());
    Check(header->Find(t.name) == &t);
    // Touch every byte so ASan sees any read outside the input.
    const std::span<const uint8_t> view =
        bytes.subspan(header->data_offset + t.begin, t.num_bytes());
    std::vector<float> values = kubemoe::BytesToFloat(t.dtype, view);
    Check(values.size() == t.num_elements());
    if (t.num_bytes() > 0) spans.push_back(&t);
  }
  std::sort(spans.begin(), spans.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < spans.size(); ++i) Check(spans[i - 1]->end <= spans[i]->begin);
  return 0;
}
