// Data-driven slipway.toml cases: each cases/NAME.toml is parsed with the fallback project
// name NAME, and the outcome (a normalised dump of the config, or "error: <message>") must
// equal cases/NAME.expected.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/fs.h"
#include "config/config.h"

namespace slipway {
namespace {

std::string Q(const std::string& s) { return nlohmann::json(s).dump(); }

// One line per field, every field shown, so a case pins defaults as well as values.
std::string Dump(const ProjectConfig& config) {
  std::string out = "project: " + config.name + "\nsource: " + config.source + "\n";
  for (const auto& s : config.services) {
    out += "service: " + s.name + "\n";
    out += "  rootDirectory: " + Q(s.root_directory) + "\n";
    out += "  builder: " + Q(s.builder) + "\n";
    out += "  buildCommand: " + Q(s.build_command) + "\n";
    out += "  startCommand: " + Q(s.start_command) + "\n";
    out += "  staticDirectory: " + Q(s.static_directory) + "\n";
    out += "  healthcheckPath: " + Q(s.healthcheck_path) + "\n";
    out += "  healthcheckTimeout: " + std::to_string(s.healthcheck_timeout) + "\n";
    out += "  numReplicas: " + std::to_string(s.num_replicas) + "\n";
    for (const auto& [k, v] : s.variables) out += "  variables." + k + ": " + Q(v) + "\n";
    out += "  procfileRelease: " + Q(s.procfile_release) + "\n";
  }
  for (const auto& w : config.warnings) out += "warning: " + w + "\n";
  return out;
}

std::vector<std::string> CaseNames() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(SLIPWAY_CONFIG_CASES_DIR)) {
    if (entry.path().extension() == ".toml") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class ConfigCaseTest : public testing::TestWithParam<std::string> {};

TEST_P(ConfigCaseTest, MatchesExpected) {
  const std::string base = std::string(SLIPWAY_CONFIG_CASES_DIR) + "/" + GetParam();
  auto text = ReadFile(base + ".toml");
  ASSERT_TRUE(text.ok()) << text.status().ToString();

  auto config = ParseSlipwayToml(*text, "slipway.toml", GetParam());
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
  EXPECT_EQ(actual, *expected) << "case " << base << ".toml";
}

INSTANTIATE_TEST_SUITE_P(Cases, ConfigCaseTest, testing::ValuesIn(CaseNames()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(ConfigCasesDir, HoldsTheCases) {
  // Guards against a wrong SLIPWAY_CONFIG_CASES_DIR silently running zero cases.
  EXPECT_GE(CaseNames().size(), 20u);
  for (const auto& name : CaseNames()) {
    EXPECT_TRUE(PathExists(std::string(SLIPWAY_CONFIG_CASES_DIR) + "/" + name + ".expected"))
        << name;
  }
}

}  // namespace
}  // namespace slipway
