// Fills device memory with reproducible pseudo-random values on the device itself, for the
// benchmarks' DeepSeek-V2-sized inputs (gigabytes of expert weights take minutes to draw on a host
// and copy over; the device writes them in milliseconds). Not for references: tests that compare
// with a host reference draw their inputs on the host.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "kernels/cuda/runtime.h"

namespace kubemoe::cuda {

// out[i] = bf16 of a value uniform in [lo, hi), a pure function of (seed, i) (a SplitMix64 hash
// of the index), so the same seed gives the same tensor on any device and launch shape.
Status FillUniformBf16(uint16_t* out, size_t n, uint64_t seed, float lo, float hi, Stream stream);

}  // namespace kubemoe::cuda
