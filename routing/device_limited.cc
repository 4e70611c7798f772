#include "routing/device_limited.h"

#include <bit>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "routing/topk.h"

namespace kubemoe::routing {
namespace {

constexpr uint64_t kMaxEnumeratedSets = uint64_t{1} << 20;

// C(n, k), saturated just above kMaxEnumeratedSets so it cannot overflow.
uint64_t CappedBinomial(int32_t n, int32_t k) {
  uint64_t c = 1;
  for (int32_t i = 1; i <= k; ++i) {
    c = c * static_cast<uint64_t>(n - k + i) / static_cast<uint64_t>(i);
    if (c > kMaxEnumeratedSets) return kMaxEnumeratedSets + 1;
  }
  return c;
}

// Depth-first walk over the device sets of size `limit`, carrying the union of hosted experts as
// bit words. Records the first set whose union has fewer than top_k experts.
struct CoverageSearch {
  int32_t num_devices;
  int32_t limit;
  int32_t top_k;
  size_t words;
  std::vector<uint64_t> hosted;       // num_devices x words
  std::vector<uint64_t> union_stack;  // (limit + 1) x words
  std::vector<int32_t> chosen;
  std::vector<int32_t> failing;
  int32_t failing_count = 0;

  bool Search(int32_t depth, int32_t first) {
    const uint64_t* acc = &union_stack[static_cast<size_t>(depth) * words];
    if (depth == limit) {
      int32_t count = 0;
      for (size_t w = 0; w < words; ++w) count += std::popcount(acc[w]);
      if (count >= top_k) return true;
      failing = chosen;
      failing_count = count;
      return false;
    }
    uint64_t* next = &union_stack[static_cast<size_t>(depth + 1) * words];
    for (int32_t d = first; d <= num_devices - (limit - depth); ++d) {
      const uint64_t* dev = &hosted[static_cast<size_t>(d) * words];
      for (size_t w = 0; w < words; ++w) next[w] = acc[w] | dev[w];
      chosen[static_cast<size_t>(depth)] = d;
      if (!Search(depth + 1, d + 1)) return false;
    }
    return true;
  }
};

}  // namespace

Status ValidateDeviceLimit(const DevicePlacement& placement, int32_t num_experts, int32_t top_k,
                           int32_t device_limit) {
  if (device_limit < 1 || device_limit > placement.num_devices) {
    return InvalidArgument(
        "routing.deviceLimit must be in [1, num_devices=" + std::to_string(placement.num_devices) +
        "], got " + std::to_string(device_limit));
  }
  if (CappedBinomial(placement.num_devices, device_limit) > kMaxEnumeratedSets) {
    return Status::Ok();  // too many sets to prove it here; routing checks each token instead
  }
  CoverageSearch search;
  search.num_devices = placement.num_devices;
  search.limit = device_limit;
  search.top_k = top_k;
  search.words = (static_cast<size_t>(num_experts) + 63) / 64;
  search.hosted.assign(static_cast<size_t>(placement.num_devices) * search.words, 0);
  for (int32_t e = 0; e < num_experts; ++e) {
    for (int32_t d : placement.expert_devices[static_cast<size_t>(e)]) {
      search.hosted[static_cast<size_t>(d) * search.words + static_cast<size_t>(e) / 64] |=
          uint64_t{1} << (e % 64);
    }
  }
  search.union_stack.assign(static_cast<size_t>(device_limit + 1) * search.words, 0);
  search.chosen.assign(static_cast<size_t>(device_limit), 0);
  if (search.Search(0, 0)) return Status::Ok();
  std::string devices;
  for (int32_t d : search.failing) {
    if (!devices.empty()) devices += ',';
    devices += std::to_string(d);
  }
  return InvalidArgument("routing.deviceLimit=" + std::to_string(device_limit) +
                         " cannot always pick num_experts_per_tok=" + std::to_string(top_k) +
                         " experts: devices {" + devices + "} together host only " +
                         std::to_string(search.failing_count) +
                         " experts; raise deviceLimit or spread the experts more evenly");
}

int32_t SelectDeviceLimited(const FlatPlacement& placement, const float* scores,
                            int32_t num_experts, int32_t device_limit, int32_t top_k,
                            const DeviceSelectionScratch& scratch, int32_t* out) {
  const int32_t num_devices = placement.num_devices;
  const int32_t* offsets = placement.offsets.data();
  const int32_t* devices = placement.devices.data();
  float* device_scores = scratch.device_scores;
  for (int32_t d = 0; d < num_devices; ++d) {
    device_scores[d] = -std::numeric_limits<float>::infinity();
  }
  for (int32_t e = 0; e < num_experts; ++e) {
    const float s = scores[e];
    for (int32_t r = offsets[e]; r < offsets[e + 1]; ++r) {
      float& ds = device_scores[devices[r]];
      ds = s > ds ? s : ds;
    }
  }
  const int32_t kept =
      SelectTopK(device_scores, num_devices, device_limit, nullptr, scratch.kept_devices);
  std::memset(scratch.device_kept, 0, static_cast<size_t>(num_devices));
  for (int32_t j = 0; j < kept; ++j) scratch.device_kept[scratch.kept_devices[j]] = 1;
  for (int32_t e = 0; e < num_experts; ++e) {
    uint8_t on_kept = 0;
    for (int32_t r = offsets[e]; r < offsets[e + 1]; ++r)
      on_kept |= scratch.device_kept[devices[r]];
    scratch.eligible[e] = on_kept;
  }
  return SelectTopK(scores, num_experts, top_k, scratch.eligible, out);
}

}  // namespace kubemoe::routing
