// Fuzzes the Kubernetes quantity parser (operator/k8s/quantity.h): any bytes must give a quantity
// or an error with a message, never a crash; a parsed quantity's canonical text must read back as
// the same value. The canonical text of a canonical text is a fixed point (not always at once, as
// in apimachinery: "76812.5Ki" is written "78656000", which reads back as decimal, "78656k").
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "operator/k8s/quantity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  kubemoe::StatusOr<kubemoe::k8s::Quantity> q = kubemoe::k8s::Quantity::Parse(text);
  if (!q.ok()) {
    if (q.status().message().empty()) __builtin_trap();
    return 0;
  }
  if (q->nanos() >= 1000000000u || q->units() > static_cast<uint64_t>(INT64_MAX)) __builtin_trap();
  std::string canonical = q->Canonical();
  kubemoe::StatusOr<kubemoe::k8s::Quantity> again = kubemoe::k8s::Quantity::Parse(canonical);
  if (!again.ok() || *again != *q) __builtin_trap();
  std::string second = again->Canonical();
  kubemoe::StatusOr<kubemoe::k8s::Quantity> third = kubemoe::k8s::Quantity::Parse(second);
  if (!third.ok() || *third != *q || third->Canonical() != second) __builtin_trap();
  return 0;
}
