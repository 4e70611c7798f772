#include "operator/controller/clock.h"

#include <cstdio>
#include <ctime>

namespace kubemoe::op {
namespace {

class SystemClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point WallNow() const override { return std::chrono::system_clock::now(); }
};

}  // namespace

Clock& RealClock() {
  static SystemClock clock;
  return clock;
}

// Starts at a fixed calendar time so timestamps in tests are reproducible.
FakeClock::FakeClock()
    : steady_start_(std::chrono::steady_clock::time_point{} + std::chrono::hours(1000)),
      wall_start_(std::chrono::system_clock::time_point{} + std::chrono::seconds(1714564800)) {}

std::chrono::steady_clock::time_point FakeClock::Now() const {
  MutexLock lock(&mu_);
  return steady_start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(offset_);
}

std::chrono::system_clock::time_point FakeClock::WallNow() const {
  MutexLock lock(&mu_);
  return wall_start_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(offset_);
}

void FakeClock::Advance(std::chrono::nanoseconds delta) {
  MutexLock lock(&mu_);
  offset_ += delta;
}

std::string FormatRfc3339(std::chrono::system_clock::time_point t, bool micros) {
  auto since_epoch = t.time_since_epoch();
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  std::time_t tt = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(buf);
  if (micros) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - secs).count();
    char frac[16];
    std::snprintf(frac, sizeof(frac), ".%06lld", static_cast<long long>(us));
    out += frac;
  }
  return out + "Z";
}

}  // namespace kubemoe::op
