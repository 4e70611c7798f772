// The safetensors writer: round trips through our reader, through the Python package's reader,
// and shard layout compared with the checkpoint huggingface_hub split (tests/data/safetensors).
#include "model/safetensors_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "tests/temp_dir.h"

namespace kubemoe {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kFixtures = std::string(KUBEMOE_SOURCE_DIR) + "/tests/data/safetensors/";

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<float> Values(int n, float scale) {
  std::vector<float> v;
  for (int i = 0; i < n; ++i) v.push_back((static_cast<float>(i) - 3.0f) * scale);
  return v;
}

// A writer holding one tensor of each dtype (added out of name order), raw bytes and metadata.
SafetensorsWriter MixedWriter() {
  SafetensorsWriter w;
  EXPECT_TRUE(w.AddFloat("h16", DType::kF16, {5}, Values(5, 0.3f)).ok());
  EXPECT_TRUE(w.AddFloat("b16", DType::kBF16, {3}, Values(3, 0.7f)).ok());
  EXPECT_TRUE(w.AddFloat("f32", DType::kF32, {2, 3}, Values(6, 0.1f)).ok());
  EXPECT_TRUE(w.Add("raw", DType::kF32, {1}, {0x00, 0x00, 0x80, 0x3f}).ok());  // 1.0f
  EXPECT_TRUE(w.AddFloat("empty", DType::kBF16, {0, 4}, {}).ok());
  w.SetMetadata("format", "pt");
  w.SetMetadata("note", "written by kubemoe");
  return w;
}

TEST(SafetensorsWriter, RoundTripThroughOurReader) {
  TempDir dir;
  const std::string path = dir.File("m.safetensors");
  ASSERT_TRUE(MixedWriter().WriteFile(path).ok());
  EXPECT_THAT(dir.Listing(), ElementsAre("m.safetensors"));  // no temporary left behind

  StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->tensors().size(), 5u);
  EXPECT_EQ(*file->ReadFloat("f32"), Values(6, 0.1f));
  EXPECT_THAT(file->Find("f32")->shape, ElementsAre(2, 3));
  EXPECT_THAT(*file->ReadFloat("raw"), ElementsAre(1.0f));
  EXPECT_THAT(file->Find("empty")->shape, ElementsAre(0, 4));
  std::vector<float> h16 = *file->ReadFloat("h16");
  std::vector<float> b16 = *file->ReadFloat("b16");
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(h16[i], F16ToFloat(FloatToF16(Values(5, 0.3f)[i])));
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(b16[i], Bf16ToFloat(FloatToBf16(Values(3, 0.7f)[i])));
  EXPECT_EQ(file->Find("h16")->dtype, DType::kF16);
  EXPECT_EQ(file->Find("b16")->dtype, DType::kBF16);
  EXPECT_EQ(file->metadata().at("note"), "written by kubemoe");

  // Header padded to a multiple of 8, and every tensor aligned to its element size.
  const std::string bytes = ReadText(path);
  uint64_t n = 0;
  for (int b = 7; b >= 0; --b) n = (n << 8) | static_cast<uint8_t>(bytes[b]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes[8 + n - 1] == ' ' || bytes[8 + n - 1] == '}', true);
  for (const TensorInfo& t : file->tensors()) EXPECT_EQ(t.begin % DTypeSize(t.dtype), 0u) << t.name;
}

TEST(SafetensorsWriter, PythonPackageReadsOurFile) {
  const std::string python = KUBEMOE_PYTHON;
  if (python.empty() || ::access(python.c_str(), X_OK) != 0) {
    GTEST_SKIP() << "the test venv's Python \"" << python
                 << "\" is missing; make it with: bash scripts/setup.sh";
  }
  TempDir dir;
  const std::string path = dir.File("m.safetensors");
  const std::string out = dir.File("out.json");
  ASSERT_TRUE(MixedWriter().WriteFile(path).ok());
  // The reference reader reports what it sees as JSON: names, dtypes, shapes, raw bytes in hex.
  const std::string script = dir.File("read.py");
  std::ofstream(script)
      << "import json, sys\n"
         "from safetensors import deserialize, safe_open\n"
         "data = open(sys.argv[1], 'rb').read()\n"
         "tensors = {n: {'dtype': t['dtype'], 'shape': list(t['shape']),\n"
         "               'hex': bytes(t['data']).hex()} for n, t in deserialize(data)}\n"
         "with safe_open(sys.argv[1], framework='numpy') as f:\n"
         "    meta = f.metadata()\n"
         "json.dump({'tensors': tensors, 'metadata': meta}, open(sys.argv[2], 'w'))\n";
  const std::string command = python + " " + script + " " + path + " " + out;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const nlohmann::json seen = nlohmann::json::parse(ReadText(out));

  StatusOr<SafetensorsFile> ours = SafetensorsFile::Open(path);
  ASSERT_TRUE(ours.ok());
  ASSERT_EQ(seen["tensors"].size(), ours->tensors().size());
  for (const TensorInfo& t : ours->tensors()) {
    SCOPED_TRACE(t.name);
    const nlohmann::json& entry = seen["tensors"][t.name];
    EXPECT_EQ(entry["dtype"].get<std::string>(), DTypeName(t.dtype));
    EXPECT_EQ(entry["shape"].get<std::vector<int64_t>>(), t.shape);
    std::string hex;
    char buf[3];
    for (uint8_t b : ours->Bytes(t)) {
      std::snprintf(buf, sizeof buf, "%02x", b);
      hex += buf;
    }
    EXPECT_EQ(entry["hex"].get<std::string>(), hex);
  }
  EXPECT_EQ(seen["metadata"]["format"], "pt");
  EXPECT_EQ(seen["metadata"]["note"], "written by kubemoe");
}

// The fixture checkpoint's tensors, in the order the fixture script built its state dict.
SafetensorsWriter FixtureCheckpointWriter() {
  std::vector<std::string> names;
  for (int layer = 0; layer < 2; ++layer) {
    for (int expert = 0; expert < 4; ++expert) {
      for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
        names.push_back("model.layers." + std::to_string(layer) + ".mlp.experts." +
                        std::to_string(expert) + "." + proj + ".weight");
      }
    }
    if (layer == 0) names.push_back("lm_head.weight");
  }
  SafetensorsWriter w;
  for (size_t t = 0; t < names.size(); ++t) {
    const bool head = names[t] == "lm_head.weight";
    const int n = head ? 64 : 6;
    std::vector<float> v;
    for (int i = 0; i < n; ++i) v.push_back(static_cast<float>(t) + static_cast<float>(i) / 16.0f);
    EXPECT_TRUE(w.AddFloat(names[t], DType::kF32,
                           head ? std::vector<int64_t>{8, 8} : std::vector<int64_t>{2, 3}, v)
                    .ok());
  }
  w.SetMetadata("format", "pt");
  return w;
}

TEST(SafetensorsWriter, ShardsLikeHuggingFace) {
  TempDir dir;
  ASSERT_TRUE(FixtureCheckpointWriter().WriteSharded(dir.path(), 200).ok());
  // Same split and names as huggingface_hub made for the fixture (same order, same limit).
  const nlohmann::json ours = nlohmann::json::parse(ReadText(dir.File(kSafetensorsIndexFile)));
  const nlohmann::json theirs =
      nlohmann::json::parse(ReadText(kFixtures + "sharded/" + kSafetensorsIndexFile));
  EXPECT_EQ(ours, theirs);
  EXPECT_THAT(dir.Listing(),
              ElementsAre("model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                          "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors",
                          "model.safetensors.index.json"));
  // And each shard holds the same bytes under the same names as the fixture's.
  for (const auto& [tensor, shard] : theirs["weight_map"].items()) {
    SCOPED_TRACE(tensor);
    StatusOr<SafetensorsFile> a = SafetensorsFile::Open(dir.File(shard.get<std::string>()));
    StatusOr<SafetensorsFile> b =
        SafetensorsFile::Open(kFixtures + "sharded/" + shard.get<std::string>());
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a->ReadFloat(tensor), *b->ReadFloat(tensor));
  }
}

TEST(SafetensorsWriter, OneShardIsASingleFileAndStaleLayoutsGo) {
  TempDir dir;
  SafetensorsWriter w = FixtureCheckpointWriter();
  ASSERT_TRUE(w.WriteSharded(dir.path(), 200).ok());
  ASSERT_TRUE(w.WriteSharded(dir.path(), 1 << 20).ok());  // all fits: model.safetensors, no index
  std::vector<std::string> listing = dir.Listing();
  EXPECT_EQ(std::count(listing.begin(), listing.end(), kSafetensorsIndexFile), 0);
  EXPECT_EQ(std::count(listing.begin(), listing.end(), kSafetensorsSingleFile), 1);
  StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_EQ(ckpt->TensorNames().size(), 25u);

  ASSERT_TRUE(w.WriteSharded(dir.path(), 200).ok());  // and back: the single file goes
  listing = dir.Listing();
  EXPECT_EQ(std::count(listing.begin(), listing.end(), kSafetensorsSingleFile), 0);
  EXPECT_EQ(std::count(listing.begin(), listing.end(), kSafetensorsIndexFile), 1);
}

TEST(SafetensorsWriter, CreatesMissingFolderForShards) {
  TempDir dir;
  const std::string nested = dir.File("a/b");
  ASSERT_TRUE(FixtureCheckpointWriter().WriteSharded(nested, 200).ok());
  StatusOr<Checkpoint> ckpt = Checkpoint::Open(nested);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_EQ(ckpt->ShardFiles().size(), 4u);
}

TEST(SafetensorsWriter, EmptyWriterWritesAValidFile) {
  TempDir dir;
  ASSERT_TRUE(SafetensorsWriter().WriteFile(dir.File("e.safetensors")).ok());
  StatusOr<SafetensorsFile> file = SafetensorsFile::Open(dir.File("e.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_TRUE(file->tensors().empty());
}

TEST(SafetensorsWriter, BadAddsAreRejectedAndRemembered) {
  SafetensorsWriter w;
  Status s = w.Add("w", DType::kF32, {2, 2}, std::vector<uint8_t>(15));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("\"w\""));
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.AddFloat("n", DType::kF32, {-1}, {}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddFloat("v", DType::kBF16, {3}, {1, 2}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddFloat("__metadata__", DType::kF32, {1}, {1}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddFloat("", DType::kF32, {1}, {1}).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(w.AddFloat("ok", DType::kF32, {1}, {1}).ok());
  EXPECT_EQ(w.AddFloat("ok", DType::kF32, {1}, {1}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.AddFloat("big", DType::kF32, {int64_t{1} << 62, 8}, {1}).code(),
            StatusCode::kInvalidArgument);

  TempDir dir;
  Status write = w.WriteFile(dir.File("x.safetensors"));
  EXPECT_EQ(write.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(write.message(), HasSubstr("\"w\""));  // the first error
  EXPECT_EQ(w.WriteSharded(dir.path(), 100).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(dir.Listing().empty());
}

TEST(SafetensorsWriter, UnwritableFolderFailsCleanly) {
  TempDir dir;
  SafetensorsWriter w;
  ASSERT_TRUE(w.AddFloat("x", DType::kF32, {1}, {1}).ok());
  Status s = w.WriteFile(dir.File("missing/x.safetensors"));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("x.safetensors"));
  EXPECT_TRUE(dir.Listing().empty());
}

TEST(SafetensorsWriter, OverwriteReplacesWholeFile) {
  TempDir dir;
  const std::string path = dir.File("m.safetensors");
  ASSERT_TRUE(MixedWriter().WriteFile(path).ok());
  SafetensorsWriter small;
  ASSERT_TRUE(small.AddFloat("only", DType::kF32, {1}, {4.0f}).ok());
  ASSERT_TRUE(small.WriteFile(path).ok());
  StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->tensors().size(), 1u);
  EXPECT_THAT(dir.Listing(), ElementsAre("m.safetensors"));
}

}  // namespace
}  // namespace kubemoe
