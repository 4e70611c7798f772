// Fuzzes the watch-stream decoder: the bytes are fed to LineSplitter in two pieces and every
// line is decoded; nothing may crash, and a decoded event must be internally consistent.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "operator/k8s/watch_decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using kubemoe::k8s::WatchEventType;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  kubemoe::k8s::LineSplitter lines(/*max_line_bytes=*/1 << 16);
  size_t cut = size / 2;
  if (!lines.Append(text.substr(0, cut)).ok()) return 0;
  if (!lines.Append(text.substr(cut)).ok()) return 0;
  std::string line;
  while (lines.Next(&line)) {
    auto event = kubemoe::k8s::DecodeWatchEvent(line);
    if (!event.ok()) continue;
    bool is_error = event->type == WatchEventType::kError;
    if (is_error == (event->object != nullptr)) __builtin_trap();
    if (is_error && event->error.ok()) __builtin_trap();
    if (event->type == WatchEventType::kBookmark && event->resource_version.empty()) __builtin_trap();
    if (!is_error && !event->object->is_object()) __builtin_trap();
  }
  return 0;
}
