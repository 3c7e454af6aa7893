#include "common/clock.h"

#include <ctime>
#include <string>
#include <thread>

namespace slipway {

std::chrono::system_clock::time_point RealClock::Now() const {
  return std::chrono::system_clock::now();
}
std::chrono::steady_clock::time_point RealClock::Monotonic() const {
  return std::chrono::steady_clock::now();
}
void RealClock::SleepFor(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

// ManualClock starts at a fixed, recognisable instant so tests can assert on it.
std::chrono::system_clock::time_point ManualClock::Now() const {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(start_ms_)) +
         std::chrono::milliseconds(offset_ms_.load());
}
std::chrono::steady_clock::time_point ManualClock::Monotonic() const {
  return std::chrono::steady_clock::time_point(std::chrono::milliseconds(offset_ms_.load()));
}

long long UnixMillis(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.Now().time_since_epoch())
      .count();
}

std::string FormatTimestamp(long long unix_millis) {
  std::time_t secs = unix_millis / 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03lldZ", buf, unix_millis % 1000);
  return out;
}

}  // namespace slipway
