#pragma once

// CronSchedule: a 5-field cron expression, evaluated in UTC.
//
//   ┌ minute (0-59)
//   │ ┌ hour (0-23)
//   │ │ ┌ day of month (1-31)
//   │ │ │ ┌ month (1-12 or JAN-DEC)
//   │ │ │ │ ┌ day of week (0-7 or SUN-SAT; 0 and 7 are Sunday)
//   * * * * *
//
// Each field is "*", a value, a range "N-M", a step "*/S" or "N-M/S" or "N/S" (from N to
// the field's end), or a comma-separated list of those. Names are case-insensitive.
// Macros: @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly.
// Days as in Vixie cron (and Kubernetes, Railway, Render): when both day-of-month and
// day-of-week are restricted (neither field starts with "*"), a day matches if either
// matches; otherwise it must match both.
//
// Thread-safety: immutable once parsed; any number of threads may use one.

#include <bitset>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace slipway {

class CronSchedule {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  // kInvalidArgument, one line naming the expression, the field and what is wrong:
  //   cron schedule "61 * * * *": minute 61 is out of range 0-59
  //   cron schedule "0 2 * *": 4 fields; a schedule has 5 (minute hour day month weekday)
  //   cron schedule "0 0 30 2 *": never runs (no such date)
  static Result<CronSchedule> Parse(std::string_view expression);

  // The first minute strictly after `after` that matches (seconds and below zero), or
  // nullopt when none comes within the next 8 years (Parse refuses such schedules).
  std::optional<TimePoint> Next(TimePoint after) const;

  // True when `t`'s minute (UTC) matches.
  bool Matches(TimePoint t) const;

  const std::string& expression() const { return expression_; }

 private:
  CronSchedule() = default;
  bool DayMatches(int64_t days_since_epoch) const;
  bool MinuteMatches(int64_t minute_of_day) const;
  std::string expression_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1..31
  std::bitset<13> months_;   // 1..12
  std::bitset<7> weekdays_;  // 0..6, Sunday 0
  bool days_restricted_ = false;
  bool weekdays_restricted_ = false;
};

}  // namespace slipway
