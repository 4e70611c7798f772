// Kubernetes resource quantities (k8s.io/apimachinery resource.Quantity): "500m", "1.5Gi",
// "1e3". The API server stores every quantity of a built-in kind in its canonical form ("1000m"
// comes back as "1", "1024Mi" as "1Gi"), so a desired object must compare quantities by value,
// not as text, or every resync sees a difference and writes.
//
// Grammar (as documented in apimachinery's quantity.go):
//   quantity  ::= sign? number suffix
//   number    ::= digits | digits "." digits? | "." digits
//   suffix    ::= "" | decimalSI | binarySI | ("e" | "E") sign? digits
//   decimalSI ::= n u m k M G T P E        binarySI ::= Ki Mi Gi Ti Pi Ei
// Values are kept as the API server keeps them: rounded up (away from zero) to a multiple of
// 1e-9 and capped at +-(2^63 - 1). Two quantities are equal when these values are equal, whatever
// their suffixes ("1Gi" == "1073741824" == "1024Mi").
//
// Stricter than apimachinery's parser on inputs it reads in surprising ways: "+", "-" and "."
// (no digit at all; Go reads them as 0) and exponents outside the 32-bit range (Go truncates
// them) are errors here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kubemoe::k8s {

class Quantity {
 public:
  // How the value is written back: the suffix family of the text it was parsed from.
  enum class Format { kDecimalSI, kBinarySI, kDecimalExponent };

  // Parses `text`; an error names the text and what is wrong with it.
  static StatusOr<Quantity> Parse(std::string_view text);

  // The API server's canonical text for this value ("1", "1500m", "1Gi", "1536Mi", "1e3").
  std::string Canonical() const;

  bool negative() const { return negative_; }
  // |value| = units() + nanos() * 1e-9; units() <= 2^63 - 1, nanos() < 1e9.
  uint64_t units() const { return units_; }
  uint32_t nanos() const { return nanos_; }
  Format format() const { return format_; }

  // Equal values, whatever the format.
  friend bool operator==(const Quantity& a, const Quantity& b) {
    return a.negative_ == b.negative_ && a.units_ == b.units_ && a.nanos_ == b.nanos_;
  }
  friend bool operator!=(const Quantity& a, const Quantity& b) { return !(a == b); }

 private:
  bool negative_ = false;  // never true for zero
  uint64_t units_ = 0;
  uint32_t nanos_ = 0;
  Format format_ = Format::kDecimalSI;
};

}  // namespace kubemoe::k8s
