// railway.json / railway.toml: Railway's config-as-code for one service
// (https://docs.railway.com/reference/config-as-code). The file has a "build" and a
// "deploy" section; it becomes the service "web" (docs/importers/railway.md).

#include <algorithm>

#include "config/import_tree.h"
#include "config/importers.h"

namespace slipway {
namespace {

constexpr int kMaxReplicas = 32;
constexpr int kMaxSeconds = 3600;

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class RailwayReader {
 public:
  RailwayReader(const std::string& filename, ProjectConfig& config)
      : fields_(filename, config), service_(config.services.emplace_back()) {}

  Status Read(const ImportNode& root) {
    RETURN_IF_ERROR(fields_.ExpectMap(root, "the top level"));
    for (const auto& m : root.members) {
      if (m.key == "$schema") continue;  // the editor's schema URL; nothing to run
      if (m.key == "build") {
        RETURN_IF_ERROR(ReadBuild(m.value));
      } else if (m.key == "deploy") {
        RETURN_IF_ERROR(ReadDeploy(m.value));
      } else if (m.key == "environments") {
        fields_.Unsupported(m, m.key,
                            "per-environment overrides are not applied; use slipway.toml for "
                            "settings that differ between environments");
      } else {
        fields_.Unsupported(m, m.key, "", {"build", "deploy", "environments"});
      }
    }
    return Status::Ok();
  }

 private:
  std::string Key(const std::string& field) const { return "services.web." + field; }

  Status ReadBuild(const ImportNode& build) {
    RETURN_IF_ERROR(fields_.ExpectMap(build, "build"));
    for (const auto& m : build.members) {
      const ImportNode& v = m.value;
      if (m.key == "builder") {
        ASSIGN_OR_RETURN(std::string builder, fields_.String(v, "builder"));
        std::string upper;
        for (char c : builder)
          upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (upper == "DOCKERFILE") {
          fields_.Warn(v.where,
                       "builder \"DOCKERFILE\" is not supported (no container engine); the app "
                       "is built by detection instead");
        } else if (upper != "NIXPACKS" && upper != "RAILPACK" && upper != "HEROKU" &&
                   upper != "PAAS") {
          return fields_.Error(v.where,
                               "\"builder\" must be one of \"RAILPACK\", \"NIXPACKS\", "
                               "\"DOCKERFILE\", \"HEROKU\", \"PAAS\" (got " +
                                   QuoteForMessage(builder) + ")");
        }
        // Railpack and Nixpacks detect the language as Slipway's builder does.
      } else if (m.key == "buildCommand") {
        ASSIGN_OR_RETURN(service_.build_command, fields_.Command(v, m.key));
        fields_.Origin(Key("buildCommand"), v);
      } else if (m.key == "watchPatterns") {
        ASSIGN_OR_RETURN(service_.watch_patterns, fields_.Strings(v, m.key));
        fields_.Origin(Key("watchPatterns"), v);
      } else {
        // dockerfilePath, nixpacksPlan, nixpacksConfigPath, nixpacksVersion, buildEnvironment...
        fields_.Unsupported(m, "build." + m.key, "", {"builder", "buildCommand", "watchPatterns"});
      }
    }
    return Status::Ok();
  }

  Status ReadDeploy(const ImportNode& deploy) {
    RETURN_IF_ERROR(fields_.ExpectMap(deploy, "deploy"));
    for (const auto& m : deploy.members) {
      const ImportNode& v = m.value;
      if (m.key == "startCommand") {
        ASSIGN_OR_RETURN(service_.start_command, fields_.Command(v, m.key));
        fields_.Origin(Key("startCommand"), v);
      } else if (m.key == "preDeployCommand") {
        RETURN_IF_ERROR(ReadPreDeploy(v));
        fields_.Origin(Key("preDeployCommand"), v);
      } else if (m.key == "healthcheckPath") {
        ASSIGN_OR_RETURN(service_.healthcheck_path, fields_.HealthPath(v, m.key));
        fields_.Origin(Key("healthcheckPath"), v);
      } else if (m.key == "healthcheckTimeout") {
        ASSIGN_OR_RETURN(service_.healthcheck_timeout, fields_.Int(v, m.key, 1, kMaxSeconds));
        fields_.Origin(Key("healthcheckTimeout"), v);
      } else if (m.key == "restartPolicyType") {
        ASSIGN_OR_RETURN(std::string policy, fields_.String(v, m.key));
        if (policy != "ON_FAILURE" && policy != "ALWAYS" && policy != "NEVER") {
          return fields_.Error(v.where,
                               "\"restartPolicyType\" must be one of \"ON_FAILURE\", \"ALWAYS\", "
                               "\"NEVER\" (got " +
                                   QuoteForMessage(policy) + ")");
        }
        service_.restart_policy = policy;
        fields_.Origin(Key("restartPolicyType"), v);
      } else if (m.key == "restartPolicyMaxRetries") {
        ASSIGN_OR_RETURN(service_.restart_max_retries, fields_.Int(v, m.key, 0, 1000));
        fields_.Origin(Key("restartPolicyMaxRetries"), v);
      } else if (m.key == "numReplicas") {
        ASSIGN_OR_RETURN(service_.num_replicas, fields_.Int(v, m.key, 1, kMaxReplicas));
        fields_.Origin(Key("numReplicas"), v);
      } else if (m.key == "cronSchedule") {
        ASSIGN_OR_RETURN(service_.cron_schedule, fields_.CronSchedule(v, m.key));
        service_.type = "cron";
        fields_.Origin(Key("cronSchedule"), v);
        fields_.Origin(Key("type"), v);
      } else if (m.key == "overlapSeconds") {
        ASSIGN_OR_RETURN(service_.overlap_seconds, fields_.Int(v, m.key, 0, kMaxSeconds));
        fields_.Origin(Key("overlapSeconds"), v);
      } else if (m.key == "drainingSeconds") {
        ASSIGN_OR_RETURN(service_.draining_seconds, fields_.Int(v, m.key, 0, kMaxSeconds));
        fields_.Origin(Key("drainingSeconds"), v);
      } else {
        // region, sleepApplication, multiRegionConfig, runtime, limitOverride, ...
        fields_.Unsupported(m, "deploy." + m.key, "",
                            {"startCommand", "preDeployCommand", "healthcheckPath",
                             "healthcheckTimeout", "restartPolicyType", "restartPolicyMaxRetries",
                             "numReplicas", "cronSchedule", "overlapSeconds", "drainingSeconds"});
      }
    }
    return Status::Ok();
  }

  Status ReadPreDeploy(const ImportNode& v) {
    if (v.IsSequence()) {
      ASSIGN_OR_RETURN(auto commands, fields_.Strings(v, "preDeployCommand"));
      std::string joined;
      for (const auto& c : commands) {
        if (c.find_first_not_of(" \t\r\n") == std::string::npos) continue;
        joined += (joined.empty() ? "" : " && ") + c;
      }
      if (joined.empty()) {
        return fields_.Error(v.where, "\"preDeployCommand\" must hold at least one command");
      }
      service_.pre_deploy_command = joined;
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(service_.pre_deploy_command, fields_.Command(v, "preDeployCommand"));
    return Status::Ok();
  }

  FieldReader fields_;
  ServiceConfig& service_;
};

}  // namespace

Result<ProjectConfig> ImportRailway(std::string_view text, const std::string& filename) {
  ImportNode root;
  if (EndsWith(filename, ".toml")) {
    ASSIGN_OR_RETURN(root, ImportTreeFromToml(text, filename));
  } else {
    ASSIGN_OR_RETURN(YAML::Node yaml, LoadJson(text, filename));
    ASSIGN_OR_RETURN(root, ImportTreeFromYaml(yaml, filename));
  }
  ProjectConfig config;
  config.services.reserve(1);
  RailwayReader reader(filename, config);
  RETURN_IF_ERROR(reader.Read(root));
  return config;
}

}  // namespace slipway
