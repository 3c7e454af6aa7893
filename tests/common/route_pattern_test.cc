// Route patterns from the data file route_pattern_cases.txt (format at its top):
// matching, substitution into destinations, and the errors of patterns that do not
// compile.

#include "common/route_pattern.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "case_file.h"
#include "common/fs.h"

namespace slipway {
namespace {

using testing_cases::SplitBar;

TEST(RoutePatternTest, Cases) {
  auto text = ReadFile(SLIPWAY_COMMON_CASES_DIR "/route_pattern_cases.txt");
  ASSERT_TRUE(text.ok()) << text.status().message();
  std::istringstream lines(*text);
  int line_number = 0, cases = 0;
  for (std::string line; std::getline(lines, line);) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    SCOPED_TRACE("route_pattern_cases.txt:" + std::to_string(line_number) + ": " + line);
    ++cases;
    if (line.rfind("! ", 0) == 0) {
      const auto fields = SplitBar(line.substr(2));
      ASSERT_EQ(fields.size(), 2u);
      auto pattern = RoutePattern::Compile(fields[0]);
      ASSERT_FALSE(pattern.ok()) << "compiled to " << pattern->regex();
      EXPECT_NE(pattern.status().message().find(fields[1]), std::string::npos)
          << pattern.status().message();
      continue;
    }
    const bool query = line.rfind("query ", 0) == 0;
    const auto fields = SplitBar(query ? line.substr(6) : line);
    ASSERT_EQ(fields.size(), 4u);
    auto pattern = RoutePattern::Compile(fields[0]);
    ASSERT_TRUE(pattern.ok()) << pattern.status().message();
    RouteCaptures captures;
    const bool matched = pattern->Match(fields[1], &captures);
    if (fields[3] == "-") {
      EXPECT_FALSE(matched) << pattern->regex();
      continue;
    }
    ASSERT_TRUE(matched) << pattern->regex();
    EXPECT_TRUE(CheckDestination(*pattern, fields[2]).ok());
    EXPECT_EQ(SubstituteCaptures(fields[2], captures, query), fields[3]) << pattern->regex();
  }
  EXPECT_GT(cases, 50);
}

TEST(RoutePatternTest, DestinationsMayOnlyUseCapturedNames) {
  auto pattern = RoutePattern::Compile("/blog/:slug");
  ASSERT_TRUE(pattern.ok());
  EXPECT_TRUE(CheckDestination(*pattern, "/news/:slug").ok());
  EXPECT_TRUE(CheckDestination(*pattern, "https://example.com:8443/news/:slug").ok());
  Status st = CheckDestination(*pattern, "/news/:id");
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.message(),
            "\"destination\" uses \":id\", which \"source\" (\"/blog/:slug\") does not capture");
}

TEST(RoutePatternTest, NamesAndRegex) {
  auto pattern = RoutePattern::Compile("/docs/:path*");
  ASSERT_TRUE(pattern.ok());
  EXPECT_EQ(pattern->regex(), R"(^\/docs(?:\/((?:[^\/#\?]+?)(?:\/(?:[^\/#\?]+?))*))?$)");
  EXPECT_EQ(pattern->names(), std::vector<std::string>{"path"});
  auto unnamed = RoutePattern::Compile("/(.*)/:x");
  ASSERT_TRUE(unnamed.ok());
  EXPECT_EQ(unnamed->names(), (std::vector<std::string>{"", "x"}));
}

TEST(RoutePatternTest, PathologicalInputIsNoMatchNotACrash) {
  // Nested repetition against a long path: the engine's complexity limit, not a hang.
  auto pattern = RoutePattern::Compile("/((?:a|aa)*)b");
  ASSERT_TRUE(pattern.ok());
  const std::string path = "/" + std::string(1000, 'a');
  EXPECT_FALSE(pattern->Match(path, nullptr));
}

}  // namespace
}  // namespace slipway
