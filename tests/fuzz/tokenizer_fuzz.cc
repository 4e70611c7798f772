// Fuzz target for the tokenizer. The first input byte picks what the rest is:
//   even: a tokenizer.json text to load (and, when it loads, to encode and decode with);
//   odd:  text to encode with the committed tokenizer (tests/data/tokenizer/tokenizer.json), whose
//         ids must decode back to exactly the input bytes, and ids to decode.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer.h"

namespace {

const kubemoe::Tokenizer& Committed() {
  static const kubemoe::Tokenizer* tokenizer = [] {
    // The source tree's path comes from CMake: __FILE__ may be relative (ccache's base_dir
    // rewrites it), which broke the replay when run from the build directory.
    std::string path = std::string(KUBEMOE_SOURCE_DIR) + "/tests/data/tokenizer/tokenizer.json";
    if (const char* env = std::getenv("KUBEMOE_TOKENIZER_JSON")) path = env;
    auto loaded = kubemoe::Tokenizer::FromFile(path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "cannot load %s: %s\n", path.c_str(),
                   loaded.status().ToString().c_str());
      std::abort();
    }
    return new kubemoe::Tokenizer(std::move(loaded).value());
  }();
  return *tokenizer;
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

void EncodeAndDecode(const kubemoe::Tokenizer& tokenizer, std::string_view text,
                     bool must_round_trip) {
  const std::vector<int32_t> ids = tokenizer.Encode(text, false);
  const std::vector<int32_t> with_special = tokenizer.Encode(text, true);
  Check(with_special.size() >= ids.size(), "special tokens only add ids");
  for (int32_t id : with_special) Check(id >= 0 && id < tokenizer.VocabSize(), "ids in range");
  const std::string bytes = tokenizer.DecodeBytes(ids, false);
  if (must_round_trip) Check(bytes == text, "byte-level encode/decode round trip");
  tokenizer.Decode(with_special, true);
  Check(kubemoe::CompleteUtf8Prefix(bytes) <= bytes.size(), "prefix within bounds");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    auto loaded = kubemoe::Tokenizer::FromJson(rest, "<fuzz>");
    if (loaded.ok()) {
      EncodeAndDecode(*loaded, "Hello wörld 123 <s> 中文 😀 \xFF", false);
      EncodeAndDecode(*loaded, rest.substr(0, 256), false);
    } else {
      Check(!loaded.status().message().empty(), "errors carry a message");
    }
    return 0;
  }
  EncodeAndDecode(Committed(), rest, true);
  // The same bytes read as little-endian 16-bit ids, many of them unknown.
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < rest.size(); i += 2) {
    ids.push_back(static_cast<int16_t>(static_cast<uint8_t>(rest[i]) |
                                       (static_cast<uint8_t>(rest[i + 1]) << 8)));
  }
  Committed().Decode(ids, false);
  for (int32_t id : ids) Committed().TokenBytes(id);
  return 0;
}
