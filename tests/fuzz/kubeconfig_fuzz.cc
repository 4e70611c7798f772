// Fuzzes the kubeconfig parser: any bytes (split into up to two files at the first NUL) must give
// a config or a clear error, never a crash or an exception.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "operator/k8s/kubeconfig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<kubemoe::k8s::KubeconfigFile> files;
  size_t nul = text.find('\0');
  files.push_back({"/fuzz/a/config", std::string(text.substr(0, nul))});
  if (nul != std::string_view::npos) files.push_back({"/fuzz/b/config", std::string(text.substr(nul + 1))});
  kubemoe::StatusOr<kubemoe::k8s::ClientConfig> config = kubemoe::k8s::ParseKubeconfig(files);
  if (config.ok()) {
    // A parsed config always has a usable server URL.
    if (config->server.rfind("http", 0) != 0) __builtin_trap();
  } else if (config.status().message().empty()) {
    __builtin_trap();
  }
  return 0;
}
