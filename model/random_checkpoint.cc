#include "model/random_checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/safetensors_writer.h"
#include "model/tensor_names.h"

namespace kubemoe {
namespace {

// SplitMix64: tiny, fast and fully specified, so checkpoints are identical on every platform
// (std::normal_distribution is implementation-defined).
struct SplitMix64 {
  uint64_t state;
  uint64_t Next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1]: never 0, so log() below is finite.
  double Uniform() { return (static_cast<double>(Next() >> 11) + 1.0) * 0x1.0p-53; }
};

uint64_t HashName(uint64_t seed, std::string_view name) {
  uint64_t h = 1469598103934665603ULL ^ seed;  // FNV-1a over the name, keyed by the seed
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ULL;
  return h;
}

std::vector<uint8_t> EncodeAs(DType dtype, const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * DTypeSize(dtype));
  if (dtype == DType::kF32) {
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t bits = dtype == DType::kBF16 ? FloatToBf16(values[i]) : FloatToF16(values[i]);
    std::memcpy(bytes.data() + 2 * i, &bits, 2);
  }
  return bytes;
}

Status WriteText(const std::filesystem::path& path, std::string_view text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Unavailable(tmp.string() + ": cannot create file");
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out.flush()) return Unavailable(tmp.string() + ": write failed");
  }
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  if (error) return Unavailable(path.string() + ": rename failed: " + error.message());
  return Status::Ok();
}

}  // namespace

void FillNormal(uint64_t stream, float stddev, float mean, float* out, size_t n) {
  SplitMix64 rng{stream};
  constexpr double kTwoPi = 6.283185307179586;
  for (size_t i = 0; i < n; i += 2) {  // Box-Muller: two samples per pair of uniforms
    const double radius = std::sqrt(-2.0 * std::log(rng.Uniform()));
    const double angle = kTwoPi * rng.Uniform();
    out[i] = mean + stddev * static_cast<float>(radius * std::cos(angle));
    if (i + 1 < n) out[i + 1] = mean + stddev * static_cast<float>(radius * std::sin(angle));
  }
}

Status WriteRandomCheckpoint(const ModelConfig& config, std::string_view tokenizer_json,
                             const RandomCheckpointOptions& options) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::create_directories(options.out_dir, error);
  if (error) return Unavailable(options.out_dir + ": cannot create directory: " + error.message());

  SafetensorsWriter writer;
  writer.SetMetadata("format", "pt");
  const float stddev = static_cast<float>(config.initializer_range);
  for (const TensorSpec& spec : CheckpointTensors(config)) {
    size_t count = 1;
    for (int64_t dim : spec.shape) count *= static_cast<size_t>(dim);
    std::vector<float> values(count, 0.0f);
    const uint64_t stream = HashName(options.seed, spec.name);
    if (spec.role == TensorRole::kWeight) FillNormal(stream, stddev, 0.0f, values.data(), count);
    if (spec.role == TensorRole::kNorm) FillNormal(stream, stddev, 1.0f, values.data(), count);
    KUBEMOE_RETURN_IF_ERROR(
        writer.Add(spec.name, options.dtype, spec.shape, EncodeAs(options.dtype, values)));
  }

  ModelConfig written = config;
  written.torch_dtype = options.dtype == DType::kF32    ? "float32"
                        : options.dtype == DType::kBF16 ? "bfloat16"
                                                        : "float16";
  // Remove what a previous run may have left, so the directory holds exactly one checkpoint.
  for (const auto& entry : fs::directory_iterator(options.out_dir, error)) {
    const std::string file = entry.path().filename().string();
    if (file.ends_with(".safetensors") || file == "model.safetensors.index.json") {
      fs::remove(entry.path(), error);
    }
  }
  if (options.max_shard_bytes == 0) {
    KUBEMOE_RETURN_IF_ERROR(writer.WriteFile(options.out_dir + "/model.safetensors"));
  } else {
    KUBEMOE_RETURN_IF_ERROR(writer.WriteSharded(options.out_dir, options.max_shard_bytes));
  }
  KUBEMOE_RETURN_IF_ERROR(WriteText(fs::path(options.out_dir) / "config.json",
                                    ModelConfigToJson(written)));
  KUBEMOE_RETURN_IF_ERROR(WriteText(fs::path(options.out_dir) / "tokenizer.json", tokenizer_json));
  return Status::Ok();
}

}  // namespace kubemoe
