#pragma once

// `slipway config show [DIR]`: the resolved config of an app directory, each value with
// the file and position it came from ("default" when no file set it), the add-ons, the
// shared variables and the warnings. Local: reads the directory, needs no server.
//
// Values are printed as the config holds them: references like ${{ db.DATABASE_URL }}
// stay unresolved, and a value interpolated from a compose .env file (which usually
// holds secrets) is shown as ***.
//
// Thread-safety: pure functions, except ConfigShowCommand which prints.

#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"

namespace slipway {

struct ConfigShowOptions {
  std::string dir = ".";
  bool all = false;   // also the fields left at their defaults
  bool json = false;  // machine-readable output
};

// The text form: TOML-like lines `key = value` followed by `# origin`, then one
// "warning: ..." line per warning. `dir` is shown in the header.
std::string FormatConfigText(const ProjectConfig& config, const std::string& dir, bool all);

// The JSON form: {"directory", "project": {"value", "origin"}, "sources", "services":
// {name: {key: {"value", "origin"}}}, "addons": {name: {"kind", "origin"}},
// "sharedVariables": {key: {"value", "origin"}}, "warnings": [...]}.
nlohmann::ordered_json ConfigToJson(const ProjectConfig& config, const std::string& dir, bool all);

// Loads `options.dir`'s config and prints it; 0, or 1 with the one-line error.
int ConfigShowCommand(const ConfigShowOptions& options);

}  // namespace slipway
