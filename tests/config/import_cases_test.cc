// Data-driven importer cases (and slipway.toml's keys beyond the basic ones, shown with
// their origins): each cases/<format>/NAME.<ext> is imported (with NAME.env as
// the .env file of a compose case, when present), and the outcome — the fields that differ
// from their defaults, add-ons, origins and warnings, or "error: <message>" — must equal
// NAME.expected. SLIPWAY_UPDATE_CASES=1 rewrites the .expected files (review the diff).

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/fs.h"
#include "config/config.h"
#include "config/importers.h"

namespace slipway {
namespace {

std::string Dump(const ProjectConfig& config) {
  std::string out = "project: " + nlohmann::json(config.name).dump() + "\n";
  for (const ServiceConfig& s : config.services) {
    ServiceConfig defaults;
    defaults.name = s.name;
    auto actual = nlohmann::json::parse(ServiceConfigToJson(s));
    auto expected = nlohmann::json::parse(ServiceConfigToJson(defaults));
    out += "service: " + s.name + "\n";
    for (const auto& [key, value] : actual.items()) {
      if (value != expected[key]) out += "  " + key + ": " + value.dump() + "\n";
    }
  }
  for (const AddonConfig& a : config.addons) {
    out += "addon: " + a.name + " (" + a.kind + ")";
    if (!a.backup_schedule.empty())
      out += " backupSchedule=" + nlohmann::json(a.backup_schedule).dump();
    if (a.backup_retention != 0) out += " backupRetention=" + std::to_string(a.backup_retention);
    out += "\n";
  }
  for (const auto& [k, v] : config.shared_variables) out += "shared: " + k + "=" + v + "\n";
  for (const auto& [k, v] : config.origins) out += "origin: " + k + " <- " + v + "\n";
  for (const auto& w : config.warnings) out += "warning: " + w + "\n";
  return out;
}

struct Case {
  std::string format;  // "vercel", "compose"
  std::string name;
  std::string path;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (const char* format : {"vercel", "compose", "toml"}) {
    std::string dir = std::string(SLIPWAY_IMPORT_CASES_DIR) + "/" + format;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      std::string ext = entry.path().extension().string();
      if (ext == ".json" || ext == ".yml" || ext == ".toml") {
        cases.push_back({format, entry.path().stem().string(), entry.path().string()});
      }
    }
  }
  std::sort(cases.begin(), cases.end(),
            [](const Case& a, const Case& b) { return a.path < b.path; });
  return cases;
}

class ImportCaseTest : public testing::TestWithParam<Case> {};

TEST_P(ImportCaseTest, MatchesExpected) {
  const Case& c = GetParam();
  auto text = ReadFile(c.path);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  const std::string base = c.path.substr(0, c.path.rfind('.'));

  Result<ProjectConfig> config = InvalidArgument("no importer");
  if (c.format == "vercel") {
    config = ImportVercel(*text, "vercel.json");
  } else if (c.format == "toml") {
    config = ParseSlipwayToml(*text, "slipway.toml", c.name);
  } else {
    std::map<std::string, std::string> dotenv;
    if (auto env = ReadFile(base + ".env"); env.ok()) {
      auto parsed = ParseDotEnv(*env, ".env");
      ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
      dotenv = *parsed;
    }
    config = ImportComposeWithEnv(*text, "docker-compose.yml", dotenv);
  }
  std::string actual;
  if (config.ok()) {
    actual = Dump(*config);
  } else {
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument) << config.status().ToString();
    EXPECT_EQ(config.status().message().find('\n'), std::string::npos) << "errors are one line";
    actual = "error: " + config.status().message() + "\n";
  }
  if (std::getenv("SLIPWAY_UPDATE_CASES") != nullptr) {
    ASSERT_TRUE(WriteFileAtomic(base + ".expected", actual).ok());
    return;
  }
  auto expected = ReadFile(base + ".expected");
  ASSERT_TRUE(expected.ok()) << "missing " << base << ".expected; run with SLIPWAY_UPDATE_CASES=1";
  EXPECT_EQ(actual, *expected) << "case " << c.path;
}

INSTANTIATE_TEST_SUITE_P(Cases, ImportCaseTest, testing::ValuesIn(Cases()),
                         [](const testing::TestParamInfo<Case>& info) {
                           return info.param.format + "_" + info.param.name;
                         });

}  // namespace
}  // namespace slipway
