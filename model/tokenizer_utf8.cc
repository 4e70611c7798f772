#include "model/tokenizer_utf8.h"

#include <array>

namespace kubemoe::tokenizer_internal {

Utf8Step DecodeUtf8At(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  Utf8Step step;
  const uint8_t lead = byte(pos);
  if (lead < 0x80) {
    step.code_point = lead;
    step.valid = true;
    return step;
  }
  // Well-formed sequences (Unicode table 3-7): the allowed range of the second byte depends on
  // the lead byte; later bytes are always 80..BF.
  size_t need = 0;
  uint8_t lo = 0x80, hi = 0xBF;
  char32_t cp = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1;
    cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 2;
    cp = lead & 0x0F;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 3;
    cp = lead & 0x07;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return step;  // a byte that never starts a character: one invalid byte
  }
  for (size_t k = 1; k <= need; ++k) {
    if (pos + k >= text.size()) {
      step.length = k;
      step.truncated = true;
      return step;
    }
    const uint8_t b = byte(pos + k);
    const uint8_t min = k == 1 ? lo : 0x80;
    const uint8_t max = k == 1 ? hi : 0xBF;
    if (b < min || b > max) {
      step.length = k;
      return step;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  step.code_point = cp;
  step.length = need + 1;
  step.valid = true;
  return step;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string RepairUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Step step = DecodeUtf8At(text, pos);
    if (step.valid) {
      out.append(text.substr(pos, step.length));
    } else {
      AppendUtf8(0xFFFD, &out);
    }
    pos += step.length;
  }
  return out;
}

bool IsUnicodeWhiteSpace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

namespace {

// GPT-2 keeps printable Latin-1 bytes as themselves and moves the rest to 256, 257, ... in order,
// so every byte becomes a visible character.
struct ByteLevelTables {
  std::array<std::string, 256> to_char;
  std::array<char32_t, 256> code_point{};
  ByteLevelTables() {
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      code_point[b] = printable ? static_cast<char32_t>(b) : next++;
      AppendUtf8(code_point[b], &to_char[b]);
    }
  }
};

const ByteLevelTables& Tables() {
  static const ByteLevelTables tables;
  return tables;
}

}  // namespace

const std::string& ByteLevelChar(uint8_t byte) { return Tables().to_char[byte]; }

std::optional<uint8_t> ByteLevelByte(char32_t cp) {
  if (cp < 256) {
    if (Tables().code_point[cp] == cp) return static_cast<uint8_t>(cp);
    return std::nullopt;
  }
  if (cp >= 256 + 68) return std::nullopt;  // 68 bytes are remapped
  for (int b = 0; b < 256; ++b) {
    if (Tables().code_point[b] == cp) return static_cast<uint8_t>(b);
  }
  return std::nullopt;
}

}  // namespace kubemoe::tokenizer_internal
