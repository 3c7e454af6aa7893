#include <gtest/gtest.h>

#include <sstream>

#include "common/fs.h"
#include "config/config.h"
#include "git/git.h"

namespace slipway {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && s.front() == ' ') s.erase(0, 1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, sep);) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

std::string ReadCases(const std::string& name) {
  auto text = ReadFile(std::string(SLIPWAY_GIT_CASES_DIR) + "/" + name);
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return text.ok() ? *text : "";
}

TEST(PreviewEnvironmentNameTest, Cases) {
  std::stringstream lines(ReadCases("branch_cases.txt"));
  int cases = 0;
  for (std::string line; std::getline(lines, line);) {
    if (Trim(line).empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    for (size_t start = 0;;) {
      size_t bar = line.find(" | ", start);
      fields.push_back(Trim(line.substr(start, bar - start)));
      if (bar == std::string::npos) break;
      start = bar + 3;
    }
    ASSERT_EQ(fields.size(), 4u) << line;
    std::map<std::string, std::string> environments;
    if (fields[2] != "-") {
      for (const auto& entry : Split(fields[2], ' ')) {
        auto eq = entry.find('=');
        ASSERT_NE(eq, std::string::npos) << line;
        environments[entry.substr(0, eq)] = entry.substr(eq + 1);
      }
    }
    const std::string name = PreviewEnvironmentName(fields[0], fields[1], environments);
    EXPECT_EQ(name, fields[3]) << line;
    EXPECT_LE(name.size(), kMaxPreviewName) << line;
    if (fields[1].size() < 63 - 8) {
      EXPECT_LE(fields[1].size() + 1 + name.size(), 63u) << line;
    }
    ++cases;
  }
  EXPECT_GT(cases, 10);
}

ServiceConfig ServiceFrom(const std::vector<std::string>& words) {
  ServiceConfig svc;
  svc.name = words.at(1);
  for (size_t i = 2; i < words.size(); ++i) {
    const std::string& w = words[i];
    auto eq = w.find('=');
    std::string key = w.substr(0, eq), value = eq == std::string::npos ? "" : w.substr(eq + 1);
    if (key == "root") svc.root_directory = value;
    if (key == "watch") svc.watch_patterns = Split(value, ',');
    if (key == "start") {
      // The rest of the line is the command.
      for (size_t j = i + 1; j < words.size(); ++j) value += " " + words[j];
      svc.start_command = value;
      break;
    }
  }
  return svc;
}

struct TouchedCase {
  std::string name;
  bool first_push = false;
  ProjectConfig before, after;
  std::vector<std::string> changed;
  std::vector<std::string> deploy;
  std::map<std::string, std::string> reasons;
};

std::vector<TouchedCase> ParseTouchedCases(const std::string& text) {
  std::vector<TouchedCase> cases;
  std::stringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> words = Split(line, ' ');
    const std::string& kind = words[0];
    if (kind == "case") {
      cases.emplace_back();
      cases.back().name = line.substr(5);
      continue;
    }
    EXPECT_FALSE(cases.empty()) << "a line before the first case: " << line;
    if (cases.empty()) break;
    TouchedCase& c = cases.back();
    if (kind == "before" && words.size() == 2 && words[1] == "-") {
      c.first_push = true;
    } else if (kind == "before" || kind == "after") {
      (kind == "before" ? c.before : c.after).services.push_back(ServiceFrom(words));
    } else if (kind == "shared-before" || kind == "shared-after") {
      auto eq = words.at(1).find('=');
      (kind == "shared-before" ? c.before : c.after).shared_variables[words[1].substr(0, eq)] =
          words[1].substr(eq + 1);
    } else if (kind == "addon-before" || kind == "addon-after") {
      AddonConfig addon;
      addon.kind = words.at(1);
      addon.name = words.at(2);
      (kind == "addon-before" ? c.before : c.after).addons.push_back(addon);
    } else if (kind == "changed") {
      c.changed.push_back(words.at(1));
    } else if (kind == "deploy") {
      c.deploy.assign(words.begin() + 1, words.end());
    } else if (kind == "reason") {
      c.reasons[words.at(1)] = line.substr(line.find(words[1]) + words[1].size() + 1);
    } else {
      ADD_FAILURE() << "unknown line in touched_cases.txt: " << line;
    }
  }
  return cases;
}

TEST(ServicesTouchedTest, Cases) {
  auto cases = ParseTouchedCases(ReadCases("touched_cases.txt"));
  EXPECT_GT(cases.size(), 15u);
  for (const TouchedCase& c : cases) {
    auto touched = ServicesTouched(c.first_push ? nullptr : &c.before, c.after, c.changed);
    ASSERT_TRUE(touched.ok()) << c.name << ": " << touched.status().ToString();
    ASSERT_EQ(touched->size(), c.after.services.size()) << c.name;
    std::vector<std::string> deployed;
    for (const ServiceChange& change : *touched) {
      if (change.deploy) deployed.push_back(change.service);
      EXPECT_FALSE(change.reason.empty()) << c.name << ": " << change.service;
      if (c.reasons.count(change.service)) {
        EXPECT_EQ(change.reason, c.reasons.at(change.service)) << c.name;
      }
    }
    EXPECT_EQ(deployed, c.deploy) << c.name;
  }
}

TEST(ServicesTouchedTest, BadWatchPatternIsNamed) {
  ProjectConfig config;
  ServiceConfig svc;
  svc.watch_patterns = {"api/[abc"};
  config.services.push_back(svc);
  auto touched = ServicesTouched(&config, config, {"api/x"});
  ASSERT_FALSE(touched.ok());
  EXPECT_NE(touched.status().message().find("api/[abc"), std::string::npos);
}

TEST(RefUpdatesTest, ParsesHookInput) {
  const std::string zeros(40, '0');
  const std::string a(40, 'a'), b = "0123456789abcdef0123456789abcdef01234567";
  auto updates =
      ParseRefUpdates(zeros + " " + a + " refs/heads/main\n" + a + " " + b +
                      " refs/heads/feature/login\r\n\n" + b + " " + zeros + " refs/tags/v1\n");
  ASSERT_TRUE(updates.ok()) << updates.status().ToString();
  ASSERT_EQ(updates->size(), 3u);
  EXPECT_TRUE((*updates)[0].created());
  EXPECT_FALSE((*updates)[0].deleted());
  EXPECT_EQ((*updates)[1].ref, "refs/heads/feature/login");
  EXPECT_FALSE((*updates)[1].created());
  EXPECT_TRUE((*updates)[2].deleted());
  EXPECT_EQ(BranchOfRef((*updates)[1].ref), "feature/login");
  EXPECT_EQ(BranchOfRef("refs/tags/v1"), "");
  EXPECT_EQ(BranchOfRef("refs/heads/"), "");

  auto bad = ParseRefUpdates(a + " " + b + "\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 1"), std::string::npos);
  EXPECT_FALSE(ParseRefUpdates("xyz " + a + " refs/heads/main\n").ok());
}

TEST(CheckBranchNameTest, GitsRules) {
  for (const char* good : {"main", "feature/login", "release-2.0", "Fix_Bug", "a/b/c", "日本"}) {
    EXPECT_TRUE(CheckBranchName(good).ok()) << good;
  }
  for (const char* bad :
       {"",    "-x", "/x", "x/",  "x.",   "x.lock", "a..b", "a b",  "a~1", "a^",
        "a:b", "a?", "a*", "a[b", "a\\b", "a@{1}",  "a//b", "a/.b", "@",   ".x"}) {
    EXPECT_FALSE(CheckBranchName(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace slipway
