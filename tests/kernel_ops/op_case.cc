#include "tests/kernel_ops/op_case.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <sstream>

namespace kubemoe::kernel_ops {
namespace {

std::map<std::string, CaseFactory>& Registry() {
  static std::map<std::string, CaseFactory> registry;
  return registry;
}

std::string Describe(const Output& out, size_t i, double want, double got) {
  std::ostringstream s;
  s.precision(9);
  s << "output '" << out.name << "' element " << i << ": expected " << want << ", got " << got;
  return s.str();
}

}  // namespace

bool RegisterCases(const std::string& op, CaseFactory factory) {
  Registry()[op] = std::move(factory);
  return true;
}

CaseList MakeAllCases(Scale scale) {
  CaseList cases;
  for (const auto& [op, factory] : Registry()) factory(scale, cases);
  std::sort(cases.begin(), cases.end(),
            [](const auto& a, const auto& b) { return a->Name() < b->Name(); });
  return cases;
}

Status CompareOutputs(const std::vector<Output>& reference, const std::vector<Output>& got,
                      double* worst) {
  if (worst != nullptr) *worst = 0.0;
  if (reference.size() != got.size()) {
    return InvalidArgument("expected " + std::to_string(reference.size()) + " outputs, got " +
                           std::to_string(got.size()));
  }
  for (size_t o = 0; o < reference.size(); ++o) {
    const Output& want = reference[o];
    const Output& have = got[o];
    if (want.name != have.name) {
      return InvalidArgument("output " + std::to_string(o) + " is '" + have.name +
                             "', expected '" + want.name + "'");
    }
    if (want.values.size() != have.values.size()) {
      return InvalidArgument("output '" + want.name + "' has " +
                             std::to_string(have.values.size()) + " elements, expected " +
                             std::to_string(want.values.size()));
    }
    for (size_t i = 0; i < have.values.size(); ++i) {
      if (std::isnan(have.values[i]) && !std::isnan(want.values[i])) {
        return InvalidArgument(Describe(want, i, want.values[i], have.values[i]) +
                               " (NaN: unwritten, or computed as NaN)");
      }
    }
    double error = 0.0;
    switch (want.metric) {
      case Metric::kExact:
        for (size_t i = 0; i < have.values.size(); ++i) {
          const bool both_nan = std::isnan(want.values[i]) && std::isnan(have.values[i]);
          if (!both_nan && want.values[i] != have.values[i]) {
            return InvalidArgument(Describe(want, i, want.values[i], have.values[i]) +
                                   " (must be identical)");
          }
        }
        break;
      case Metric::kRelativeL2: {
        double diff = 0.0;
        double norm = 0.0;
        for (size_t i = 0; i < have.values.size(); ++i) {
          const double d = have.values[i] - want.values[i];
          diff += d * d;
          norm += want.values[i] * want.values[i];
        }
        error = norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
        if (!(error <= want.bound)) {
          std::ostringstream s;
          s << "output '" << want.name << "': relative L2 error " << error << " exceeds the bound "
            << want.bound;
          return InvalidArgument(s.str());
        }
        break;
      }
      case Metric::kMaxAbs:
        for (size_t i = 0; i < have.values.size(); ++i) {
          const double d = std::fabs(have.values[i] - want.values[i]);
          if (!(d <= want.bound)) {
            std::ostringstream s;
            s << Describe(want, i, want.values[i], have.values[i]) << ": |error| " << d
              << " exceeds the bound " << want.bound;
            return InvalidArgument(s.str());
          }
          error = std::max(error, d);
        }
        break;
    }
    if (worst != nullptr && want.metric != Metric::kExact && want.bound > 0.0) {
      *worst = std::max(*worst, error / want.bound);
    }
  }
  return Status::Ok();
}

std::vector<double> ToDoubles(const float* values, size_t n) {
  return std::vector<double>(values, values + n);
}

std::vector<double> ToDoubles(const int32_t* values, size_t n) {
  return std::vector<double>(values, values + n);
}

float Bf16ToF32(uint16_t bits) {
  const uint32_t u = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

uint16_t F32ToBf16(float value) {
  uint32_t u;
  std::memcpy(&u, &value, sizeof u);
  if (std::isnan(value)) return 0x7FC0;
  u += 0x7FFF + ((u >> 16) & 1);  // round to nearest, ties to even
  return static_cast<uint16_t>(u >> 16);
}

std::vector<double> Bf16ToDoubles(const uint16_t* values, size_t n) {
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = Bf16ToF32(values[i]);
  return out;
}

std::vector<float> UniformFloats(Rng& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(n);
  for (float& v : out) v = dist(rng);
  return out;
}

std::vector<uint16_t> UniformBf16(Rng& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<uint16_t> out(n);
  for (uint16_t& v : out) v = F32ToBf16(dist(rng));
  return out;
}

}  // namespace kubemoe::kernel_ops
