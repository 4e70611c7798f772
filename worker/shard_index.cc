#include "worker/shard_index.h"

#include <charconv>
#include <string>

namespace kubemoe::worker {
namespace {

bool Absent(std::string_view v) { return v.empty() || v.starts_with("$("); }

StatusOr<int32_t> ParseIndex(std::string_view v, const std::string& what) {
  int32_t index = -1;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), index);
  if (ec != std::errc() || end != v.data() + v.size() || index < 0) {
    return InvalidArgument(what + " \"" + std::string(v) + "\" is not a shard index (0, 1, ...)");
  }
  return index;
}

}  // namespace

StatusOr<int32_t> ResolveShardIndex(std::string_view flag, std::string_view env_index,
                                    std::string_view pod_name) {
  if (!Absent(flag)) return ParseIndex(flag, "--shard-index");
  if (!Absent(env_index)) return ParseIndex(env_index, "KUBEMOE_SHARD_INDEX");
  const size_t dash = pod_name.rfind('-');
  if (!pod_name.empty() && dash != std::string_view::npos) {
    return ParseIndex(pod_name.substr(dash + 1), "the ordinal of KUBEMOE_POD_NAME");
  }
  return InvalidArgument(
      "no shard index: --shard-index and KUBEMOE_SHARD_INDEX are empty and KUBEMOE_POD_NAME (\"" +
      std::string(pod_name) + "\") has no ordinal suffix");
}

}  // namespace kubemoe::worker
