#include "cli/config_command.h"

#include <cstdio>
#include <filesystem>
#include <vector>

#include "cli/cli_util.h"
#include "common/fs.h"

namespace slipway {
namespace {

using ojson = nlohmann::ordered_json;

// Service fields in the order docs/config.md lists them.
const std::vector<std::string>& FieldOrder() {
  static const std::vector<std::string> keys = {"type",
                                                "cronSchedule",
                                                "rootDirectory",
                                                "builder",
                                                "buildCommand",
                                                "startCommand",
                                                "preDeployCommand",
                                                "procfileRelease",
                                                "staticDirectory",
                                                "basePath",
                                                "healthcheckPath",
                                                "healthcheckTimeout",
                                                "healthcheckInterval",
                                                "healthcheckHost",
                                                "numReplicas",
                                                "restartPolicyType",
                                                "restartPolicyMaxRetries",
                                                "drainingSeconds",
                                                "overlapSeconds",
                                                "keepReleases",
                                                "watchPatterns",
                                                "requiredVariables",
                                                "cleanUrls",
                                                "trailingSlash",
                                                "rewrites",
                                                "redirects",
                                                "headers",
                                                "autoRollback"};
  return keys;
}

struct Row {
  std::string key;
  ojson value;
  std::string origin;
};

// Where `key` was set: its own entry, else the first entry under it (a table whose
// items were recorded one by one), else "default".
std::string OriginOf(const ProjectConfig& config, const std::string& key) {
  if (auto it = config.origins.find(key); it != config.origins.end()) return it->second;
  if (auto it = config.origins.lower_bound(key + ".");
      it != config.origins.end() && it->first.rfind(key + ".", 0) == 0) {
    return it->second;
  }
  return "default";
}

bool FromDotEnv(const std::string& origin) {
  const std::string_view suffix = "(.env)";
  return origin.size() >= suffix.size() &&
         origin.compare(origin.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<Row> ServiceRows(const ProjectConfig& config, const ServiceConfig& service, bool all) {
  ServiceConfig defaults;
  defaults.name = service.name;
  const ojson actual = ojson::parse(ServiceConfigToJson(service));
  const ojson fresh = ojson::parse(ServiceConfigToJson(defaults));
  const std::string prefix = "services." + service.name + ".";
  std::vector<Row> rows;
  for (const std::string& key : FieldOrder()) {
    if (!actual.contains(key)) continue;
    if (key == "autoRollback") {
      for (const auto& [sub, value] : actual[key].items()) {
        std::string origin = OriginOf(config, prefix + "autoRollback." + sub);
        if (origin == "default") origin = OriginOf(config, prefix + "autoRollback");
        if (all || value != fresh[key][sub] || origin != "default") {
          rows.push_back({"autoRollback." + sub, value, origin});
        }
      }
      continue;
    }
    std::string origin = OriginOf(config, prefix + key);
    if (all || actual[key] != fresh[key] || origin != "default") {
      rows.push_back({key, actual[key], origin});
    }
  }
  return rows;
}

std::vector<Row> VariableRows(const ProjectConfig& config,
                              const std::map<std::string, std::string>& variables,
                              const std::string& prefix) {
  std::vector<Row> rows;
  for (const auto& [key, value] : variables) {
    std::string origin = OriginOf(config, prefix + key);
    rows.push_back({key, FromDotEnv(origin) ? ojson("***") : ojson(value), origin});
  }
  return rows;
}

std::string ProjectOrigin(const ProjectConfig& config) {
  auto it = config.origins.find("project");
  return it != config.origins.end() ? it->second : "directory name";
}

void AppendRows(std::string& out, const std::vector<Row>& rows) {
  constexpr size_t kColumn = 44;
  for (const Row& row : rows) {
    std::string line =
        row.key + " = " + row.value.dump(-1, ' ', false, ojson::error_handler_t::replace);
    if (line.size() < kColumn) line.resize(kColumn, ' ');
    out += line + "  # " + row.origin + "\n";
  }
}

// An add-on's settings after `kind`: a postgres add-on's backup settings when set (or
// with `all`, their defaults); a redis add-on has none.
std::vector<Row> AddonRows(const ProjectConfig& config, const AddonConfig& addon, bool all) {
  std::vector<Row> rows;
  if (addon.kind != "postgres") return rows;
  const std::string prefix = "addons." + addon.name + ".";
  if (all || !addon.backup_schedule.empty()) {
    rows.push_back({"backupSchedule",
                    addon.backup_schedule.empty() ? kDefaultBackupSchedule : addon.backup_schedule,
                    OriginOf(config, prefix + "backupSchedule")});
  }
  if (all || addon.backup_retention != 0) {
    rows.push_back({"backupRetention",
                    addon.backup_retention == 0 ? kDefaultBackupRetention : addon.backup_retention,
                    OriginOf(config, prefix + "backupRetention")});
  }
  return rows;
}

}  // namespace

std::string FormatConfigText(const ProjectConfig& config, const std::string& dir, bool all) {
  std::string out = "# " + dir + ": read from ";
  for (size_t i = 0; i < config.sources.size(); ++i) {
    out += (i ? ", " : "") + config.sources[i];
  }
  out += "\n";
  AppendRows(out, {{"project", config.name, ProjectOrigin(config)}});
  for (const ServiceConfig& s : config.services) {
    out += "\n[services." + s.name + "]\n";
    AppendRows(out, ServiceRows(config, s, all));
    if (!s.variables.empty()) {
      out += "[services." + s.name + ".variables]\n";
      AppendRows(out, VariableRows(config, s.variables, "services." + s.name + ".variables."));
    }
  }
  for (const AddonConfig& a : config.addons) {
    out += "\n[addons." + a.name + "]\n";
    AppendRows(out, {{"kind", a.kind, OriginOf(config, "addons." + a.name)}});
    AppendRows(out, AddonRows(config, a, all));
  }
  if (!config.shared_variables.empty()) {
    out += "\n[variables]  # shared: ${{ shared.KEY }}\n";
    AppendRows(out, VariableRows(config, config.shared_variables, "shared."));
  }
  if (!config.warnings.empty()) out += "\n";
  for (const std::string& w : config.warnings) out += "warning: " + w + "\n";
  return out;
}

ojson ConfigToJson(const ProjectConfig& config, const std::string& dir, bool all) {
  auto object = [](const std::vector<Row>& rows) {
    ojson out = ojson::object();
    for (const Row& r : rows) out[r.key] = {{"value", r.value}, {"origin", r.origin}};
    return out;
  };
  ojson out;
  out["directory"] = dir;
  out["project"] = {{"value", config.name}, {"origin", ProjectOrigin(config)}};
  out["sources"] = config.sources;
  out["services"] = ojson::object();
  for (const ServiceConfig& s : config.services) {
    ojson fields = object(ServiceRows(config, s, all));
    fields["variables"] =
        object(VariableRows(config, s.variables, "services." + s.name + ".variables."));
    out["services"][s.name] = fields;
  }
  out["addons"] = ojson::object();
  for (const AddonConfig& a : config.addons) {
    ojson addon = {{"kind", a.kind}, {"origin", OriginOf(config, "addons." + a.name)}};
    for (const Row& r : AddonRows(config, a, all)) {
      addon[r.key] = {{"value", r.value}, {"origin", r.origin}};
    }
    out["addons"][a.name] = addon;
  }
  out["sharedVariables"] = object(VariableRows(config, config.shared_variables, "shared."));
  out["warnings"] = config.warnings;
  return out;
}

int ConfigShowCommand(const ConfigShowOptions& options) {
  std::string dir = AbsolutePath(options.dir);
  std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  auto config = LoadProjectConfig(dir, p.filename().string());
  if (!config.ok()) return PrintError(config.status());
  std::string out = options.json ? ConfigToJson(*config, dir, options.all)
                                           .dump(2, ' ', false, ojson::error_handler_t::replace) +
                                       "\n"
                                 : FormatConfigText(*config, dir, options.all);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace slipway
