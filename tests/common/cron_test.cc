// Cron schedules from the data file cron_cases.txt (format at its top): parsing, errors,
// and next-run computation across month, year and leap-year ends, in UTC.

#include "common/cron.h"

#include <gtest/gtest.h>

#include <ctime>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "case_file.h"
#include "common/fs.h"

namespace slipway {
namespace {

using TimePoint = CronSchedule::TimePoint;

TimePoint ParseTime(const std::string& text) {
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
  EXPECT_FALSE(in.fail()) << "bad time in cron_cases.txt: " << text;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string FormatTime(TimePoint t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

using testing_cases::SplitBar;

std::vector<std::string> Words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

TEST(CronScheduleTest, Cases) {
  auto text = ReadFile(SLIPWAY_COMMON_CASES_DIR "/cron_cases.txt");
  ASSERT_TRUE(text.ok()) << text.status().message();
  std::istringstream lines(*text);
  int cases = 0;
  int line_no = 0;
  for (std::string line; std::getline(lines, line);) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    const std::string kind = line.substr(0, line.find(' '));
    std::vector<std::string> parts = SplitBar(line.substr(kind.size()));
    parts[0].erase(0, parts[0].find_first_not_of(' '));
    SCOPED_TRACE("cron_cases.txt:" + std::to_string(line_no) + ": " + line);
    ++cases;
    if (kind == "error") {
      ASSERT_EQ(parts.size(), 2u);
      std::string expr = parts[0];
      auto schedule = CronSchedule::Parse(expr);
      ASSERT_FALSE(schedule.ok());
      EXPECT_NE(schedule.status().message().find(parts[1]), std::string::npos)
          << schedule.status().message();
      EXPECT_NE(schedule.status().message().find("cron schedule \"" + expr + "\""),
                std::string::npos)
          << schedule.status().message();
      continue;
    }
    ASSERT_TRUE(kind == "next" || kind == "chain") << "unknown case kind " << kind;
    ASSERT_EQ(parts.size(), 3u);
    auto schedule = CronSchedule::Parse(parts[0]);
    ASSERT_TRUE(schedule.ok()) << schedule.status().message();
    TimePoint at = ParseTime(parts[1]);
    for (const std::string& expected : Words(parts[2])) {
      auto next = schedule->Next(at);
      ASSERT_TRUE(next.has_value()) << "no run after " << FormatTime(at);
      EXPECT_EQ(FormatTime(*next), expected) << "after " << FormatTime(at);
      EXPECT_TRUE(schedule->Matches(*next));
      EXPECT_FALSE(schedule->Matches(*next - std::chrono::minutes(1)) &&
                   *next - std::chrono::minutes(1) > at)
          << "an earlier minute after " << FormatTime(at) << " matches too";
      at = *next;
    }
  }
  EXPECT_GT(cases, 40);
}

// Next() walks minute by minute the same answer a brute-force check of Matches() gives.
TEST(CronScheduleTest, NextAgreesWithMatchesMinuteByMinute) {
  for (const char* expr : {"*/7 3-5 * * *", "0 0 13 * 5", "15 10 1,15 * mon", "0 23 28-31 2 *"}) {
    auto schedule = CronSchedule::Parse(expr);
    ASSERT_TRUE(schedule.ok()) << schedule.status().message();
    TimePoint at = ParseTime("2027-12-30T00:00:00Z");
    for (int i = 0; i < 20; ++i) {
      auto next = schedule->Next(at);
      ASSERT_TRUE(next.has_value());
      TimePoint probe = at + std::chrono::minutes(1);
      probe = std::chrono::floor<std::chrono::minutes>(probe);
      while (!schedule->Matches(probe)) probe += std::chrono::minutes(1);
      EXPECT_EQ(FormatTime(*next), FormatTime(probe)) << expr;
      at = *next;
    }
  }
}

TEST(CronScheduleTest, SecondsWithinAMinuteCountAsThatMinute) {
  auto schedule = CronSchedule::Parse("30 2 * * *");
  ASSERT_TRUE(schedule.ok());
  EXPECT_TRUE(schedule->Matches(ParseTime("2026-12-04T02:30:59Z")));
  EXPECT_FALSE(schedule->Matches(ParseTime("2026-12-04T02:31:00Z")));
  EXPECT_EQ(schedule->expression(), "30 2 * * *");
}

}  // namespace
}  // namespace slipway
