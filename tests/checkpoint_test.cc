// Checkpoint directories: the sharded fixture written by huggingface_hub + safetensors
// (tests/data/safetensors/sharded), lazy shard opening, and every index error.
#include "model/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "model/safetensors_writer.h"
#include "tests/temp_dir.h"

namespace kubemoe {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kSharded = std::string(KUBEMOE_SOURCE_DIR) + "/tests/data/safetensors/sharded";
const std::string kFixtures = std::string(KUBEMOE_SOURCE_DIR) + "/tests/data/safetensors/";

// A private copy of the sharded fixture that a test may damage.
void CopySharded(const TempDir& dir) {
  for (const auto& e : fs::directory_iterator(kSharded)) {
    fs::copy_file(e.path(), dir.File(e.path().filename().string()));
  }
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

void Replace(std::string* text, const std::string& from, const std::string& to) {
  const size_t at = text->find(from);
  ASSERT_NE(at, std::string::npos) << from;
  text->replace(at, from.size(), to);
}

// The fixture's tensor names in the order the script made them; tensor t holds t + i / 16.
std::vector<std::string> FixtureOrder() {
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
  return names;
}

std::vector<float> FixtureValues(size_t t, size_t n) {
  std::vector<float> v;
  for (size_t i = 0; i < n; ++i) v.push_back(static_cast<float>(t) + static_cast<float>(i) / 16.0f);
  return v;
}

TEST(Checkpoint, ShardedFixtureNamesAndValues) {
  StatusOr<Checkpoint> ckpt = Checkpoint::Open(kSharded);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  std::vector<std::string> expected = FixtureOrder();
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ckpt->TensorNames(), expected);
  EXPECT_EQ(ckpt->ShardFiles().size(), 4u);

  const std::vector<std::string> order = FixtureOrder();
  for (size_t t = 0; t < order.size(); ++t) {
    SCOPED_TRACE(order[t]);
    StatusOr<TensorInfo> info = ckpt->Info(order[t]);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->dtype, DType::kF32);
    const bool head = order[t] == "lm_head.weight";
    EXPECT_EQ(info->shape, head ? std::vector<int64_t>({8, 8}) : std::vector<int64_t>({2, 3}));
    EXPECT_EQ(*ckpt->ReadFloat(order[t]), FixtureValues(t, head ? 64 : 6));
    EXPECT_EQ(ckpt->Tensor(order[t])->size(), info->num_bytes());
  }
  EXPECT_EQ(ckpt->ShardsOpened(), 4u);
}

TEST(Checkpoint, OpensShardsLazily) {
  StatusOr<Checkpoint> ckpt = Checkpoint::Open(kSharded);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_EQ(ckpt->ShardsOpened(), 0u);
  EXPECT_TRUE(ckpt->Has("lm_head.weight"));
  EXPECT_FALSE(ckpt->Has("lm_head.bias"));
  ckpt->TensorNames();
  EXPECT_EQ(ckpt->ShardsOpened(), 0u);  // listing needs only the index

  // lm_head has a shard of its own (it is larger than the shard limit).
  ASSERT_TRUE(ckpt->ReadFloat("lm_head.weight").ok());
  EXPECT_EQ(ckpt->ShardsOpened(), 1u);
  // Layer 0 experts 0..1 (and 2's gate/up) share the first shard.
  ASSERT_TRUE(ckpt->Info("model.layers.0.mlp.experts.0.gate_proj.weight").ok());
  EXPECT_EQ(ckpt->ShardsOpened(), 2u);
  ASSERT_TRUE(ckpt->Tensor("model.layers.0.mlp.experts.1.down_proj.weight").ok());
  ASSERT_TRUE(ckpt->ReadFloat("model.layers.0.mlp.experts.2.up_proj.weight").ok());
  EXPECT_EQ(ckpt->ShardsOpened(), 2u);
  // An unknown name opens nothing.
  EXPECT_EQ(ckpt->Info("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ckpt->ShardsOpened(), 2u);
}

TEST(Checkpoint, ConcurrentReadersOpenEachShardOnce) {
  StatusOr<Checkpoint> ckpt = Checkpoint::Open(kSharded);
  ASSERT_TRUE(ckpt.ok());
  const std::vector<std::string> order = FixtureOrder();
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 8; ++k) {
    threads.emplace_back([&, k] {
      for (size_t j = 0; j < order.size(); ++j) {
        const size_t t = (j + static_cast<size_t>(k) * 3) % order.size();
        const size_t n = order[t] == "lm_head.weight" ? 64 : 6;
        StatusOr<std::vector<float>> v = ckpt->ReadFloat(order[t]);
        if (!v.ok() || *v != FixtureValues(t, n)) ++wrong;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(ckpt->ShardsOpened(), 4u);
}

TEST(Checkpoint, SingleFile) {
  TempDir dir;
  fs::copy_file(kFixtures + "f32.safetensors", dir.File(kSafetensorsSingleFile));
  StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  EXPECT_THAT(ckpt->TensorNames(), ElementsAre("bias", "empty", "scalar", "weight"));
  EXPECT_THAT(ckpt->ShardFiles(), ElementsAre(kSafetensorsSingleFile));
  EXPECT_EQ(ckpt->ShardsOpened(), 1u);
  EXPECT_THAT(*ckpt->ReadFloat("scalar"), ElementsAre(2.5f));
  EXPECT_THAT(ckpt->Info("weight")->shape, ElementsAre(3, 4));
}

TEST(Checkpoint, MoveKeepsViews) {
  StatusOr<Checkpoint> opened = Checkpoint::Open(kSharded);
  ASSERT_TRUE(opened.ok());
  Checkpoint a = std::move(*opened);
  std::span<const uint8_t> view = *a.Tensor("lm_head.weight");
  Checkpoint b = std::move(a);
  EXPECT_EQ(b.Tensor("lm_head.weight")->data(), view.data());
  EXPECT_EQ(b.ShardsOpened(), 1u);
}

TEST(Checkpoint, EmptyFolderListsWhatWasLookedFor) {
  TempDir dir;
  Status s = Checkpoint::Open(dir.path()).status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr(kSafetensorsSingleFile));
  EXPECT_THAT(s.message(), HasSubstr(kSafetensorsIndexFile));
  EXPECT_THAT(s.message(), HasSubstr(dir.path()));
}

TEST(Checkpoint, MissingShardIsNamed) {
  TempDir dir;
  CopySharded(dir);
  fs::remove(dir.File("model-00003-of-00004.safetensors"));
  Status s = Checkpoint::Open(dir.path()).status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("model-00003-of-00004.safetensors"));
}

TEST(Checkpoint, IndexNamingATensorAbsentFromItsShard) {
  TempDir dir;
  CopySharded(dir);
  // Claim lm_head lives in shard 1; it really is in shard 2.
  std::string index = ReadText(dir.File(kSafetensorsIndexFile));
  Replace(&index, R"("lm_head.weight": "model-00002-of-00004.safetensors")",
          R"("lm_head.weight": "model-00001-of-00004.safetensors")");
  WriteText(dir.File(kSafetensorsIndexFile), index);

  StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();  // shards are checked when opened
  Status s = ckpt->Info("lm_head.weight").status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("lm_head.weight"));
  EXPECT_THAT(s.message(), HasSubstr("model-00001-of-00004.safetensors"));
  // The whole shard is refused, not only the missing tensor, and it is not left open.
  EXPECT_EQ(ckpt->ReadFloat("model.layers.0.mlp.experts.0.up_proj.weight").status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(ckpt->ShardsOpened(), 0u);
  // Other shards still work.
  EXPECT_TRUE(ckpt->ReadFloat("model.layers.1.mlp.experts.3.up_proj.weight").ok());
}

TEST(Checkpoint, CorruptShardFailsOnAccessNamingIt) {
  TempDir dir;
  CopySharded(dir);
  const std::string shard = dir.File("model-00002-of-00004.safetensors");
  fs::resize_file(shard, fs::file_size(shard) - 10);
  StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir.path());
  ASSERT_TRUE(ckpt.ok());
  Status s = ckpt->ReadFloat("lm_head.weight").status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("model-00002-of-00004.safetensors"));
  EXPECT_THAT(s.message(), HasSubstr("lm_head.weight"));
  EXPECT_EQ(ckpt->ShardsOpened(), 0u);
}

TEST(Checkpoint, BadIndexFiles) {
  struct Case {
    std::string text;
    StatusCode code;
    std::string named;
  };
  for (const Case& c : {
           Case{"{not json", StatusCode::kDataLoss, kSafetensorsIndexFile},
           Case{"[]", StatusCode::kDataLoss, kSafetensorsIndexFile},
           Case{R"({"metadata": {}})", StatusCode::kDataLoss, "weight_map"},
           Case{R"({"weight_map": {"w": 3}})", StatusCode::kDataLoss, "\"w\""},
           Case{R"({"weight_map": {"w": "../model.safetensors"}})", StatusCode::kInvalidArgument,
                "\"w\""},
           Case{R"({"weight_map": {"w": "gone.safetensors"}})", StatusCode::kNotFound,
                "gone.safetensors"},
       }) {
    SCOPED_TRACE(c.text);
    TempDir dir;
    WriteText(dir.File(kSafetensorsIndexFile), c.text);
    Status s = Checkpoint::Open(dir.path()).status();
    EXPECT_EQ(s.code(), c.code) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr(c.named));
  }
}

TEST(Checkpoint, IndexTakesPrecedenceOverSingleFile) {
  TempDir dir;
  CopySharded(dir);
  fs::copy_file(kFixtures + "f32.safetensors", dir.File(kSafetensorsSingleFile));
  StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir.path());
  ASSERT_TRUE(ckpt.ok());
  EXPECT_TRUE(ckpt->Has("lm_head.weight"));
  EXPECT_FALSE(ckpt->Has("bias"));
}

}  // namespace
}  // namespace kubemoe
