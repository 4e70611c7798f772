// Time as the controller sees it, behind an interface so tests (work queue backoff, leader
// election) step it by hand instead of sleeping.
#pragma once

#include <chrono>
#include <string>

#include "common/mutex.h"

namespace kubemoe::op {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time: deadlines, backoff, lease expiry as observed locally.
  virtual std::chrono::steady_clock::time_point Now() const = 0;
  // Calendar time: timestamps written into objects (Lease renewTime, conditions, Events).
  virtual std::chrono::system_clock::time_point WallNow() const = 0;
};

// The process clock. Thread-safe; lives for the whole program.
Clock& RealClock();

// A clock that moves only when told. Thread-safe.
class FakeClock final : public Clock {
 public:
  FakeClock();
  std::chrono::steady_clock::time_point Now() const override;
  std::chrono::system_clock::time_point WallNow() const override;
  void Advance(std::chrono::nanoseconds delta);

 private:
  mutable Mutex mu_;
  std::chrono::nanoseconds offset_ KUBEMOE_GUARDED_BY(mu_) = std::chrono::nanoseconds(0);
  std::chrono::steady_clock::time_point steady_start_;
  std::chrono::system_clock::time_point wall_start_;
};

// "2024-05-01T12:00:00Z", or with microseconds "2024-05-01T12:00:00.123456Z" (MicroTime).
std::string FormatRfc3339(std::chrono::system_clock::time_point t, bool micros = false);

}  // namespace kubemoe::op
