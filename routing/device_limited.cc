#include "routing/device_limited.h"

#include <algorithm>
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
    int32_t count = 0;
    for (size_t w = 0; w < words; ++w) count += std::popcount(acc[w]);
    // Adding devices only grows the union: every completion of this prefix is fine.
    if (count >= top_k) return true;
    if (depth == limit) {
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

// "{0,1,2}", at most 16 devices then "... (N devices)" so a large M keeps the message readable.
std::string DeviceList(const std::vector<int32_t>& devices) {
  constexpr size_t kMaxListed = 16;
  std::string out = "{";
  for (size_t i = 0; i < devices.size() && i < kMaxListed; ++i) {
    if (i > 0) out += ',';
    out += std::to_string(devices[i]);
  }
  if (devices.size() > kMaxListed) out += ",... (" + std::to_string(devices.size()) + " devices)";
  return out + "}";
}

Status CannotPick(int32_t device_limit, int32_t top_k, const std::vector<int32_t>& devices,
                  int32_t hosted) {
  return InvalidArgument("routing.deviceLimit=" + std::to_string(device_limit) +
                         " cannot always pick num_experts_per_tok=" + std::to_string(top_k) +
                         " experts: devices " + DeviceList(devices) + " together host only " +
                         std::to_string(hosted) +
                         " experts; raise deviceLimit or spread the experts more evenly");
}

}  // namespace

Status ValidateDeviceLimit(const DevicePlacement& placement, int32_t num_experts, int32_t top_k,
                           int32_t device_limit) {
  if (device_limit < 1 || device_limit > placement.num_devices) {
    return InvalidArgument(
        "routing.deviceLimit must be in [1, num_devices=" + std::to_string(placement.num_devices) +
        "], got " + std::to_string(device_limit));
  }
  const int32_t num_devices = placement.num_devices;
  std::vector<int32_t> per_device(static_cast<size_t>(num_devices), 0);
  for (const auto& devices : placement.expert_devices) {
    for (int32_t d : devices) ++per_device[static_cast<size_t>(d)];
  }
  // Necessary condition, cheap for any size: the M devices hosting the fewest experts host at
  // most the sum of their counts (exactly that when no expert is replicated among them).
  std::vector<int32_t> fewest(static_cast<size_t>(num_devices));
  for (int32_t d = 0; d < num_devices; ++d) fewest[static_cast<size_t>(d)] = d;
  std::stable_sort(fewest.begin(), fewest.end(), [&per_device](int32_t a, int32_t b) {
    return per_device[static_cast<size_t>(a)] < per_device[static_cast<size_t>(b)];
  });
  fewest.resize(static_cast<size_t>(device_limit));
  std::sort(fewest.begin(), fewest.end());
  int64_t slots = 0;
  for (int32_t d : fewest) slots += per_device[static_cast<size_t>(d)];
  if (slots < top_k) {
    std::vector<uint8_t> hosted(static_cast<size_t>(num_experts), 0);
    std::vector<uint8_t> chosen(static_cast<size_t>(num_devices), 0);
    for (int32_t d : fewest) chosen[static_cast<size_t>(d)] = 1;
    int32_t distinct = 0;
    for (int32_t e = 0; e < num_experts; ++e) {
      for (int32_t d : placement.expert_devices[static_cast<size_t>(e)]) {
        if (chosen[static_cast<size_t>(d)] != 0) {
          distinct += hosted[static_cast<size_t>(e)] == 0 ? 1 : 0;
          hosted[static_cast<size_t>(e)] = 1;
        }
      }
    }
    return CannotPick(device_limit, top_k, fewest, distinct);
  }
  if (CappedBinomial(num_devices, device_limit) > kMaxEnumeratedSets) {
    // Too many sets to prove it here (and the bound above did not refute it): accepted, and
    // SelectDeviceLimited's caller checks each token instead (Router::Route fails the batch of a
    // token whose M devices host fewer than top_k experts).
    return Status::Ok();
  }
  CoverageSearch search;
  search.num_devices = num_devices;
  search.limit = device_limit;
  search.top_k = top_k;
  search.words = (static_cast<size_t>(num_experts) + 63) / 64;
  search.hosted.assign(static_cast<size_t>(num_devices) * search.words, 0);
  for (int32_t e = 0; e < num_experts; ++e) {
    for (int32_t d : placement.expert_devices[static_cast<size_t>(e)]) {
      search.hosted[static_cast<size_t>(d) * search.words + static_cast<size_t>(e) / 64] |=
          uint64_t{1} << (e % 64);
    }
  }
  search.union_stack.assign(static_cast<size_t>(device_limit + 1) * search.words, 0);
  search.chosen.assign(static_cast<size_t>(device_limit), 0);
  if (search.Search(0, 0)) return Status::Ok();
  return CannotPick(device_limit, top_k, search.failing, search.failing_count);
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
