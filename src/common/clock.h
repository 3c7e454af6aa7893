#pragma once

// Clock: the wall and monotonic time every timer, backoff and deadline in Slipway
// reads, so tests can substitute ManualClock and never sleep.
//
// Thread-safety: both implementations are safe to call from any thread.

#include <atomic>
#include <chrono>
#include <string>

namespace slipway {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point Now() const = 0;
  virtual std::chrono::steady_clock::time_point Monotonic() const = 0;
  // Blocks the calling thread for `d` (RealClock) or advances time by `d` (ManualClock).
  virtual void SleepFor(std::chrono::milliseconds d) = 0;
};

class RealClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override;
  std::chrono::steady_clock::time_point Monotonic() const override;
  void SleepFor(std::chrono::milliseconds d) override;
};

// A clock that only moves when told to: SleepFor() and Advance() move both wall and
// monotonic time forward at once, so a polling loop with a deadline ends without
// real waiting.
class ManualClock final : public Clock {
 public:
  // Wall time starts at 2023-11-14T22:13:20Z (unix 1'700'000'000), or at `start`.
  ManualClock() = default;
  explicit ManualClock(std::chrono::system_clock::time_point start)
      : start_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(start.time_since_epoch())
                      .count()) {}
  std::chrono::system_clock::time_point Now() const override;
  std::chrono::steady_clock::time_point Monotonic() const override;
  void SleepFor(std::chrono::milliseconds d) override { Advance(d); }
  void Advance(std::chrono::milliseconds d) { offset_ms_ += d.count(); }

 private:
  long long start_ms_ = 1'700'000'000'000LL;
  std::atomic<long long> offset_ms_{0};
};

// Milliseconds since the Unix epoch, for stored timestamps.
long long UnixMillis(const Clock& clock);
// ISO-8601 UTC with milliseconds: "2026-11-21T23:31:53.123Z".
std::string FormatTimestamp(long long unix_millis);

}  // namespace slipway
