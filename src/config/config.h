#pragma once

// Config: what a project declares about itself, read from the app directory.
//
// `slipway.toml` at the project root is read when present. Without it, the project
// is one service named "web" rooted at the directory, and a Procfile's `web:` line
// (if any) gives its start command; what kind of app it is (Python, Node, static)
// is the builder's detection, not the config's.
//
// Thread-safety: pure functions.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace slipway {

// When a fresh deployment is rolled back by itself: within `watch_seconds` of going live,
// on the first trigger that fires. A threshold of 0 turns its trigger off.
struct AutoRollbackConfig {
  bool enabled = true;
  int watch_seconds = 300;
  int failed_health_checks = 3;   // consecutive failed probes of one replica
  double error_rate_percent = 5;  // share of 5xx answers over the window
  int error_rate_window_seconds = 60;
  int error_rate_min_requests = 20;  // fewer requests in the window: no verdict
  int p95_ms = 0;                    // p95 latency over the same window
  int memory_mb = 0;                 // resident memory of one replica
};

struct ServiceConfig {
  std::string name = "web";
  std::string root_directory = ".";  // relative to the project directory; no ".." escapes
  std::string builder;               // "" (detect), "python", "node", "static", "command"
  std::string build_command;         // shell command run after the builder's own steps
  std::string start_command;         // shell command; "" lets the builder decide
  std::string static_directory;      // static sites: served directory, relative to root
  std::string healthcheck_path;      // "" : the port accepting connections is healthy
  int healthcheck_timeout = 60;      // seconds
  int num_replicas = 1;
  std::map<std::string, std::string> variables;
  std::string procfile_release;  // Procfile `release:` command, if any
  // Runs once per deploy in the new release, before the switch; "" : the Procfile's
  // release: command, if any.
  std::string pre_deploy_command;
  std::string healthcheck_host;  // Host header of health checks; "" : the public host
  int healthcheck_interval = 5;  // seconds between probes while a deploy is watched
  int draining_seconds = 30;     // in-flight requests may finish this long after the switch
  int overlap_seconds = 0;       // old replicas stay up this long after the switch
  std::string restart_policy = "ON_FAILURE";  // "ON_FAILURE", "ALWAYS", "NEVER"
  int restart_max_retries = 10;               // ON_FAILURE restarts before CRASHED
  int keep_releases = 10;                     // successful releases kept for rollback
  AutoRollbackConfig auto_rollback;
};

struct ProjectConfig {
  std::string name;                     // the project's name (validated DNS label)
  std::string source;                   // "slipway.toml", "Procfile" or "detected"
  std::vector<ServiceConfig> services;  // at least one, names unique
  std::vector<std::string> warnings;    // e.g. a Procfile process type not yet supported
};

// Loads the config of the app directory `dir`. `fallback_name` is the project name
// used when the config does not set one (the CLI passes the directory's name; it is
// sanitised into a DNS label).
//
// Errors (kInvalidArgument), one line each, naming file:line:column and the field
// (docs/config.md lists them):
//   slipway.toml:4:1: unknown key "healthcheck_path" in [services.api] (did you mean
//                     "healthcheckPath"?)
//   slipway.toml:7:15: "numReplicas" must be an integer from 1 to 32 (got "two")
//   slipway.toml:2:8: Error while parsing key-value pair: ...  (toml++'s description)
// A rootDirectory that is not a directory under `dir` is an error at its position. A
// missing `dir` is kNotFound; an unreadable slipway.toml or Procfile keeps the OS error's
// code, its message prefixed "cannot read slipway.toml" (or Procfile).
Result<ProjectConfig> LoadProjectConfig(const std::string& dir, const std::string& fallback_name);

// The same, from text (used by LoadProjectConfig and tests). `filename` prefixes
// every error message.
Result<ProjectConfig> ParseSlipwayToml(std::string_view text, const std::string& filename,
                                       const std::string& fallback_name);

// Procfile lines "type: command" in file order; kInvalidArgument "Procfile:3: ..." for
// a malformed line.
Result<std::vector<std::pair<std::string, std::string>>> ParseProcfile(std::string_view text);

// JSON form of a ServiceConfig (stored with each deployment) and back.
std::string ServiceConfigToJson(const ServiceConfig& config);
Result<ServiceConfig> ServiceConfigFromJson(const std::string& json);

}  // namespace slipway
