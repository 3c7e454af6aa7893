// vercel.json -> one static (or Node) service "web", cron services for `crons`, and the
// routing rules the edge applies to static sites (docs/importers/vercel.md).

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "common/names.h"
#include "config/importers.h"

namespace slipway {
namespace {

// Frameworks whose output is a server, not files: deployed as a Node app (npm start).
const std::set<std::string>& ServerFrameworks() {
  static const std::set<std::string> frameworks = {
      "nextjs",  "nuxtjs",    "remix",    "sveltekit",  "sveltekit-1",
      "blitzjs", "redwoodjs", "hydrogen", "solidstart", "nitro"};
  return frameworks;
}

// Keys that configure Vercel's own infrastructure: read, named in a warning, not used.
const std::set<std::string>& UnsupportedKeys() {
  static const std::set<std::string> keys = {"functions",
                                             "regions",
                                             "functionFailoverRegions",
                                             "images",
                                             "github",
                                             "git",
                                             "public",
                                             "builds",
                                             "routes",
                                             "ignoreCommand",
                                             "version",
                                             "alias",
                                             "scope",
                                             "bunVersion",
                                             "fluid",
                                             "outputFileTracing",
                                             "passiveRegions"};
  return keys;
}

class VercelReader {
 public:
  explicit VercelReader(const std::string& filename) : filename_(filename) {}

  Result<ProjectConfig> Read(std::string_view text);

 private:
  std::string At(const YAML::Node& node) const { return Where(filename_, node); }
  Status ErrorAt(const YAML::Node& node, const std::string& message) const {
    return InvalidArgument(At(node) + ": " + message);
  }
  void Warn(const YAML::Node& node, const std::string& message) {
    config_.warnings.push_back(At(node) + ": " + message);
  }
  void Origin(const std::string& key, const YAML::Node& node) {
    config_.origins["services.web." + key] = At(node);
  }

  Result<std::string> String(const YAML::Node& node, const std::string& field) const;
  Result<bool> Bool(const YAML::Node& node, const std::string& field) const;
  Status ReadVariables(const YAML::Node& node, const std::string& field);
  Status ReadRules(const YAML::Node& node, const std::string& field, std::vector<RouteRule>& out);
  Status ReadHeaders(const YAML::Node& node);
  Status ReadCrons(const YAML::Node& node);

  const std::string& filename_;
  ProjectConfig config_;
  ServiceConfig web_;
};

Result<std::string> VercelReader::String(const YAML::Node& node, const std::string& field) const {
  if (!node.IsScalar()) return ErrorAt(node, "\"" + field + "\" must be a string");
  return node.Scalar();
}

Result<bool> VercelReader::Bool(const YAML::Node& node, const std::string& field) const {
  if (node.IsScalar() && node.Tag() != "!" &&
      (node.Scalar() == "true" || node.Scalar() == "false")) {
    return node.Scalar() == "true";
  }
  return ErrorAt(node, "\"" + field + "\" must be true or false (got " +
                           (node.IsScalar() ? "\"" + node.Scalar() + "\"" : "a structure") + ")");
}

Status VercelReader::ReadVariables(const YAML::Node& node, const std::string& field) {
  if (!node.IsMap()) return ErrorAt(node, "\"" + field + "\" must be an object of NAME: value");
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    if (!kv.second.IsScalar()) {
      return ErrorAt(kv.second, "variable \"" + key + "\" in \"" + field + "\" must be a string");
    }
    web_.variables[key] = kv.second.Scalar();
    config_.origins["services.web.variables." + key] = At(kv.first);
  }
  return Status::Ok();
}

Status VercelReader::ReadRules(const YAML::Node& node, const std::string& field,
                               std::vector<RouteRule>& out) {
  if (!node.IsSequence()) {
    return ErrorAt(node, "\"" + field + "\" must be an array of {source, destination}");
  }
  for (const auto& rule : node) {
    if (!rule.IsMap()) return ErrorAt(rule, "each of \"" + field + "\" must be an object");
    RouteRule r;
    bool has_source = false, has_destination = false;
    YAML::Node source_node, destination_node;
    for (const auto& kv : rule) {
      const std::string k = kv.first.Scalar();
      if (k == "source") {
        ASSIGN_OR_RETURN(r.source, String(kv.second, field + "[].source"));
        has_source = true;
        source_node = kv.second;
      } else if (k == "destination") {
        ASSIGN_OR_RETURN(r.destination, String(kv.second, field + "[].destination"));
        has_destination = true;
        destination_node = kv.second;
      } else if (k == "permanent" && field == "redirects") {
        ASSIGN_OR_RETURN(bool permanent, Bool(kv.second, "permanent"));
        if (r.status == 0) r.status = permanent ? 308 : 307;
      } else if (k == "statusCode" && field == "redirects") {
        int code = 0;
        if (kv.second.IsScalar()) code = std::atoi(kv.second.Scalar().c_str());
        if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308) {
          return ErrorAt(kv.second, "\"statusCode\" must be 301, 302, 303, 307 or 308");
        }
        r.status = code;
      } else {
        Warn(kv.first, "\"" + field + "[]." + k + "\" is not supported and is ignored");
      }
    }
    if (!has_source || !has_destination) {
      return ErrorAt(rule, "each of \"" + field + "\" needs \"source\" and \"destination\"");
    }
    RETURN_IF_ERROR(
        CheckRouteRule(field, r.source, At(source_node), &r.destination, At(destination_node)));
    if (field == "redirects" && r.status == 0) r.status = 308;  // Vercel: permanent by default
    out.push_back(std::move(r));
  }
  Origin(field, node);
  return Status::Ok();
}

Status VercelReader::ReadHeaders(const YAML::Node& node) {
  if (!node.IsSequence()) {
    return ErrorAt(node, "\"headers\" must be an array of {source, headers: [{key, value}]}");
  }
  for (const auto& rule : node) {
    if (!rule.IsMap()) return ErrorAt(rule, "each of \"headers\" must be an object");
    HeaderRule h;
    bool has_source = false;
    YAML::Node source_node;
    for (const auto& kv : rule) {
      const std::string k = kv.first.Scalar();
      if (k == "source") {
        ASSIGN_OR_RETURN(h.source, String(kv.second, "headers[].source"));
        has_source = true;
        source_node = kv.second;
      } else if (k == "headers") {
        if (!kv.second.IsSequence()) {
          return ErrorAt(kv.second, "\"headers[].headers\" must be an array of {key, value}");
        }
        for (const auto& pair : kv.second) {
          if (!pair.IsMap() || !pair["key"] || !pair["value"] || !pair["key"].IsScalar() ||
              !pair["value"].IsScalar()) {
            return ErrorAt(pair, "each header must be {\"key\": ..., \"value\": ...}");
          }
          // A header the edge frames answers with is left out (Vercel ignores it too).
          if (Status st = CheckHeaderName(pair["key"].Scalar(), At(pair["key"])); !st.ok()) {
            config_.warnings.push_back(st.message() + "; it is ignored");
            continue;
          }
          h.headers.emplace_back(pair["key"].Scalar(), pair["value"].Scalar());
        }
      } else {
        Warn(kv.first, "\"headers[]." + k + "\" is not supported and is ignored");
      }
    }
    if (!has_source) return ErrorAt(rule, "each of \"headers\" needs \"source\"");
    RETURN_IF_ERROR(CheckRouteRule("headers", h.source, At(source_node), nullptr, ""));
    web_.headers.push_back(std::move(h));
  }
  Origin("headers", node);
  return Status::Ok();
}

// Each cron becomes a service that requests its path of the web service on schedule, as
// Vercel's scheduler does (without Vercel's CRON_SECRET header: set one with variables).
Status VercelReader::ReadCrons(const YAML::Node& node) {
  if (!node.IsSequence()) return ErrorAt(node, "\"crons\" must be an array of {path, schedule}");
  int index = 0;
  for (const auto& entry : node) {
    ++index;
    if (!entry.IsMap()) return ErrorAt(entry, "each of \"crons\" must be {path, schedule}");
    const YAML::Node path = entry["path"];
    const YAML::Node schedule = entry["schedule"];
    if (!path || !schedule)
      return ErrorAt(entry, "each of \"crons\" needs \"path\" and \"schedule\"");
    ASSIGN_OR_RETURN(std::string p, String(path, "crons[].path"));
    ASSIGN_OR_RETURN(std::string s, String(schedule, "crons[].schedule"));
    if (p.empty() || p.front() != '/') {
      return ErrorAt(path, "\"crons[].path\" must start with \"/\" (got \"" + p + "\")");
    }
    ASSIGN_OR_RETURN(s, CheckCronExpression(s, "crons[].schedule", At(schedule)));
    for (const auto& kv : entry) {
      const std::string k = kv.first.Scalar();
      if (k != "path" && k != "schedule") {
        Warn(kv.first, "\"crons[]." + k + "\" is not supported and is ignored");
      }
    }
    ServiceConfig cron;
    cron.name = "cron-" + std::to_string(index);
    cron.type = "cron";
    cron.builder = "command";
    cron.cron_schedule = s;
    cron.variables["CRON_URL"] = "${{ web.SLIPWAY_PRIVATE_URL }}" + p;
    cron.start_command = "curl -fsS --max-time 300 \"$CRON_URL\"";
    const std::string prefix = "services." + cron.name + ".";
    config_.origins[prefix + "type"] = At(entry);
    config_.origins[prefix + "cronSchedule"] = At(schedule);
    config_.origins[prefix + "variables.CRON_URL"] = At(path);
    config_.origins[prefix + "startCommand"] = At(path);
    config_.origins[prefix + "builder"] = At(entry);
    config_.services.push_back(std::move(cron));
  }
  return Status::Ok();
}

Result<ProjectConfig> VercelReader::Read(std::string_view text) {
  ASSIGN_OR_RETURN(YAML::Node root, LoadJson(text, filename_));
  web_.name = "web";
  web_.builder = "static";
  std::string build_command, install_command;
  YAML::Node build_node, install_node, framework_node;
  std::vector<YAML::Node> routing_keys;  // one warning per kind of rule
  auto routing = [&](const YAML::Node& key) { routing_keys.push_back(key); };

  for (const auto& kv : root) {
    const std::string k = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    if (k == "$schema") continue;  // an editor hint, no setting
    if (k == "buildCommand") {
      ASSIGN_OR_RETURN(build_command, String(v, k));
      build_node = v;
    } else if (k == "installCommand") {
      ASSIGN_OR_RETURN(install_command, String(v, k));
      install_node = v;
    } else if (k == "outputDirectory") {
      ASSIGN_OR_RETURN(std::string dir, String(v, k));
      if (dir.empty() || dir.front() == '/' || dir == ".." || dir.rfind("../", 0) == 0 ||
          dir.find("/../") != std::string::npos) {
        return ErrorAt(
            v, "\"outputDirectory\" must be a path inside the project (got \"" + dir + "\")");
      }
      web_.static_directory = dir;
      Origin("staticDirectory", v);
    } else if (k == "devCommand") {
      Warn(kv.first, "\"devCommand\" is for local development and is ignored");
    } else if (k == "framework") {
      ASSIGN_OR_RETURN(std::string framework, String(v, k));
      framework_node = v;
      if (ServerFrameworks().count(framework)) {
        web_.builder = "";  // detection: package.json -> npm run build, npm start
        Warn(v, "framework \"" + framework +
                    "\" is deployed as a Node app (npm run build, npm start); Vercel's "
                    "serverless output is not used");
      } else if (framework != "null" && !framework.empty()) {
        Warn(v, "framework \"" + framework +
                    "\" is not detected by name: the build is npm's (npm run build) or "
                    "buildCommand, and the site is served from outputDirectory");
      }
    } else if (k == "name") {
      ASSIGN_OR_RETURN(std::string name, String(v, k));
      std::string sanitised = SanitizeName(name);
      if (sanitised.empty()) {
        Warn(v, "\"name\" \"" + name + "\" cannot be a project name and is ignored");
      } else {
        if (sanitised != name) {
          Warn(v, "project \"" + name + "\" is named \"" + sanitised + "\" (a DNS label)");
        }
        config_.name = sanitised;
        config_.origins["project"] = At(v);
      }
    } else if (k == "env") {
      RETURN_IF_ERROR(ReadVariables(v, k));
    } else if (k == "build") {
      if (!v.IsMap()) return ErrorAt(v, "\"build\" must be an object like {\"env\": {...}}");
      for (const auto& b : v) {
        if (b.first.Scalar() == "env") {
          RETURN_IF_ERROR(ReadVariables(b.second, "build.env"));
        } else {
          Warn(b.first, "\"build." + b.first.Scalar() + "\" is not supported and is ignored");
        }
      }
    } else if (k == "rewrites") {
      RETURN_IF_ERROR(ReadRules(v, k, web_.rewrites));
      routing(kv.first);
    } else if (k == "redirects") {
      RETURN_IF_ERROR(ReadRules(v, k, web_.redirects));
      routing(kv.first);
    } else if (k == "headers") {
      RETURN_IF_ERROR(ReadHeaders(v));
      routing(kv.first);
    } else if (k == "cleanUrls") {
      ASSIGN_OR_RETURN(web_.clean_urls, Bool(v, k));
      Origin("cleanUrls", v);
      routing(kv.first);
    } else if (k == "trailingSlash") {
      ASSIGN_OR_RETURN(bool add, Bool(v, k));
      web_.trailing_slash = add ? "add" : "remove";
      Origin("trailingSlash", v);
      routing(kv.first);
    } else if (k == "crons") {
      RETURN_IF_ERROR(ReadCrons(v));
    } else if (UnsupportedKeys().count(k)) {
      Warn(kv.first, "\"" + k + "\" is Vercel-specific and is not supported; it is ignored");
    } else {
      Warn(kv.first, "\"" + k + "\" is not supported and is ignored");
    }
  }

  // The builder runs npm ci / npm install itself when there is a package.json; another
  // install step (yarn, pnpm, a script) runs before buildCommand.
  if (!install_command.empty()) {
    bool npm_install = install_command.rfind("npm install", 0) == 0 ||
                       install_command.rfind("npm ci", 0) == 0 || install_command == "npm i";
    if (npm_install) {
      Warn(install_node,
           "\"installCommand\" is ignored: the builder runs npm ci (with a "
           "lockfile) or npm install itself");
    } else {
      build_command =
          build_command.empty() ? install_command : install_command + " && " + build_command;
    }
  }
  if (!build_command.empty()) {
    web_.build_command = build_command;
    Origin("buildCommand", build_node ? build_node : install_node);
  }
  if (!web_.builder.empty()) config_.origins["services.web.builder"] = filename_;
  // The edge applies the routing rules to the files it serves; a Node app (a server
  // framework) routes its own requests.
  if (web_.builder.empty()) {
    for (const YAML::Node& key : routing_keys) {
      const std::string kind = key.Scalar();
      const bool plural = kind == "rewrites" || kind == "redirects" || kind == "headers";
      Warn(key, kind +
                    (plural ? " apply to static sites only and are"
                            : " applies to static "
                              "sites only and is") +
                    " ignored: this framework is deployed as a Node app, which handles its own "
                    "routing");
    }
  }
  config_.services.insert(config_.services.begin(), std::move(web_));
  return std::move(config_);
}

}  // namespace

Result<ProjectConfig> ImportVercel(std::string_view text, const std::string& filename) {
  VercelReader reader(filename);
  return reader.Read(text);
}

}  // namespace slipway
