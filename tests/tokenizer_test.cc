// Tests of kubemoe::Tokenizer against golden encodings from the Python `tokenizers` package
// (tests/data/tokenizer, made by tools/train_test_tokenizer.py) and its loader's error handling.
#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace kubemoe {
namespace {

using nlohmann::json;

const std::string kDataDir = std::string(KUBEMOE_SOURCE_DIR) + "/tests/data/tokenizer/";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

const Tokenizer& Committed() {
  static const Tokenizer* tokenizer = [] {
    StatusOr<Tokenizer> loaded = Tokenizer::FromFile(kDataDir + "tokenizer.json");
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    return new Tokenizer(std::move(loaded).value());
  }();
  return *tokenizer;
}

json Golden() { return json::parse(ReadFile(kDataDir + "golden.json")); }

TEST(TokenizerGolden, EncodingsAndDecodingsMatchThePythonPackage) {
  const json golden = Golden();
  ASSERT_GE(golden["cases"].size(), 30u);
  for (const json& c : golden["cases"]) {
    const std::string text = c["text"];
    SCOPED_TRACE("text: " + text);
    EXPECT_EQ(Committed().Encode(text, false), c["ids"].get<std::vector<int32_t>>());
    const auto with_special = c["ids_with_special"].get<std::vector<int32_t>>();
    EXPECT_EQ(Committed().Encode(text, true), with_special);
    EXPECT_EQ(Committed().Decode(with_special, false), c["decoded"].get<std::string>());
    EXPECT_EQ(Committed().Decode(with_special, true), c["decoded_skip_special"].get<std::string>());
  }
}

TEST(TokenizerGolden, VocabAndSpecialIds) {
  const json golden = Golden();
  EXPECT_EQ(Committed().VocabSize(), golden["vocab_size"].get<int32_t>());
  ASSERT_TRUE(Committed().BosId().has_value());
  ASSERT_TRUE(Committed().EosId().has_value());
  EXPECT_EQ(*Committed().BosId(), golden["bos_id"].get<int32_t>());
  EXPECT_EQ(*Committed().EosId(), golden["eos_id"].get<int32_t>());
  EXPECT_EQ(Committed().TokenId("<｜end▁of▁sentence｜>"), Committed().EosId());
  EXPECT_TRUE(Committed().IsSpecial(*Committed().BosId()));
  EXPECT_FALSE(Committed().IsSpecial(*Committed().TokenId("<｜fim▁hole｜>")));
  EXPECT_EQ(Committed().TokenText(*Committed().EosId()), "<｜end▁of▁sentence｜>");
  EXPECT_FALSE(Committed().TokenId("no such token").has_value());
  EXPECT_FALSE(Committed().TokenText(-1).has_value());
  EXPECT_FALSE(Committed().TokenText(Committed().VocabSize()).has_value());
}

TEST(TokenizerStreaming, TokenBytesConcatenateToTheText) {
  for (const json& c : Golden()["cases"]) {
    const std::string text = c["text"];
    std::string streamed, pending;
    for (int32_t id : Committed().Encode(text, false)) {
      pending += Committed().TokenBytes(id);
      const size_t ready = CompleteUtf8Prefix(pending);
      streamed += pending.substr(0, ready);
      pending.erase(0, ready);
    }
    EXPECT_TRUE(pending.empty()) << text;
    EXPECT_EQ(streamed + pending, text);
  }
  EXPECT_EQ(Committed().TokenBytes(-5), "");
}

TEST(TokenizerStreaming, CompleteUtf8Prefix) {
  EXPECT_EQ(CompleteUtf8Prefix(""), 0u);
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xE4\xB8"), 1u);  // 中 is E4 B8 AD
  EXPECT_EQ(CompleteUtf8Prefix("a\xE4\xB8\xAD"), 4u);
  EXPECT_EQ(CompleteUtf8Prefix("\xF0\x9F\x98"), 0u);  // 😀 is F0 9F 98 80
  EXPECT_EQ(CompleteUtf8Prefix("x\xFF"), 2u);         // never valid: nothing to wait for
  EXPECT_EQ(CompleteUtf8Prefix("x\xE4\x41"), 3u);     // broken, not incomplete
}

TEST(TokenizerInvalidUtf8, BytesRoundTripAndDecodeRepairs) {
  const std::vector<std::string> inputs = {"\xFF",
                                           "abc\xC3",
                                           "\xE4\xB8 x",
                                           "ok \xED\xA0\x80 surrogate",
                                           "\xF4\x90\x80\x80",
                                           std::string("nul\0byte", 8),
                                           "<｜User｜>\xC0\xAF<｜Assistant｜>"};
  for (const std::string& input : inputs) {
    const std::vector<int32_t> ids = Committed().Encode(input, false);
    EXPECT_EQ(Committed().DecodeBytes(ids, false), input);
  }
  // Each maximal invalid subsequence becomes one U+FFFD (the Python/Rust rule).
  const std::vector<int32_t> ids = Committed().Encode("a\xE4\xB8 b\xFF\xFE", false);
  EXPECT_EQ(Committed().Decode(ids, false), "a\xEF\xBF\xBD b\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(TokenizerPerformance, LongInputsAreNotQuadratic) {
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& text : {std::string(200000, 'a'), std::string(100000, ' ') + "x",
                                  std::string(100000, '9'), std::string(50000, '\n') + "y"}) {
    const std::vector<int32_t> ids = Committed().Encode(text, false);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(Committed().DecodeBytes(ids, false), text);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 20.0) << "long inputs should take well under a second each";
}

TEST(TokenizerThreads, ConcurrentEncodesAgree) {
  std::vector<std::string> texts;
  for (const json& c : Golden()["cases"]) texts.push_back(c["text"]);
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& text : texts) expected.push_back(Committed().Encode(text, true));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          if (Committed().Encode(texts[i], true) != expected[i]) ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

// A small hand-made tokenizer.json for loader and error tests.
json Minimal() {
  return json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null, "normalizer": null,
    "added_tokens": [{"id": 5, "content": "<s>", "special": true, "single_word": false,
                      "lstrip": false, "rstrip": false, "normalized": false}],
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [5], "tokens": ["<s>"]}}},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false,
              "byte_fallback": false, "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3, "abc": 4},
              "merges": ["a b", ["ab", "c"]]}})");
}

StatusOr<Tokenizer> Load(const json& spec) { return Tokenizer::FromJson(spec.dump(), "test.json"); }

void ExpectError(const json& spec, StatusCode code, const std::string& needle) {
  StatusOr<Tokenizer> loaded = Load(spec);
  ASSERT_FALSE(loaded.ok()) << "expected an error mentioning " << needle;
  EXPECT_EQ(loaded.status().code(), code) << loaded.status().ToString();
  EXPECT_NE(loaded.status().message().find(needle), std::string::npos)
      << loaded.status().ToString();
  EXPECT_NE(loaded.status().message().find("test.json"), std::string::npos);
}

TEST(TokenizerLoad, MinimalSpecWithBothMergeForms) {
  StatusOr<Tokenizer> loaded = Load(Minimal());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  // "abc" merges a+b (rank 0) then ab+c (rank 1); "ba" has no merge; "x" is not in the vocab and
  // without unk it is dropped, as in the Python package.
  EXPECT_EQ(loaded->Encode("abc", false), (std::vector<int32_t>{4}));
  EXPECT_EQ(loaded->Encode("abc", true), (std::vector<int32_t>{5, 4}));
  EXPECT_EQ(loaded->Encode("bax", false), (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(loaded->Encode("<s>ab", false), (std::vector<int32_t>{5, 2}));
  EXPECT_EQ(loaded->Decode({5, 4, 1}, false), "<s>abcb");
  EXPECT_EQ(loaded->Decode({5, 4, 1, 99}, true), "abcb");
  EXPECT_EQ(loaded->BosId(), 5);
  EXPECT_EQ(loaded->VocabSize(), 6);
}

// A crafted file with Sequences nested 200,000 deep (pre-tokenizer and post-processor) used to
// overflow the stack through the loader's recursion; it is refused with the field named.
TEST(TokenizerLoad, DeeplyNestedSequencesAreRefusedNotRecursedInto) {
  const int depth = 200000;
  for (const std::string component : {"pre_tokenizer", "post_processor"}) {
    const std::string list = component == "pre_tokenizer" ? "pretokenizers" : "processors";
    json spec = Minimal();
    spec.erase(component);
    std::string nested;
    for (int i = 0; i < depth; ++i) nested += "{\"type\": \"Sequence\", \"" + list + "\": [";
    nested += "{\"type\": \"ByteLevel\"}";
    for (int i = 0; i < depth; ++i) nested += "]}";
    std::string text = spec.dump();
    text.insert(text.size() - 1, ", \"" + component + "\": " + nested);
    StatusOr<Tokenizer> loaded = Tokenizer::FromJson(text, "deep.json");
    ASSERT_FALSE(loaded.ok()) << component;
    EXPECT_NE(loaded.status().message().find("nested deeper than 16"), std::string::npos)
        << loaded.status().ToString();
    EXPECT_NE(loaded.status().message().find(component), std::string::npos);
  }
}

TEST(TokenizerLoad, MalformedJson) {
  StatusOr<Tokenizer> loaded = Tokenizer::FromJson("{\"model\": [", "broken.json");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(loaded.status().message().find("broken.json"), std::string::npos);
  EXPECT_NE(loaded.status().message().find("parse"), std::string::npos);
  ExpectError(json::array(), StatusCode::kInvalidArgument, "top level");
}

TEST(TokenizerLoad, MissingFile) {
  StatusOr<Tokenizer> loaded = Tokenizer::FromFile("/nonexistent/tokenizer.json");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kNotFound);
  EXPECT_NE(loaded.status().message().find("/nonexistent/tokenizer.json"), std::string::npos);
}

TEST(TokenizerLoad, MergesMustNameVocabTokens) {
  json spec = Minimal();
  spec["model"]["merges"] = {"a zz"};
  ExpectError(spec, StatusCode::kInvalidArgument, "model.merges[0]: token 'zz'");
  spec["model"]["merges"] = {"a b", "b c"};
  ExpectError(spec, StatusCode::kInvalidArgument, "model.merges[1]: merged token 'bc'");
  spec["model"]["merges"] = {"a b c"};
  ExpectError(spec, StatusCode::kInvalidArgument, "model.merges[0]");
  spec["model"]["merges"] = {json::array({"a"})};
  ExpectError(spec, StatusCode::kInvalidArgument, "model.merges[0]");
}

TEST(TokenizerLoad, WrongTypesNameTheField) {
  json spec = Minimal();
  spec["model"]["vocab"]["a"] = "zero";
  ExpectError(spec, StatusCode::kInvalidArgument, "model.vocab['a']");
  spec = Minimal();
  spec["model"]["vocab"]["ab"] = 0;
  ExpectError(spec, StatusCode::kInvalidArgument, "id 0 is used by both");
  spec = Minimal();
  spec["model"]["vocab"] = json::array();
  ExpectError(spec, StatusCode::kInvalidArgument, "model.vocab");
  spec = Minimal();
  spec["model"]["merges"] = "a b";
  ExpectError(spec, StatusCode::kInvalidArgument, "model.merges");
  spec = Minimal();
  spec["added_tokens"][0]["special"] = "yes";
  ExpectError(spec, StatusCode::kInvalidArgument, "added_tokens[0].special");
  spec = Minimal();
  spec["added_tokens"].push_back({{"id", 5}, {"content", "</s>"}});
  ExpectError(spec, StatusCode::kInvalidArgument, "added_tokens[1].id");
  spec = Minimal();
  spec["added_tokens"][0]["id"] = 0;
  ExpectError(spec, StatusCode::kInvalidArgument, "belongs to 'a' in model.vocab");
  spec = Minimal();
  spec["pre_tokenizer"]["use_regex"] = 1;
  ExpectError(spec, StatusCode::kInvalidArgument, "pre_tokenizer.use_regex");
  spec = Minimal();
  spec["model"]["unk_token"] = "<unk>";
  ExpectError(spec, StatusCode::kInvalidArgument, "model.unk_token");
  spec = Minimal();
  spec["post_processor"]["single"][0]["SpecialToken"]["id"] = "<bos>";
  ExpectError(spec, StatusCode::kInvalidArgument, "post_processor.single[0]");
}

TEST(TokenizerLoad, UnsupportedComponentsAreRefused) {
  json spec = Minimal();
  spec["normalizer"] = {{"type", "NFC"}};
  ExpectError(spec, StatusCode::kUnimplemented, "normalizer");
  spec = Minimal();
  spec["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "Lowercase"}}}}};
  ExpectError(spec, StatusCode::kUnimplemented, "normalizer");
  spec = Minimal();
  spec["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Whitespace"}}}}};
  ExpectError(spec, StatusCode::kUnimplemented,
              "pre_tokenizer.pretokenizers[0]: type 'Whitespace'");
  spec = Minimal();
  spec["pre_tokenizer"] = {{"type", "Sequence"},
                           {"pretokenizers", {{{"type", "ByteLevel"}}, {{"type", "ByteLevel"}}}}};
  ExpectError(spec, StatusCode::kUnimplemented, "after ByteLevel");
  spec = Minimal();
  spec["pre_tokenizer"] = {{"type", "Split"},
                           {"pattern", {{"Regex", "(unclosed"}}},
                           {"behavior", "Isolated"},
                           {"invert", false}};
  ExpectError(spec, StatusCode::kInvalidArgument, "pre_tokenizer.pattern.Regex");
  spec["pre_tokenizer"]["pattern"] = {{"Regex", "a"}};
  spec["pre_tokenizer"]["behavior"] = "Sideways";
  ExpectError(spec, StatusCode::kInvalidArgument, "pre_tokenizer.behavior");
  spec = Minimal();
  spec["decoder"] = {{"type", "WordPiece"}};
  ExpectError(spec, StatusCode::kUnimplemented, "decoder");
  spec = Minimal();
  spec["post_processor"] = {{"type", "BertProcessing"}};
  ExpectError(spec, StatusCode::kUnimplemented, "post_processor");
  spec = Minimal();
  spec["model"]["type"] = "WordPiece";
  ExpectError(spec, StatusCode::kUnimplemented, "model.type");
  spec = Minimal();
  spec["model"]["dropout"] = 0.1;
  ExpectError(spec, StatusCode::kUnimplemented, "model.dropout");
  spec = Minimal();
  spec["truncation"] = {{"max_length", 8}};
  ExpectError(spec, StatusCode::kUnimplemented, "truncation");
}

TEST(TokenizerLoad, EmbeddedCopyLoadsFromAString) {
  StatusOr<Tokenizer> loaded =
      Tokenizer::FromJson(ReadFile(kDataDir + "tokenizer.json"), "<embedded>");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->Encode("Hello world", true), Committed().Encode("Hello world", true));
}

}  // namespace
}  // namespace kubemoe
