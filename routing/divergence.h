// How often device-limited routing departs from the model's own selection: the accuracy side of
// the deviceLimit trade-off, which the router exports as a metric.
#pragma once

#include <cstdint>
#include <span>

namespace kubemoe::routing {

// True when the k expert ids in a and in b are not the same set (order is ignored).
// REQUIRES: neither array repeats an id (routing outputs never do).
bool SelectionDiffers(const int32_t* a, const int32_t* b, int32_t k);

// Number of tokens whose selections differ, for two [num_tokens x k] row-major id arrays of equal
// size. REQUIRES: k >= 1; a.size() == b.size(), a multiple of k.
int64_t CountDifferingTokens(std::span<const int32_t> a, std::span<const int32_t> b, int32_t k);

}  // namespace kubemoe::routing
