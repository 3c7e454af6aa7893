#include "common/cron.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <vector>

namespace slipway {

namespace {

struct Field {
  const char* name;
  int min;
  int max;
  const char* const* names;  // names[i] is value min + i; nullptr when none
};

constexpr const char* kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",  "jul",
                                       "aug", "sep", "oct", "nov", "dec", nullptr};
constexpr const char* kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", nullptr};

constexpr Field kFields[] = {{"minute", 0, 59, nullptr},
                             {"hour", 0, 23, nullptr},
                             {"day of month", 1, 31, nullptr},
                             {"month", 1, 12, kMonthNames},
                             {"day of week", 0, 7, kDayNames}};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    out.emplace_back(s.substr(start, at == std::string_view::npos ? s.size() - start : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

// Parses one field into `bits` (index = value). Errors are the message after the prefix.
Status ParseField(const std::string& text, const Field& field, std::vector<bool>& bits) {
  bits.assign(static_cast<size_t>(field.max) + 1, false);
  auto value = [&](const std::string& raw, int* out) -> Status {
    std::string v = Lower(raw);
    if (v.empty()) return InvalidArgument(std::string(field.name) + " has an empty value");
    if (field.names != nullptr) {
      for (int i = 0; field.names[i] != nullptr; ++i) {
        if (v == field.names[i]) {
          *out = field.min + i;
          return Status::Ok();
        }
      }
    }
    if (v.size() > 4 || v.find_first_not_of("0123456789") != std::string::npos) {
      return InvalidArgument(
          std::string(field.name) + " \"" + raw + "\" is not a number" +
          (field.names != nullptr
               ? std::string(" or a name (") + field.names[0] + ", " + field.names[1] + ", ...)"
               : std::string()));
    }
    int n = std::stoi(v);
    if (n < field.min || n > field.max) {
      return InvalidArgument(std::string(field.name) + " " + raw + " is out of range " +
                             std::to_string(field.min) + "-" + std::to_string(field.max));
    }
    *out = n;
    return Status::Ok();
  };
  for (const std::string& item : Split(text, ',')) {
    std::string range = item;
    int step = 1;
    if (size_t slash = item.find('/'); slash != std::string::npos) {
      range = item.substr(0, slash);
      std::string s = item.substr(slash + 1);
      if (s.empty() || s.size() > 4 || s.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(s) == 0) {
        return InvalidArgument(std::string(field.name) + " step \"" + s +
                               "\" must be a positive number");
      }
      step = std::stoi(s);
    }
    int lo = field.min, hi = field.max;
    if (range == "*") {
      // the whole field
    } else if (size_t dash = range.find('-'); dash != std::string::npos) {
      RETURN_IF_ERROR(value(range.substr(0, dash), &lo));
      RETURN_IF_ERROR(value(range.substr(dash + 1), &hi));
      if (lo > hi) {
        return InvalidArgument(std::string(field.name) + " range " + range +
                               " runs backwards (write the smaller value first)");
      }
    } else {
      RETURN_IF_ERROR(value(range, &lo));
      // "N/S" runs from N to the field's end; a plain "N" is N alone.
      if (item.find('/') == std::string::npos) hi = lo;
    }
    for (int v = lo; v <= hi; v += step) bits[static_cast<size_t>(v)] = true;
  }
  return Status::Ok();
}

// The civil date of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
struct Civil {
  int year;
  unsigned month;  // 1..12
  unsigned day;    // 1..31
};

Civil CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return Civil{static_cast<int>(y + (m <= 2)), m, d};
}

unsigned DaysInMonth(int year, unsigned month) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2) {
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return leap ? 29 : 28;
  }
  return kDays[month - 1];
}

constexpr int kSearchYears = 8;  // covers every leap-day schedule

int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : (a - b + 1) / b; }

}  // namespace

Result<CronSchedule> CronSchedule::Parse(std::string_view expression) {
  std::string text(expression);
  const std::string prefix = "cron schedule \"" + text + "\": ";
  auto fail = [&](const std::string& what) { return InvalidArgument(prefix + what); };

  std::string trimmed = text;
  trimmed.erase(0, trimmed.find_first_not_of(" \t"));
  trimmed.erase(trimmed.find_last_not_of(" \t") + 1);
  if (!trimmed.empty() && trimmed[0] == '@') {
    static const std::pair<const char*, const char*> kMacros[] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"}};
    const std::string macro = Lower(trimmed);
    for (const auto& [name, fields] : kMacros) {
      if (macro == name) {
        ASSIGN_OR_RETURN(CronSchedule schedule, Parse(fields));
        schedule.expression_ = text;
        return schedule;
      }
    }
    return fail("unknown macro " + trimmed +
                " (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)");
  }

  std::vector<std::string> fields;
  {
    std::string current;
    for (char c : trimmed) {
      if (c == ' ' || c == '\t') {
        if (!current.empty()) fields.push_back(std::move(current));
        current.clear();
      } else {
        current += c;
      }
    }
    if (!current.empty()) fields.push_back(std::move(current));
  }
  if (fields.size() != 5) {
    return fail(std::to_string(fields.size()) +
                " fields; a schedule has 5 (minute hour day-of-month month day-of-week)");
  }

  CronSchedule schedule;
  schedule.expression_ = text;
  std::array<std::vector<bool>, 5> bits;
  for (size_t i = 0; i < 5; ++i) {
    if (Status st = ParseField(fields[i], kFields[i], bits[i]); !st.ok()) {
      return fail(st.message());
    }
  }
  for (size_t v = 0; v < 60; ++v) schedule.minutes_[v] = bits[0][v];
  for (size_t v = 0; v < 24; ++v) schedule.hours_[v] = bits[1][v];
  for (size_t v = 1; v <= 31; ++v) schedule.days_[v] = bits[2][v];
  for (size_t v = 1; v <= 12; ++v) schedule.months_[v] = bits[3][v];
  for (size_t v = 0; v <= 7; ++v) {
    if (bits[4][v]) schedule.weekdays_[v % 7] = true;
  }
  schedule.days_restricted_ = fields[2][0] != '*';
  schedule.weekdays_restricted_ = fields[4][0] != '*';

  // A schedule that never fires (30 February) is a mistake worth naming now.
  if (!schedule.Next(std::chrono::system_clock::time_point{} + std::chrono::hours(24 * 365))) {
    return fail("never runs (no date matches its day of month and month)");
  }
  return schedule;
}

bool CronSchedule::DayMatches(int64_t days_since_epoch) const {
  const Civil c = CivilFromDays(days_since_epoch);
  if (!months_[c.month]) return false;
  // 1970-01-01 was a Thursday (4).
  const auto weekday = static_cast<size_t>(((days_since_epoch % 7) + 11) % 7);
  const bool dom = days_[c.day];
  const bool dow = weekdays_[weekday];
  // Vixie cron: OR when both fields are restricted, else AND (a "*"-led field, such as
  // "*/10", still has its own bits).
  if (days_restricted_ && weekdays_restricted_) return dom || dow;
  return dom && dow;
}

bool CronSchedule::MinuteMatches(int64_t minute_of_day) const {
  return hours_[static_cast<size_t>(minute_of_day / 60)] &&
         minutes_[static_cast<size_t>(minute_of_day % 60)];
}

bool CronSchedule::Matches(TimePoint t) const {
  const int64_t minutes = std::chrono::floor<std::chrono::minutes>(t.time_since_epoch()).count();
  const int64_t days = FloorDiv(minutes, 1440);
  return DayMatches(days) && MinuteMatches(minutes - days * 1440);
}

std::optional<CronSchedule::TimePoint> CronSchedule::Next(TimePoint after) const {
  // The first whole minute strictly after `after`.
  const int64_t start =
      std::chrono::floor<std::chrono::minutes>(after.time_since_epoch()).count() + 1;
  int64_t day = FloorDiv(start, 1440);
  int64_t first_minute = start - day * 1440;
  const int64_t last_day = day + 366 * kSearchYears;
  for (; day <= last_day; ++day, first_minute = 0) {
    const Civil c = CivilFromDays(day);
    if (!months_[c.month]) {
      day += DaysInMonth(c.year, c.month) - c.day;  // on to the next month's first day
      continue;
    }
    if (!DayMatches(day)) continue;
    for (int64_t m = first_minute; m < 1440; ++m) {
      if (MinuteMatches(m)) return TimePoint{} + std::chrono::minutes(day * 1440 + m);
    }
  }
  return std::nullopt;
}

}  // namespace slipway
