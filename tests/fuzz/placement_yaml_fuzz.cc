// Fuzzes the placement YAML parser: any bytes give a placement or a clear error, never a crash;
// a placement that parses survives its own serialisation with the same version.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "placement/placement.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;  // placements are small; bound the work per input
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = kubemoe::placement::ParsePlacementYaml(text, "fuzz");
  if (parsed.ok()) {
    auto again = kubemoe::placement::ParsePlacementYaml(kubemoe::placement::ToYaml(*parsed), "again");
    if (!again.ok() || again->version != parsed->version) __builtin_trap();
    for (int32_t d = 0; d < parsed->num_devices(); ++d) {
      (void)kubemoe::placement::ExpertsOnDevice(*parsed, 0, d);
    }
  }
  return 0;
}
