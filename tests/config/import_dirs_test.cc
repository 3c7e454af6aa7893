// Data-driven importer cases: each directory import_cases/apps/NAME holds an app directory's
// config files (railway.json, railway.toml, render.yaml, app.json, Procfile ...). It is
// loaded with LoadProjectConfig(dir, NAME), and the outcome (a dump of every value that
// differs from the defaults, the add-ons, shared variables, origins and warnings; or
// "error: <message>") must equal import_cases/apps/NAME.expected.
// SLIPWAY_UPDATE_CASES=1 rewrites the .expected files (review the diff before keeping it).

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

std::string Rules(const std::vector<RouteRule>& rules) {
  std::string out;
  for (const auto& r : rules) {
    out += (out.empty() ? "" : ", ") + Q(r.source) + " -> " + Q(r.destination) +
           (r.status ? " " + std::to_string(r.status) : "");
  }
  return out;
}

std::string List(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + Q(i);
  return out;
}

// The service's values that differ from a default ServiceConfig, one per line.
std::string DumpService(const ServiceConfig& s) {
  const ServiceConfig d;
  std::string out = "service: " + s.name + " (" + s.type + ")\n";
  auto str = [&](const char* key, const std::string& v, const std::string& dv) {
    if (v != dv) out += std::string("  ") + key + ": " + Q(v) + "\n";
  };
  auto num = [&](const char* key, int v, int dv) {
    if (v != dv) out += std::string("  ") + key + ": " + std::to_string(v) + "\n";
  };
  str("cronSchedule", s.cron_schedule, d.cron_schedule);
  str("rootDirectory", s.root_directory, d.root_directory);
  str("builder", s.builder, d.builder);
  str("buildCommand", s.build_command, d.build_command);
  str("startCommand", s.start_command, d.start_command);
  str("preDeployCommand", s.pre_deploy_command, d.pre_deploy_command);
  str("procfileRelease", s.procfile_release, d.procfile_release);
  str("staticDirectory", s.static_directory, d.static_directory);
  str("healthcheckPath", s.healthcheck_path, d.healthcheck_path);
  num("healthcheckTimeout", s.healthcheck_timeout, d.healthcheck_timeout);
  num("numReplicas", s.num_replicas, d.num_replicas);
  str("restartPolicyType", s.restart_policy, d.restart_policy);
  num("restartPolicyMaxRetries", s.restart_max_retries, d.restart_max_retries);
  num("drainingSeconds", s.draining_seconds, d.draining_seconds);
  num("overlapSeconds", s.overlap_seconds, d.overlap_seconds);
  for (const auto& [k, v] : s.variables) out += "  variables." + k + ": " + Q(v) + "\n";
  if (!s.required_variables.empty())
    out += "  requiredVariables: " + List(s.required_variables) + "\n";
  if (!s.watch_patterns.empty()) out += "  watchPatterns: " + List(s.watch_patterns) + "\n";
  if (!s.rewrites.empty()) out += "  rewrites: " + Rules(s.rewrites) + "\n";
  if (!s.redirects.empty()) out += "  redirects: " + Rules(s.redirects) + "\n";
  for (const auto& h : s.headers) {
    for (const auto& [name, value] : h.headers) {
      out += "  header: " + Q(h.source) + " " + Q(name) + ": " + Q(value) + "\n";
    }
  }
  return out;
}

std::string Dump(const ProjectConfig& config) {
  std::string out = "project: " + config.name + "\nsources: " + List(config.sources) + "\n";
  for (const auto& s : config.services) out += DumpService(s);
  for (const AddonConfig& a : config.addons) {
    out += "addon: " + a.name + " (" + a.kind + ")";
    if (!a.backup_schedule.empty()) out += " backupSchedule=" + Q(a.backup_schedule);
    if (a.backup_retention != 0) out += " backupRetention=" + std::to_string(a.backup_retention);
    out += "\n";
  }
  for (const auto& [k, v] : config.shared_variables) out += "shared." + k + ": " + Q(v) + "\n";
  for (const auto& [k, v] : config.origins) out += "origin: " + k + " <- " + v + "\n";
  for (const auto& w : config.warnings) out += "warning: " + w + "\n";
  return out;
}

std::string CasesDir() { return std::string(SLIPWAY_IMPORT_CASES_DIR) + "/apps"; }

std::vector<std::string> CaseNames() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(CasesDir())) {
    if (entry.is_directory()) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class AppDirCaseTest : public testing::TestWithParam<std::string> {};

TEST_P(AppDirCaseTest, MatchesExpected) {
  const std::string dir = CasesDir() + "/" + GetParam();
  auto config = LoadProjectConfig(dir, GetParam());
  std::string actual;
  if (config.ok()) {
    actual = Dump(*config);
  } else {
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument) << config.status().ToString();
    EXPECT_EQ(config.status().message().find('\n'), std::string::npos) << "errors are one line";
    actual = "error: " + config.status().message() + "\n";
  }
  const std::string expected_path = dir + ".expected";
  if (std::getenv("SLIPWAY_UPDATE_CASES") != nullptr) {
    ASSERT_TRUE(WriteFileAtomic(expected_path, actual).ok());
    return;
  }
  auto expected = ReadFile(expected_path);
  ASSERT_TRUE(expected.ok()) << "missing " << expected_path
                             << "; run with SLIPWAY_UPDATE_CASES=1 and review it";
  EXPECT_EQ(actual, *expected) << "case " << dir;
}

INSTANTIATE_TEST_SUITE_P(Apps, AppDirCaseTest, testing::ValuesIn(CaseNames()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace slipway
