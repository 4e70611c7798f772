#include "operator/k8s/quantity.h"

#include <limits>
#include <vector>

namespace kubemoe::k8s {
namespace {

constexpr uint64_t kMaxUnits = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
constexpr uint32_t kNanosPerUnit = 1000000000;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The suffix's meaning: value = number * 10^decimal_exponent * 2^binary_exponent.
struct Suffix {
  int64_t decimal_exponent = 0;
  int binary_exponent = 0;
  Quantity::Format format = Quantity::Format::kDecimalSI;
};

bool InterpretSuffix(std::string_view s, Suffix* out) {
  static constexpr struct {
    std::string_view text;
    int decimal;
    int binary;
  } kNamed[] = {{"", 0, 0},   {"n", -9, 0},  {"u", -6, 0},  {"m", -3, 0},  {"k", 3, 0},
                {"M", 6, 0},  {"G", 9, 0},   {"T", 12, 0},  {"P", 15, 0},  {"E", 18, 0},
                {"Ki", 0, 10}, {"Mi", 0, 20}, {"Gi", 0, 30}, {"Ti", 0, 40}, {"Pi", 0, 50},
                {"Ei", 0, 60}};
  for (const auto& named : kNamed) {
    if (s == named.text) {
      out->decimal_exponent = named.decimal;
      out->binary_exponent = named.binary;
      out->format = named.binary > 0 ? Quantity::Format::kBinarySI : Quantity::Format::kDecimalSI;
      return true;
    }
  }
  if (s.size() < 2 || (s[0] != 'e' && s[0] != 'E')) return false;
  size_t i = 1;
  bool negative = false;
  if (s[i] == '+' || s[i] == '-') negative = s[i++] == '-';
  if (i == s.size()) return false;
  int64_t exponent = 0;
  for (; i < s.size(); ++i) {
    if (!IsDigit(s[i])) return false;
    exponent = exponent * 10 + (s[i] - '0');
    // apimachinery reads the exponent into 32 bits; beyond that it would silently wrap.
    if (exponent > int64_t{std::numeric_limits<int32_t>::max()} + 1) return false;
  }
  if (negative) exponent = -exponent;
  if (exponent > std::numeric_limits<int32_t>::max()) return false;
  out->decimal_exponent = exponent;
  out->binary_exponent = 0;
  out->format = Quantity::Format::kDecimalExponent;
  return true;
}

// Multiplies a big-endian decimal digit string by 2^bits in place.
void MultiplyByPowerOfTwo(std::vector<uint8_t>& digits, int bits) {
  while (bits > 0) {
    int step = bits < 10 ? bits : 10;
    bits -= step;
    uint32_t carry = 0;
    for (size_t i = digits.size(); i-- > 0;) {
      uint32_t v = (static_cast<uint32_t>(digits[i]) << step) + carry;
      digits[i] = static_cast<uint8_t>(v % 10);
      carry = v / 10;
    }
    while (carry > 0) {
      digits.insert(digits.begin(), static_cast<uint8_t>(carry % 10));
      carry /= 10;
    }
  }
}

}  // namespace

StatusOr<Quantity> Quantity::Parse(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("invalid quantity \"" + std::string(text.substr(0, 64)) +
                           (text.size() > 64 ? "..." : "") + "\": " + why +
                           " (expected a number with an optional suffix such as 500m, 2, 1.5Gi "
                           "or 1e3)");
  };
  if (text.empty()) return bad("empty");
  size_t pos = 0;
  bool negative = false;
  if (text[pos] == '+' || text[pos] == '-') negative = text[pos++] == '-';
  std::vector<uint8_t> digits;  // integer then fraction digits, big-endian
  size_t int_begin = pos;
  while (pos < text.size() && IsDigit(text[pos])) digits.push_back(static_cast<uint8_t>(text[pos++] - '0'));
  size_t int_digits = pos - int_begin;
  size_t frac_digits = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t frac_begin = pos;
    while (pos < text.size() && IsDigit(text[pos])) digits.push_back(static_cast<uint8_t>(text[pos++] - '0'));
    frac_digits = pos - frac_begin;
  }
  if (int_digits + frac_digits == 0) return bad("no digits");
  Suffix suffix;
  if (!InterpretSuffix(text.substr(pos), &suffix)) {
    return bad("unknown suffix \"" + std::string(text.substr(pos, 16)) +
               "\" (decimal n u m k M G T P E, binary Ki Mi Gi Ti Pi Ei, or an exponent e<int>)");
  }

  MultiplyByPowerOfTwo(digits, suffix.binary_exponent);
  size_t first = 0;
  while (first < digits.size() && digits[first] == 0) ++first;
  digits.erase(digits.begin(), digits.begin() + static_cast<std::ptrdiff_t>(first));

  Quantity q;
  q.format_ = suffix.format;
  if (digits.empty()) return q;  // zero, whatever the sign
  const int64_t n = static_cast<int64_t>(digits.size());
  // value = 0.d1 d2 ... dn * 10^lead: `lead` digits sit before the decimal point.
  const int64_t lead = n + suffix.decimal_exponent - static_cast<int64_t>(frac_digits);
  auto digit_at = [&](int64_t i) -> uint64_t { return i >= 0 && i < n ? digits[static_cast<size_t>(i)] : 0; };
  bool capped = lead > 19;  // >= 10^19 > 2^63 - 1
  if (!capped) {
    uint64_t units = 0;
    for (int64_t i = 0; i < lead; ++i) units = units * 10 + digit_at(i);  // <= 19 digits fit
    uint32_t nanos = 0;
    for (int64_t i = lead; i < lead + 9; ++i) nanos = nanos * 10 + static_cast<uint32_t>(digit_at(i));
    bool remainder = false;
    for (int64_t i = lead + 9 < 0 ? 0 : lead + 9; i < n && !remainder; ++i) remainder = digits[static_cast<size_t>(i)] != 0;
    // Round the magnitude up to the next nano, as the API server does: asking for a sliver of a
    // resource gets some of it, never none.
    if (remainder && ++nanos == kNanosPerUnit) {
      nanos = 0;
      ++units;
    }
    capped = units > kMaxUnits || (units == kMaxUnits && nanos > 0);
    q.units_ = units;
    q.nanos_ = nanos;
  }
  if (capped) {
    q.units_ = kMaxUnits;
    q.nanos_ = 0;
  }
  q.negative_ = negative;
  return q;
}

std::string Quantity::Canonical() const {
  if (units_ == 0 && nanos_ == 0) return "0";
  const std::string sign = negative_ ? "-" : "";
  if (format_ == Format::kBinarySI && units_ >= 1024 && nanos_ == 0) {
    static constexpr const char* kBinary[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    uint64_t mantissa = units_;
    int exponent = 0;
    while (mantissa % 1024 == 0 && exponent < 6) {
      mantissa /= 1024;
      ++exponent;
    }
    return sign + std::to_string(mantissa) + kBinary[exponent];
  }
  // Decimal: the smallest integer mantissa whose power of ten is a multiple of 3.
  std::string nanos = std::to_string(nanos_);
  std::string digits = (units_ == 0 ? "" : std::to_string(units_)) +
                       (units_ == 0 ? nanos : std::string(9 - nanos.size(), '0') + nanos);
  int exponent = -9;
  while (digits.size() > 1 && digits.back() == '0') {
    digits.pop_back();
    ++exponent;
  }
  while (((exponent % 3) + 3) % 3 != 0) {
    digits.push_back('0');
    --exponent;
  }
  if (format_ == Format::kDecimalExponent) {
    return sign + digits + (exponent == 0 ? "" : "e" + std::to_string(exponent));
  }
  static constexpr const char* kDecimal[] = {"n", "u", "m", "", "k", "M", "G", "T", "P", "E"};
  return sign + digits + kDecimal[(exponent + 9) / 3];
}

}  // namespace kubemoe::k8s
