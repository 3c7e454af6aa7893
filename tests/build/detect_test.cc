// DetectBuildPlan against the cases in detect_cases.txt.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <sstream>
#include <string>
#include <vector>

#include "build/builder.h"
#include "common/fs.h"

namespace slipway {
namespace {

struct DetectCase {
  std::string name;
  std::vector<std::pair<std::string, std::string>> files;
  ServiceConfig service;
  std::map<std::string, std::string> expect;  // kind, from, steps, start, static_root, error
};

std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::pair<std::string, std::string> SplitWord(const std::string& line) {
  size_t space = line.find(' ');
  if (space == std::string::npos) return {line, ""};
  return {line.substr(0, space), line.substr(space + 1)};
}

std::vector<DetectCase> LoadCases() {
  auto text = ReadFile(SLIPWAY_BUILD_TEST_DATA);
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  std::vector<DetectCase> cases;
  if (!text.ok()) return cases;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("== ", 0) == 0) {
      cases.push_back({});
      cases.back().name = line.substr(3);
      continue;
    }
    EXPECT_FALSE(cases.empty()) << "line before the first case: " << line;
    if (cases.empty()) continue;
    DetectCase& c = cases.back();
    auto [key, rest] = SplitWord(line);
    if (key == "file") {
      auto [path, content] = SplitWord(rest);
      c.files.emplace_back(path, Unescape(content));
    } else if (key == "config") {
      auto [field, value] = SplitWord(rest);
      if (field == "builder") {
        c.service.builder = value;
      } else if (field == "build_command") {
        c.service.build_command = value;
      } else if (field == "start_command") {
        c.service.start_command = value;
      } else if (field == "static_directory") {
        c.service.static_directory = value;
      } else {
        ADD_FAILURE() << c.name << ": unknown config field " << field;
      }
    } else {
      c.expect[key] = rest == "-" ? "" : rest;
    }
  }
  return cases;
}

std::string StepNames(const BuildPlan& plan) {
  std::string out;
  for (const auto& step : plan.steps) out += (out.empty() ? "" : " | ") + step.name;
  return out;
}

TEST(DetectBuildPlanTest, Cases) {
  auto cases = LoadCases();
  ASSERT_GE(cases.size(), 20u);
  for (const DetectCase& c : cases) {
    SCOPED_TRACE(c.name);
    char tmpl[] = "/tmp/slipway-detect-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl;
    for (const auto& [path, content] : c.files) {
      ASSERT_TRUE(WriteFileAtomic(dir + "/" + path, content).ok());
    }
    auto plan = DetectBuildPlan(dir, c.service);
    if (c.expect.count("error")) {
      ASSERT_FALSE(plan.ok()) << "expected an error, got kind " << plan->kind;
      EXPECT_NE(plan.status().message().find(c.expect.at("error")), std::string::npos)
          << plan.status().message();
      EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
    } else {
      ASSERT_TRUE(plan.ok()) << plan.status().ToString();
      for (const auto& [key, want] : c.expect) {
        if (key == "kind") {
          EXPECT_EQ(plan->kind, want);
        } else if (key == "from") {
          EXPECT_EQ(plan->detected_from, want);
        } else if (key == "steps") {
          EXPECT_EQ(StepNames(*plan), want);
        } else if (key == "start") {
          EXPECT_EQ(plan->start_command, want);
        } else if (key == "static_root") {
          EXPECT_EQ(plan->static_root, want);
        } else {
          ADD_FAILURE() << "unknown expectation " << key;
        }
      }
    }
    ASSERT_TRUE(RemoveTree(dir).ok());
  }
}

TEST(DetectBuildPlanTest, MissingDirectoryIsNotFound) {
  auto plan = DetectBuildPlan("/nonexistent/slipway/app", ServiceConfig{});
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace slipway
