// The safetensors reader: against files written by the Python package (tests/data/safetensors,
// made by tools/make_safetensors_fixtures.py), and every validation error on hand-made bytes.
#include "model/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/temp_dir.h"

namespace kubemoe {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kFixtures = std::string(KUBEMOE_SOURCE_DIR) + "/tests/data/safetensors/";

// (i - 5) / 3 in f32, the fixture script's ramp().
std::vector<float> Ramp(int n) {
  std::vector<float> v;
  for (int i = 0; i < n; ++i) v.push_back((static_cast<float>(i) - 5.0f) / 3.0f);
  return v;
}

// (i - 8) * 1234.567 in f32, the fixture script's "wide" tensors.
std::vector<float> Wide() {
  std::vector<float> v;
  for (int i = 0; i < 16; ++i) v.push_back((static_cast<float>(i) - 8.0f) * 1234.567f);
  return v;
}

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A unique empty folder per test, removed afterwards.
void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// 8-byte little-endian length + header + `data_bytes` bytes of data (0, 1, 2, ...).
std::vector<uint8_t> MakeFile(const std::string& header, size_t data_bytes) {
  // Reserved up front: GCC 12 at -O3 warns falsely (-Warray-bounds) when insert grows an
  // 8-byte vector.
  std::vector<uint8_t> file;
  file.reserve(8 + header.size() + data_bytes);
  const uint64_t n = header.size();
  for (int b = 0; b < 8; ++b) file.push_back(static_cast<uint8_t>(n >> (8 * b)));
  file.insert(file.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) file.push_back(static_cast<uint8_t>(i));
  return file;
}

StatusOr<SafetensorsHeader> Parse(const std::vector<uint8_t>& file) {
  return ParseSafetensorsHeader(file, file.size(), "test.safetensors");
}

// Expects `status` to have `code` and a message naming each of `parts`.
void ExpectError(const Status& status, StatusCode code, const std::vector<std::string>& parts) {
  EXPECT_EQ(status.code(), code) << status.ToString();
  for (const std::string& part : parts) EXPECT_THAT(status.message(), HasSubstr(part));
}

TEST(SafetensorsFixtures, F32ValuesShapesAndNames) {
  StatusOr<SafetensorsFile> file = SafetensorsFile::Open(kFixtures + "f32.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  std::vector<std::string> names;
  for (const TensorInfo& t : file->tensors()) names.push_back(t.name);
  EXPECT_THAT(names, ElementsAre("bias", "empty", "scalar", "weight"));

  const TensorInfo* weight = file->Find("weight");
  ASSERT_NE(weight, nullptr);
  EXPECT_EQ(weight->dtype, DType::kF32);
  EXPECT_THAT(weight->shape, ElementsAre(3, 4));
  EXPECT_EQ(weight->num_elements(), 12u);
  EXPECT_EQ(weight->num_bytes(), 48u);
  EXPECT_EQ(*file->ReadFloat("weight"), Ramp(12));

  std::vector<float> bias;
  for (int i = 0; i < 4; ++i) bias.push_back(static_cast<float>(i) * 0.5f - 1.0f);
  EXPECT_EQ(*file->ReadFloat("bias"), bias);

  EXPECT_TRUE(file->Find("scalar")->shape.empty());
  EXPECT_EQ(file->Find("scalar")->num_elements(), 1u);
  EXPECT_THAT(*file->ReadFloat("scalar"), ElementsAre(2.5f));

  EXPECT_THAT(file->Find("empty")->shape, ElementsAre(0, 3));
  EXPECT_TRUE(file->ReadFloat("empty")->empty());
  EXPECT_TRUE(file->metadata().empty());
}

TEST(SafetensorsFixtures, Bf16RoundedToNearestEven) {
  StatusOr<SafetensorsFile> file = SafetensorsFile::Open(kFixtures + "bf16.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  for (const auto& [name, exact] : {std::pair{"weight", Ramp(12)}, std::pair{"wide", Wide()}}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(file->Find(name)->dtype, DType::kBF16);
    std::vector<float> got = *file->ReadFloat(name);
    ASSERT_EQ(got.size(), exact.size());
    for (size_t i = 0; i < exact.size(); ++i) {
      // numpy rounded; within half a bf16 ulp (8 significant bits) of the exact value...
      EXPECT_LE(std::fabs(got[i] - exact[i]), std::fabs(exact[i]) * 0x1p-8f) << i;
      // ...and the very value our own rounding picks.
      EXPECT_EQ(got[i], Bf16ToFloat(FloatToBf16(exact[i]))) << i;
    }
  }
}

TEST(SafetensorsFixtures, F16IncludingSubnormals) {
  StatusOr<SafetensorsFile> file = SafetensorsFile::Open(kFixtures + "f16.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  std::vector<float> tiny;
  for (int i = 0; i < 4; ++i) tiny.push_back(static_cast<float>(i) * 1e-6f);
  for (const auto& [name, exact] :
       {std::pair{"weight", Ramp(12)}, std::pair{"wide", Wide()}, std::pair{"tiny", tiny}}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(file->Find(name)->dtype, DType::kF16);
    std::vector<float> got = *file->ReadFloat(name);
    ASSERT_EQ(got.size(), exact.size());
    for (size_t i = 0; i < exact.size(); ++i) {
      // Half an ulp relative (11 significant bits), or half the subnormal spacing 2^-24.
      EXPECT_LE(std::fabs(got[i] - exact[i]), std::max(std::fabs(exact[i]) * 0x1p-11f, 0x1p-25f))
          << i;
      EXPECT_EQ(got[i], F16ToFloat(FloatToF16(exact[i]))) << i;
    }
  }
  EXPECT_GT(file->ReadFloat("tiny")->at(1), 0.0f);  // a subnormal survived
}

TEST(SafetensorsFixtures, MetadataAndMixedDtypes) {
  StatusOr<SafetensorsFile> file = SafetensorsFile::Open(kFixtures + "with_metadata.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->metadata().size(), 2u);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->metadata().at("producer"), "make_safetensors_fixtures.py");

  EXPECT_EQ(*file->ReadFloat("a"), Ramp(4));
  StatusOr<std::span<const uint8_t>> raw = file->TensorBytes("a");
  ASSERT_TRUE(raw.ok());
  std::vector<float> ramp = Ramp(4);
  ASSERT_EQ(raw->size(), 16u);
  EXPECT_EQ(std::memcmp(raw->data(), ramp.data(), 16), 0);

  std::vector<float> b = *file->ReadFloat("b");
  std::vector<float> c = *file->ReadFloat("c");
  ASSERT_EQ(b.size(), 3u);
  ASSERT_EQ(c.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(b[i], Bf16ToFloat(FloatToBf16(Ramp(3)[i])));
    EXPECT_EQ(c[i], F16ToFloat(FloatToF16(Ramp(3)[i])));
  }
}

TEST(SafetensorsFixtures, UnsupportedDtypeNamesTensorAndDtype) {
  const std::string path = kFixtures + "i64.safetensors";
  ExpectError(SafetensorsFile::Open(path).status(), StatusCode::kInvalidArgument,
              {path, "\"ids\"", "I64"});
}

TEST(SafetensorsFile, MissingFileIsNotFound) {
  ExpectError(SafetensorsFile::Open("/nonexistent/x.safetensors").status(), StatusCode::kNotFound,
              {"/nonexistent/x.safetensors"});
}

TEST(SafetensorsFile, UnknownTensorIsNotFound) {
  StatusOr<SafetensorsFile> file = SafetensorsFile::Open(kFixtures + "f32.safetensors");
  ASSERT_TRUE(file.ok());
  ExpectError(file->TensorBytes("nope").status(), StatusCode::kNotFound,
              {"nope", "f32.safetensors"});
  ExpectError(file->ReadFloat("nope").status(), StatusCode::kNotFound, {"nope"});
}

TEST(SafetensorsFile, TruncatedFilesAreDataLoss) {
  TempDir dir;
  const std::vector<uint8_t> whole = ReadBytes(kFixtures + "f32.safetensors");
  ASSERT_GT(whole.size(), 100u);
  // Cut inside the data, inside the header, inside the length, and to nothing.
  for (size_t keep : {whole.size() - 1, size_t{40}, size_t{5}, size_t{0}}) {
    SCOPED_TRACE(keep);
    const std::string path = dir.File("cut" + std::to_string(keep) + ".safetensors");
    WriteBytes(path, std::vector<uint8_t>(whole.begin(), whole.begin() + static_cast<long>(keep)));
    ExpectError(SafetensorsFile::Open(path).status(), StatusCode::kDataLoss, {path});
  }
}

TEST(SafetensorsFile, MoveKeepsTheMappingAlive) {
  StatusOr<SafetensorsFile> opened = SafetensorsFile::Open(kFixtures + "f32.safetensors");
  ASSERT_TRUE(opened.ok());
  SafetensorsFile first = std::move(*opened);
  std::span<const uint8_t> view = *first.TensorBytes("weight");
  SafetensorsFile second = std::move(first);
  EXPECT_EQ(*second.ReadFloat("weight"), Ramp(12));
  EXPECT_EQ(view.data(), second.TensorBytes("weight")->data());
  StatusOr<SafetensorsFile> other = SafetensorsFile::Open(kFixtures + "bf16.safetensors");
  ASSERT_TRUE(other.ok());
  second = std::move(*other);  // unmaps f32, takes bf16
  EXPECT_NE(second.Find("wide"), nullptr);
  EXPECT_EQ(second.Find("bias"), nullptr);
}

TEST(SafetensorsFile, EmptyDataBuffer) {
  TempDir dir;
  const std::string path = dir.File("empty.safetensors");
  WriteBytes(path, MakeFile(R"({"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})", 0));
  StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_TRUE(file->ReadFloat("z")->empty());
}

TEST(SafetensorsHeader, UnalignedHalfTensorBehindAGap) {
  // A one-byte gap puts the BF16 tensor at an odd address; the reader must still decode it.
  std::vector<uint8_t> file =
      MakeFile(R"({"h":{"dtype":"BF16","shape":[2],"data_offsets":[1,5]}})", 0);
  for (uint8_t b : {0x00, 0x80, 0x3f, 0x00, 0x40}) file.push_back(b);  // gap, 1.0, 2.0
  StatusOr<SafetensorsHeader> header = Parse(file);
  ASSERT_TRUE(header.ok()) << header.status().ToString();
  const TensorInfo& h = header->tensors[0];
  std::span<const uint8_t> bytes(file.data() + header->data_offset + h.begin, h.num_bytes());
  EXPECT_THAT(BytesToFloat(h.dtype, bytes), ElementsAre(1.0f, 2.0f));
}

TEST(SafetensorsHeader, AcceptsPaddingGapsEmptyTensorsAndNullMetadata) {
  const std::string header =
      R"({"__metadata__":null,"e":{"dtype":"F16","shape":[3,0],"data_offsets":[2,2]},)"
      R"("a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]}}    )";
  StatusOr<SafetensorsHeader> parsed = Parse(MakeFile(header, 16));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->tensors.size(), 3u);
  EXPECT_EQ(parsed->tensors[0].name, "a");
  EXPECT_EQ(parsed->tensors[2].name, "e");
  EXPECT_EQ(parsed->data_offset, 8 + header.size());
  EXPECT_EQ(parsed->data_bytes, 16u);
  EXPECT_TRUE(parsed->metadata.empty());
}

struct BadHeader {
  const char* what;
  std::string header;
  size_t data_bytes;
  StatusCode code;
  std::vector<std::string> named;
};

class SafetensorsHeaderErrors : public ::testing::TestWithParam<BadHeader> {};

TEST_P(SafetensorsHeaderErrors, GiveCodeAndName) {
  const BadHeader& c = GetParam();
  SCOPED_TRACE(c.what);
  std::vector<std::string> named = c.named;
  named.push_back("test.safetensors");
  ExpectError(Parse(MakeFile(c.header, c.data_bytes)).status(), c.code, named);
}

const StatusCode kLoss = StatusCode::kDataLoss;
INSTANTIATE_TEST_SUITE_P(
    All, SafetensorsHeaderErrors,
    ::testing::Values(
        BadHeader{"bad json", R"({"t":{"dtype":"F32",)", 0, kLoss, {"JSON"}},
        BadHeader{"not an object", R"([1,2])", 0, kLoss, {"object"}},
        BadHeader{"duplicate tensor",
                  R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                  8,
                  kLoss,
                  {"\"t\"", "more than once"}},
        BadHeader{"entry not object", R"({"t":3})", 0, kLoss, {"\"t\""}},
        BadHeader{"missing field",
                  R"({"t":{"dtype":"F32","shape":[1]}})",
                  4,
                  kLoss,
                  {"\"t\"", "data_offsets"}},
        BadHeader{"extra field",
                  R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})",
                  4,
                  kLoss,
                  {"\"t\"", "\"x\""}},
        BadHeader{"dtype not string",
                  R"({"t":{"dtype":1,"shape":[1],"data_offsets":[0,4]}})",
                  4,
                  kLoss,
                  {"\"t\"", "dtype"}},
        BadHeader{"shape not array",
                  R"({"t":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})",
                  4,
                  kLoss,
                  {"\"t\"", "shape"}},
        BadHeader{"negative dim",
                  R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
                  4,
                  kLoss,
                  {"\"t\"", "negative"}},
        BadHeader{"float dim",
                  R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})",
                  4,
                  kLoss,
                  {"\"t\"", "shape[0]"}},
        BadHeader{"three offsets",
                  R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})",
                  8,
                  kLoss,
                  {"\"t\"", "data_offsets"}},
        BadHeader{"begin after end",
                  R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})",
                  8,
                  kLoss,
                  {"\"t\"", "after"}},
        BadHeader{"shape/length mismatch",
                  R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
                  24,
                  kLoss,
                  {"\"w\"", "24 bytes", "20 bytes"}},
        BadHeader{"shape overflow",
                  R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})",
                  0,
                  kLoss,
                  {"\"w\"", "overflow"}},
        BadHeader{"offsets past data",
                  R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  8,
                  kLoss,
                  {"\"w\"", "past the data buffer"}},
        BadHeader{"overlap",
                  R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F16","shape":[2],"data_offsets":[6,10]}})",
                  12,
                  kLoss,
                  {"\"a\"", "\"b\"", "overlaps"}},
        BadHeader{"unsupported dtype",
                  R"({"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})",
                  8,
                  StatusCode::kInvalidArgument,
                  {"\"ids\"", "I64"}},
        BadHeader{"f8 dtype",
                  R"({"q":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})",
                  1,
                  StatusCode::kInvalidArgument,
                  {"\"q\"", "F8_E4M3"}},
        BadHeader{"metadata not object", R"({"__metadata__":[1]})", 0, kLoss, {"__metadata__"}},
        BadHeader{"metadata value not string",
                  R"({"__metadata__":{"k":1}})",
                  0,
                  kLoss,
                  {"__metadata__", "\"k\""}}));

TEST(SafetensorsHeader, LengthErrors) {
  // Too short for the length itself.
  ExpectError(ParseSafetensorsHeader(std::vector<uint8_t>{1, 2, 3}, 3, "s.st").status(), kLoss,
              {"s.st", "too short"});
  // Header length past the end of the file.
  std::vector<uint8_t> file = MakeFile("{}", 0);
  file[0] = 200;
  ExpectError(Parse(file).status(), kLoss, {"test.safetensors", "past the end"});
  // Header length beyond the sanity bound, in a file that would be large enough.
  file[0] = 0;
  file[4] = 1;  // 2^32
  ExpectError(ParseSafetensorsHeader(file, uint64_t{1} << 40, "big.st").status(), kLoss,
              {"big.st", "exceeds"});
  // The caller passed fewer bytes than the header needs.
  std::vector<uint8_t> whole = MakeFile("{}    ", 0);
  ExpectError(ParseSafetensorsHeader(std::span(whole).first(10), whole.size(), "p.st").status(),
              kLoss, {"p.st"});
}

TEST(SafetensorsHeader, EmptyTensorsNeverOverlap) {
  // A zero-byte tensor whose offset falls inside another tensor occupies nothing.
  StatusOr<SafetensorsHeader> parsed =
      Parse(MakeFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                     8));
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
}

}  // namespace
}  // namespace kubemoe
