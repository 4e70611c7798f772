// Fuzzes the config.json parser: any bytes must give a config or a clear error, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  kubemoe::StatusOr<kubemoe::ModelConfig> config = kubemoe::ParseModelConfig(text, "fuzz");
  if (config.ok()) {
    // A config that parses must survive its own serialisation.
    auto again = kubemoe::ParseModelConfig(kubemoe::ModelConfigToJson(*config), "fuzz-again");
    if (!again.ok()) __builtin_trap();
  }
  return 0;
}
