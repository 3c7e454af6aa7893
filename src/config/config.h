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
