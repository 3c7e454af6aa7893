#include "config/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <utility>

#include "common/fs.h"
#include "common/names.h"
#include "config/import_tree.h"
#include "config/importers.h"

namespace slipway {
namespace {

constexpr int kMaxHealthcheckTimeout = 3600;
constexpr int kMaxReplicas = 32;
constexpr int kMaxBackupRetention = 365;

// The keys a service accepts, in the order the docs list them.
const std::vector<std::string>& ServiceKeys() {
  static const std::vector<std::string> keys = {"rootDirectory",      "builder",
                                                "buildCommand",       "startCommand",
                                                "preDeployCommand",   "staticDirectory",
                                                "basePath",           "healthcheckPath",
                                                "healthcheckTimeout", "healthcheckInterval",
                                                "healthcheckHost",    "numReplicas",
                                                "restartPolicyType",  "restartPolicyMaxRetries",
                                                "drainingSeconds",    "overlapSeconds",
                                                "keepReleases",       "autoRollback",
                                                "variables",          "type",
                                                "cronSchedule",       "requiredVariables",
                                                "watchPatterns",      "rewrites",
                                                "redirects",          "headers",
                                                "cleanUrls",          "trailingSlash"};
  return keys;
}

const std::vector<std::string>& ServiceTypes() {
  static const std::vector<std::string> types = {"web", "worker", "cron"};
  return types;
}

// The keys an [addons.NAME] table accepts.
const std::vector<std::string>& AddonKeys() {
  static const std::vector<std::string> keys = {"kind", "backupSchedule", "backupRetention"};
  return keys;
}

const std::vector<std::string>& AddonKinds() {
  static const std::vector<std::string> kinds = {"postgres", "redis"};
  return kinds;
}

const std::vector<std::string>& AutoRollbackKeys() {
  static const std::vector<std::string> keys = {"enabled",
                                                "watchSeconds",
                                                "failedHealthChecks",
                                                "errorRatePercent",
                                                "errorRateWindowSeconds",
                                                "errorRateMinRequests",
                                                "p95Ms",
                                                "memoryMb"};
  return keys;
}

const std::vector<std::string>& RestartPolicies() {
  static const std::vector<std::string> policies = {"ON_FAILURE", "ALWAYS", "NEVER"};
  return policies;
}

const std::vector<std::string>& Builders() {
  static const std::vector<std::string> builders = {"python", "node", "static", "command"};
  return builders;
}

bool IsServiceKey(std::string_view key) {
  const auto& keys = ServiceKeys();
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// A string as the user would write it in TOML or JSON (import_tree.h).
std::string Quote(std::string_view s) { return QuoteForMessage(s); }

// How a value the user wrote is shown after "got": short, on one line.
std::string Describe(const toml::node& node) {
  if (node.is_table()) return "a table";
  if (node.is_array()) return "an array";
  std::string text;
  if (const auto* s = node.as_string()) {
    text = Quote(s->get());
  } else {
    std::ostringstream out;
    node.visit([&out](const auto& n) { out << n; });
    text = out.str();
  }
  constexpr size_t kMax = 60;
  if (text.size() > kMax) text = text.substr(0, kMax) + "...";
  return text;
}

std::optional<std::string> Suggest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
  return ClosestKey(word, candidates);
}

std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates) {
  auto suggestion = Suggest(word, candidates);
  if (!suggestion) return "";
  return " (did you mean " + Quote(*suggestion) + "?)";
}

bool IsVariableName(std::string_view name) {
  if (name.empty()) return false;
  if (std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// Normalises a relative path ("./api/" -> "api", "a/../b" -> "b"); nullopt when it
// climbs above its starting point.
std::optional<std::string> NormaliseRelative(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string part(path.substr(start, slash - start));
    if (part == "..") {
      if (parts.empty()) return std::nullopt;
      parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = slash + 1;
  }
  if (parts.empty()) return ".";
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += '/';
    out += p;
  }
  return out;
}

// "/shop/" -> "/shop", "/" -> "": a basePath as routes use it. The message names the key.
Result<std::string> NormalizeBasePath(std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return InvalidArgument(
        "\"basePath\" must be a URL path starting with \"/\" like \"/shop\" (got " + Quote(path) +
        ")");
  }
  for (unsigned char c : path) {
    if (!std::isalnum(c) && std::string_view("-._~!$&'()*+,;=:@/").find(static_cast<char>(c)) ==
                                std::string_view::npos) {
      return InvalidArgument(
          "\"basePath\" may only hold letters, digits and -._~!$&'()*+,;=:@/ (got " + Quote(path) +
          ")");
    }
  }
  std::string out(path);
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  if (out == "/") return std::string();
  for (size_t start = 1; start <= out.size();) {
    size_t slash = out.find('/', start);
    if (slash == std::string::npos) slash = out.size();
    const std::string_view segment = std::string_view(out).substr(start, slash - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return InvalidArgument(
          "\"basePath\" must not contain \"//\", \".\" or \"..\" segments (got " + Quote(path) +
          ")");
    }
    start = slash + 1;
  }
  return out;
}

bool HasControlChars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    unsigned char u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

std::string JoinPath(const std::string& a, const std::string& b) {
  if (b == ".") return a;
  if (a == ".") return b;
  return a + "/" + b;
}

// A key and its value, in the order they appear in the file, so the first error reported
// is the first one a reader meets (toml::table iterates in key order).
using Entry = std::pair<const toml::key*, const toml::node*>;

bool Before(const toml::source_position& a, const toml::source_position& b) {
  return a.line != b.line ? a.line < b.line : a.column < b.column;
}

std::vector<Entry> InSourceOrder(const toml::table& table) {
  std::vector<Entry> entries;
  for (const auto& [key, node] : table) entries.emplace_back(&key, &node);
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return Before(a.first->source().begin, b.first->source().begin);
  });
  return entries;
}

// Where a setting came from, for checks that need a position after the whole table is read.
struct Located {
  toml::source_position pos;
  bool set = false;
};

class TomlReader {
 public:
  TomlReader(const std::string& filename, const std::string* project_dir)
      : filename_(filename), project_dir_(project_dir) {}

  // Where each value was set ("slipway.toml:3:1"), keyed like ProjectConfig::origins.
  void Origin(const std::string& key, const toml::node& node) {
    origins_[key] = Position(node.source().begin);
  }
  void Origin(const std::string& key, const toml::key& k) {
    origins_[key] = Position(k.source().begin);
  }

  Result<ProjectConfig> Read(std::string_view text, const std::string& fallback_name);

 private:
  std::string Position(const toml::source_position& pos) const {
    return filename_ + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
  }
  Status ErrorAt(const toml::source_position& pos, const std::string& message) const {
    return InvalidArgument(Position(pos) + ": " + message);
  }
  Status ErrorAt(const toml::node& node, const std::string& message) const {
    return ErrorAt(node.source().begin, message);
  }

  // Applies one known service setting. `variables_table` names the variables table in
  // messages ("[services.api.variables]" or "[variables]"); `root_at` records where
  // rootDirectory was set, for CheckService.
  Status ApplyServiceKey(const toml::key& key, const toml::node& node,
                         const std::string& variables_table, ServiceConfig& service,
                         Located& root_at);
  // Checks that need the whole service: its rootDirectory exists under the project
  // directory, when there is one to look at.
  Status CheckService(const ServiceConfig& service, const Located& root_at) const;

  Result<std::string> ReadString(const toml::node& node, const std::string& field,
                                 const std::string& what) const;
  Result<std::string> ReadPath(const toml::node& node, const std::string& field,
                               const std::string& inside) const;
  Result<int> ReadInt(const toml::node& node, const std::string& field, int lo, int hi,
                      const std::string& unit) const;
  // A cron expression (CheckCronExpression, importers.h).
  Result<std::string> ReadCron(const toml::node& node, const std::string& field) const;
  // `origin_prefix`: "services.api.variables." or "shared.".
  Status ReadVariables(const toml::node& node, const std::string& table_name,
                       const std::string& origin_prefix, std::map<std::string, std::string>& out);
  Status ReadAutoRollback(const toml::node& node, const std::string& variables_table,
                          AutoRollbackConfig& out) const;
  Status ReadServices(const toml::node& node, std::vector<ServiceConfig>& out);
  Status ReadAddons(const toml::node& node, std::vector<AddonConfig>& out);
  Status ReadRules(const toml::node& node, const std::string& field, const std::string& prefix,
                   std::vector<RouteRule>& out);
  Status ReadHeaderRules(const toml::node& node, const std::string& prefix,
                         std::vector<HeaderRule>& out);
  Result<std::vector<std::string>> ReadStringArray(const toml::node& node, const std::string& field,
                                                   const std::string& what) const;

  std::map<std::string, std::string> origins_;
  const std::string& filename_;
  const std::string* project_dir_;  // when set, rootDirectory must exist under it
};

Result<std::string> TomlReader::ReadString(const toml::node& node, const std::string& field,
                                           const std::string& what) const {
  const auto* s = node.as_string();
  if (s == nullptr) {
    return ErrorAt(node, Quote(field) + " must be " + what + " (got " + Describe(node) + ")");
  }
  return s->get();
}

Result<std::string> TomlReader::ReadPath(const toml::node& node, const std::string& field,
                                         const std::string& inside) const {
  ASSIGN_OR_RETURN(std::string raw, ReadString(node, field, "a string path relative to " + inside));
  if (raw.empty()) {
    return ErrorAt(node, Quote(field) + " must not be empty (use \".\" for " + inside + " itself)");
  }
  if (HasControlChars(raw)) {
    return ErrorAt(node,
                   Quote(field) + " must not contain control characters (got " + Quote(raw) + ")");
  }
  if (raw.front() == '/') {
    return ErrorAt(node, Quote(field) + " must be relative to " + inside +
                             ", not an absolute path (got " + Quote(raw) + ")");
  }
  auto normalised = NormaliseRelative(raw);
  if (!normalised) {
    return ErrorAt(node,
                   Quote(field) + " must stay inside " + inside + " (got " + Quote(raw) + ")");
  }
  return *normalised;
}

Result<int> TomlReader::ReadInt(const toml::node& node, const std::string& field, int lo, int hi,
                                const std::string& unit) const {
  const auto* i = node.as_integer();
  if (i == nullptr || i->get() < lo || i->get() > hi) {
    return ErrorAt(node, Quote(field) + " must be " + unit + " from " + std::to_string(lo) +
                             " to " + std::to_string(hi) + " (got " + Describe(node) + ")");
  }
  return static_cast<int>(i->get());
}

Result<std::string> TomlReader::ReadCron(const toml::node& node, const std::string& field) const {
  ASSIGN_OR_RETURN(std::string text,
                   ReadString(node, field, "a 5-field cron expression like \"0 2 * * *\""));
  return CheckCronExpression(text, field, Position(node.source().begin));
}

Status TomlReader::ReadVariables(const toml::node& node, const std::string& table_name,
                                 const std::string& origin_prefix,
                                 std::map<std::string, std::string>& out) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    return ErrorAt(
        node, "\"variables\" must be a table like " + table_name + " (got " + Describe(node) + ")");
  }
  for (const auto& [key, value] : InSourceOrder(*table)) {
    if (!IsVariableName(key->str())) {
      return ErrorAt(key->source().begin,
                     "variable name " + Quote(key->str()) + " in " + table_name +
                         " is not valid: use letters, digits and '_', not starting with a digit");
    }
    Origin(origin_prefix + std::string(key->str()), *key);
    if (const auto* s = value->as_string()) {
      out[std::string(key->str())] = s->get();
    } else if (const auto* i = value->as_integer()) {
      out[std::string(key->str())] = std::to_string(i->get());
    } else if (const auto* b = value->as_boolean()) {
      out[std::string(key->str())] = b->get() ? "true" : "false";
    } else {
      return ErrorAt(*value, "variable " + Quote(key->str()) +
                                 " must be a string, an integer or a boolean; quote other "
                                 "values (got " +
                                 Describe(*value) + ")");
    }
  }
  return Status::Ok();
}

Status TomlReader::ApplyServiceKey(const toml::key& key, const toml::node& node,
                                   const std::string& variables_table, ServiceConfig& service,
                                   Located& root_at) {
  const std::string k(key.str());
  if (k != "variables") Origin("services." + service.name + "." + k, node);
  auto command = [&](std::string& out) -> Status {
    ASSIGN_OR_RETURN(std::string value, ReadString(node, k, "a shell command string"));
    if (value.find_first_not_of(" \t\r\n") == std::string::npos) {
      return ErrorAt(node,
                     Quote(k) + " must not be empty (leave it out to let the builder " + "decide)");
    }
    out = std::move(value);
    return Status::Ok();
  };
  if (k == "rootDirectory") {
    ASSIGN_OR_RETURN(service.root_directory, ReadPath(node, k, "the project directory"));
    root_at = {node.source().begin, true};
  } else if (k == "builder") {
    ASSIGN_OR_RETURN(std::string builder,
                     ReadString(node, k, "one of \"python\", \"node\", \"static\", \"command\""));
    const auto& builders = Builders();
    if (std::find(builders.begin(), builders.end(), builder) == builders.end()) {
      auto suggestion = Suggest(builder, builders);
      return ErrorAt(node,
                     "\"builder\" must be one of \"python\", \"node\", \"static\", "
                     "\"command\" (got " +
                         Quote(builder) +
                         (suggestion ? "; did you mean " + Quote(*suggestion) + "?" : "") + ")");
    }
    service.builder = builder;
  } else if (k == "buildCommand") {
    RETURN_IF_ERROR(command(service.build_command));
  } else if (k == "startCommand") {
    RETURN_IF_ERROR(command(service.start_command));
  } else if (k == "staticDirectory") {
    ASSIGN_OR_RETURN(service.static_directory, ReadPath(node, k, "rootDirectory"));
  } else if (k == "basePath") {
    ASSIGN_OR_RETURN(std::string path, ReadString(node, k, "a URL path like \"/shop\""));
    auto base = NormalizeBasePath(path);
    if (!base.ok()) return ErrorAt(node, base.status().message());
    service.base_path = *base;
  } else if (k == "healthcheckPath") {
    ASSIGN_OR_RETURN(std::string path, ReadString(node, k, "a URL path like \"/health\""));
    if (path.empty() || path.front() != '/') {
      return ErrorAt(node, "\"healthcheckPath\" must be a URL path starting with \"/\" (got " +
                               Quote(path) + ")");
    }
    if (std::any_of(path.begin(), path.end(), [](char c) {
          return std::isspace(static_cast<unsigned char>(c)) ||
                 static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) == 0x7f;
        })) {
      return ErrorAt(node,
                     "\"healthcheckPath\" must not contain spaces or control characters; "
                     "percent-encode them (got " +
                         Quote(path) + ")");
    }
    service.healthcheck_path = path;
  } else if (k == "healthcheckTimeout") {
    ASSIGN_OR_RETURN(service.healthcheck_timeout,
                     ReadInt(node, k, 1, kMaxHealthcheckTimeout, "a whole number of seconds"));
  } else if (k == "numReplicas") {
    ASSIGN_OR_RETURN(service.num_replicas, ReadInt(node, k, 1, kMaxReplicas, "an integer"));
  } else if (k == "variables") {
    RETURN_IF_ERROR(ReadVariables(node, variables_table, "services." + service.name + ".variables.",
                                  service.variables));
  } else if (k == "preDeployCommand") {
    RETURN_IF_ERROR(command(service.pre_deploy_command));
  } else if (k == "healthcheckInterval") {
    ASSIGN_OR_RETURN(service.healthcheck_interval,
                     ReadInt(node, k, 1, kMaxHealthcheckTimeout, "a whole number of seconds"));
  } else if (k == "healthcheckHost") {
    ASSIGN_OR_RETURN(service.healthcheck_host, ReadString(node, k, "a host name"));
    if (service.healthcheck_host.empty() ||
        service.healthcheck_host.find_first_of(" \t\r\n/") != std::string::npos) {
      return ErrorAt(node,
                     "\"healthcheckHost\" must be a host name like \"api.example.com\" (got " +
                         Quote(service.healthcheck_host) + ")");
    }
  } else if (k == "restartPolicyType") {
    ASSIGN_OR_RETURN(std::string policy,
                     ReadString(node, k, "one of \"ON_FAILURE\", \"ALWAYS\", \"NEVER\""));
    const auto& policies = RestartPolicies();
    if (std::find(policies.begin(), policies.end(), policy) == policies.end()) {
      auto suggestion = Suggest(policy, policies);
      return ErrorAt(node,
                     "\"restartPolicyType\" must be one of \"ON_FAILURE\", \"ALWAYS\", "
                     "\"NEVER\" (got " +
                         Quote(policy) +
                         (suggestion ? "; did you mean " + Quote(*suggestion) + "?" : "") + ")");
    }
    service.restart_policy = policy;
  } else if (k == "restartPolicyMaxRetries") {
    ASSIGN_OR_RETURN(service.restart_max_retries, ReadInt(node, k, 0, 1000, "an integer"));
  } else if (k == "drainingSeconds") {
    ASSIGN_OR_RETURN(service.draining_seconds,
                     ReadInt(node, k, 0, kMaxHealthcheckTimeout, "a whole number of seconds"));
  } else if (k == "overlapSeconds") {
    ASSIGN_OR_RETURN(service.overlap_seconds,
                     ReadInt(node, k, 0, kMaxHealthcheckTimeout, "a whole number of seconds"));
  } else if (k == "keepReleases") {
    ASSIGN_OR_RETURN(service.keep_releases, ReadInt(node, k, 1, 1000, "an integer"));
  } else if (k == "autoRollback") {
    RETURN_IF_ERROR(ReadAutoRollback(node, variables_table, service.auto_rollback));
  } else if (k == "type") {
    ASSIGN_OR_RETURN(std::string type, ReadString(node, k, "one of \"web\", \"worker\", \"cron\""));
    const auto& types = ServiceTypes();
    if (std::find(types.begin(), types.end(), type) == types.end()) {
      auto suggestion = Suggest(type, types);
      return ErrorAt(node,
                     "\"type\" must be one of \"web\", \"worker\", \"cron\" (got " + Quote(type) +
                         (suggestion ? "; did you mean " + Quote(*suggestion) + "?" : "") + ")");
    }
    service.type = type;
  } else if (k == "cronSchedule") {
    ASSIGN_OR_RETURN(service.cron_schedule, ReadCron(node, k));
  } else if (k == "requiredVariables") {
    ASSIGN_OR_RETURN(service.required_variables,
                     ReadStringArray(node, k, "an array of variable names like [\"API_KEY\"]"));
    for (const std::string& name : service.required_variables) {
      if (!IsVariableName(name)) {
        return ErrorAt(node, "\"requiredVariables\" holds " + Quote(name) +
                                 ", not a variable name (letters, digits and '_', not starting "
                                 "with a digit)");
      }
    }
  } else if (k == "watchPatterns") {
    ASSIGN_OR_RETURN(service.watch_patterns,
                     ReadStringArray(node, k, "an array of path patterns like [\"api/**\"]"));
  } else if (k == "rewrites" || k == "redirects") {
    RETURN_IF_ERROR(ReadRules(node, k, "[[services." + service.name + "." + k + "]]",
                              k == "rewrites" ? service.rewrites : service.redirects));
  } else if (k == "headers") {
    RETURN_IF_ERROR(
        ReadHeaderRules(node, "[[services." + service.name + ".headers]]", service.headers));
  } else if (k == "cleanUrls") {
    const auto* b = node.as_boolean();
    if (b == nullptr) {
      return ErrorAt(node, "\"cleanUrls\" must be true or false (got " + Describe(node) + ")");
    }
    service.clean_urls = b->get();
  } else if (k == "trailingSlash") {
    if (const auto* b = node.as_boolean()) {
      service.trailing_slash = b->get() ? "add" : "remove";
    } else if (const auto* str = node.as_string();
               str != nullptr && (str->get() == "add" || str->get() == "remove")) {
      service.trailing_slash = str->get();
    } else {
      return ErrorAt(node,
                     "\"trailingSlash\" must be true (add one), false (remove it), \"add\" or "
                     "\"remove\" (got " +
                         Describe(node) + ")");
    }
  }
  return Status::Ok();
}

Result<std::vector<std::string>> TomlReader::ReadStringArray(const toml::node& node,
                                                             const std::string& field,
                                                             const std::string& what) const {
  const auto* array = node.as_array();
  if (array == nullptr) {
    return ErrorAt(node, Quote(field) + " must be " + what + " (got " + Describe(node) + ")");
  }
  std::vector<std::string> out;
  for (const toml::node& item : *array) {
    const auto* s = item.as_string();
    if (s == nullptr || s->get().empty() || HasControlChars(s->get())) {
      return ErrorAt(item, Quote(field) + " must be " + what + " (got " + Describe(item) + ")");
    }
    out.push_back(s->get());
  }
  return out;
}

Status TomlReader::ReadRules(const toml::node& node, const std::string& field,
                             const std::string& context, std::vector<RouteRule>& out) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    return ErrorAt(node, Quote(field) + " must be an array of tables like " + context + " (got " +
                             Describe(node) + ")");
  }
  const std::vector<std::string> keys =
      field == "redirects" ? std::vector<std::string>{"source", "destination", "status"}
                           : std::vector<std::string>{"source", "destination"};
  for (const toml::node& item : *array) {
    const auto* table = item.as_table();
    if (table == nullptr) {
      return ErrorAt(item, "each of " + Quote(field) + " must be a table like " + context +
                               " (got " + Describe(item) + ")");
    }
    RouteRule rule;
    std::string source_at, destination_at;
    for (const auto& [key, value] : InSourceOrder(*table)) {
      const std::string k(key->str());
      if (k == "source" || k == "destination") {
        ASSIGN_OR_RETURN(std::string text, ReadString(*value, k, "a path like \"/docs/:path*\""));
        if (text.empty() || HasControlChars(text)) {
          return ErrorAt(*value,
                         Quote(k) + " must be a non-empty path (got " + Describe(*value) + ")");
        }
        (k == "source" ? rule.source : rule.destination) = text;
        (k == "source" ? source_at : destination_at) = Position(value->source().begin);
      } else if (k == "status" && field == "redirects") {
        const auto* i = value->as_integer();
        int code = i == nullptr ? 0 : static_cast<int>(i->get());
        if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308) {
          return ErrorAt(*value, "\"status\" must be 301, 302, 303, 307 or 308 (got " +
                                     Describe(*value) + ")");
        }
        rule.status = code;
      } else {
        return ErrorAt(key->source().begin,
                       "unknown key " + Quote(k) + " in " + context + DidYouMean(k, keys));
      }
    }
    if (rule.source.empty() || rule.destination.empty()) {
      return ErrorAt(item, context + " needs \"source\" and \"destination\"");
    }
    RETURN_IF_ERROR(
        CheckRouteRule(field, rule.source, source_at, &rule.destination, destination_at));
    if (field == "redirects" && rule.status == 0) rule.status = 308;
    out.push_back(std::move(rule));
  }
  return Status::Ok();
}

Status TomlReader::ReadHeaderRules(const toml::node& node, const std::string& context,
                                   std::vector<HeaderRule>& out) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    return ErrorAt(node, "\"headers\" must be an array of tables like " + context + " (got " +
                             Describe(node) + ")");
  }
  for (const toml::node& item : *array) {
    const auto* table = item.as_table();
    if (table == nullptr) {
      return ErrorAt(item, "each of \"headers\" must be a table like " + context + " (got " +
                               Describe(item) + ")");
    }
    HeaderRule rule;
    bool has_values = false;
    std::string source_at;
    for (const auto& [key, value] : InSourceOrder(*table)) {
      const std::string k(key->str());
      if (k == "source") {
        ASSIGN_OR_RETURN(rule.source, ReadString(*value, k, "a path like \"/assets/(.*)\""));
        source_at = Position(value->source().begin);
      } else if (k == "values") {
        const auto* values = value->as_table();
        if (values == nullptr) {
          return ErrorAt(*value,
                         "\"values\" must be a table of header names to values like "
                         "{ \"Cache-Control\" = \"no-cache\" } (got " +
                             Describe(*value) + ")");
        }
        for (const auto& [name, v] : InSourceOrder(*values)) {
          ASSIGN_OR_RETURN(std::string text, ReadString(*v, std::string(name->str()), "a string"));
          if (HasControlChars(text) || HasControlChars(name->str())) {
            return ErrorAt(*v,
                           "header " + Quote(name->str()) + " must not contain control characters");
          }
          RETURN_IF_ERROR(CheckHeaderName(name->str(), Position(v->source().begin)));
          rule.headers.emplace_back(std::string(name->str()), text);
        }
        has_values = true;
      } else {
        return ErrorAt(key->source().begin, "unknown key " + Quote(k) + " in " + context +
                                                DidYouMean(k, {"source", "values"}));
      }
    }
    if (rule.source.empty() || !has_values) {
      return ErrorAt(item, context + " needs \"source\" and \"values\"");
    }
    RETURN_IF_ERROR(CheckRouteRule("headers", rule.source, source_at, nullptr, ""));
    out.push_back(std::move(rule));
  }
  return Status::Ok();
}

Status TomlReader::ReadAddons(const toml::node& node, std::vector<AddonConfig>& out) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    return ErrorAt(node,
                   "\"addons\" must be a table like [addons.db] (got " + Describe(node) + ")");
  }
  for (const auto& [name_key, value] : InSourceOrder(*table)) {
    std::string name(name_key->str());
    Status valid = ValidateName(name, "add-on name");
    if (!valid.ok()) return ErrorAt(name_key->source().begin, valid.message());
    const std::string context = "[addons." + name + "]";
    const auto* addon = value->as_table();
    if (addon == nullptr) {
      return ErrorAt(*value, "add-on " + Quote(name) + " must be a table like " + context +
                                 " with kind = \"postgres\" (got " + Describe(*value) + ")");
    }
    AddonConfig config;
    config.name = name;
    // Backups are for postgres; `kind` may come before or after a backup setting.
    const toml::key* backup_key = nullptr;
    auto backups_for_redis = [&]() {
      return ErrorAt(backup_key->source().begin,
                     Quote(backup_key->str()) + " is for postgres add-ons; " + context +
                         " is kind = \"redis\", which keeps its data by append-only "
                         "persistence: remove the key");
    };
    for (const auto& [key, setting] : InSourceOrder(*addon)) {
      const std::string k(key->str());
      if (k == "kind") {
        ASSIGN_OR_RETURN(config.kind, ReadString(*setting, k, "\"postgres\" or \"redis\""));
        const auto& kinds = AddonKinds();
        if (std::find(kinds.begin(), kinds.end(), config.kind) == kinds.end()) {
          auto suggestion = Suggest(config.kind, kinds);
          return ErrorAt(
              *setting, "\"kind\" must be \"postgres\" or \"redis\" (got " + Quote(config.kind) +
                            (suggestion ? "; did you mean " + Quote(*suggestion) + "?" : "") + ")");
        }
        continue;
      }
      if (k != "backupSchedule" && k != "backupRetention") {
        return ErrorAt(key->source().begin,
                       "unknown key " + Quote(k) + " in " + context + DidYouMean(k, AddonKeys()));
      }
      if (backup_key == nullptr) backup_key = key;
      if (config.kind == "redis") return backups_for_redis();
      if (k == "backupSchedule") {
        ASSIGN_OR_RETURN(config.backup_schedule, ReadCron(*setting, k));
      } else if (k == "backupRetention") {
        ASSIGN_OR_RETURN(config.backup_retention,
                         ReadInt(*setting, k, 1, kMaxBackupRetention, "a number of backups"));
      }
      Origin("addons." + name + "." + k, *setting);
    }
    if (config.kind.empty()) {
      return ErrorAt(*value, context + " needs kind = \"postgres\" or kind = \"redis\"");
    }
    if (config.kind == "redis" && backup_key != nullptr) return backups_for_redis();
    Origin("addons." + name, *name_key);
    out.push_back(std::move(config));
  }
  return Status::Ok();
}

Status TomlReader::ReadAutoRollback(const toml::node& node, const std::string& variables_table,
                                    AutoRollbackConfig& out) const {
  // "[services.web.variables]" -> "[services.web.autoRollback]"; "[variables]" -> "[autoRollback]"
  std::string context = "[autoRollback]";
  if (auto dot = variables_table.rfind('.'); dot != std::string::npos) {
    context = variables_table.substr(0, dot) + ".autoRollback]";
  }
  const auto* table = node.as_table();
  if (table == nullptr) {
    return ErrorAt(
        node, "\"autoRollback\" must be a table like " + context + " (got " + Describe(node) + ")");
  }
  for (const auto& [key, value] : InSourceOrder(*table)) {
    const std::string k(key->str());
    if (k == "enabled") {
      const auto* b = value->as_boolean();
      if (b == nullptr) {
        return ErrorAt(*value, "\"enabled\" must be true or false (got " + Describe(*value) + ")");
      }
      out.enabled = b->get();
    } else if (k == "watchSeconds") {
      ASSIGN_OR_RETURN(out.watch_seconds,
                       ReadInt(*value, k, 0, 86400, "a whole number of seconds"));
    } else if (k == "failedHealthChecks") {
      ASSIGN_OR_RETURN(out.failed_health_checks, ReadInt(*value, k, 0, 1000, "an integer"));
    } else if (k == "errorRatePercent") {
      double percent = -1;
      if (const auto* f = value->as_floating_point()) percent = f->get();
      if (const auto* i = value->as_integer()) percent = static_cast<double>(i->get());
      if (!(percent >= 0 && percent <= 100)) {
        return ErrorAt(*value, "\"errorRatePercent\" must be a number from 0 to 100 (got " +
                                   Describe(*value) + ")");
      }
      out.error_rate_percent = percent;
    } else if (k == "errorRateWindowSeconds") {
      ASSIGN_OR_RETURN(out.error_rate_window_seconds,
                       ReadInt(*value, k, 1, 86400, "a whole number of seconds"));
    } else if (k == "errorRateMinRequests") {
      ASSIGN_OR_RETURN(out.error_rate_min_requests, ReadInt(*value, k, 1, 1000000, "an integer"));
    } else if (k == "p95Ms") {
      ASSIGN_OR_RETURN(out.p95_ms,
                       ReadInt(*value, k, 0, 3600000, "a whole number of milliseconds"));
    } else if (k == "memoryMb") {
      ASSIGN_OR_RETURN(out.memory_mb, ReadInt(*value, k, 0, 1 << 20, "a whole number of MiB"));
    } else {
      return ErrorAt(key->source().begin, "unknown key " + Quote(k) + " in " + context +
                                              DidYouMean(k, AutoRollbackKeys()));
    }
  }
  return Status::Ok();
}

Status TomlReader::CheckService(const ServiceConfig& service, const Located& root_at) const {
  const std::string prefix = "services." + service.name + ".";
  if (service.type == "cron" && service.cron_schedule.empty()) {
    return InvalidArgument(origins_.at(prefix + "type") +
                           ": a service of type \"cron\" needs cronSchedule, e.g. "
                           "cronSchedule = \"0 2 * * *\"");
  }
  if (service.type != "cron" && !service.cron_schedule.empty()) {
    return InvalidArgument(origins_.at(prefix + "cronSchedule") +
                           ": \"cronSchedule\" is for services of type \"cron\"; add type = "
                           "\"cron\"");
  }
  if (project_dir_ != nullptr && root_at.set) {
    std::string dir = JoinPath(*project_dir_, service.root_directory);
    if (!IsDirectory(dir)) {
      return ErrorAt(root_at.pos, "\"rootDirectory\" " + Quote(service.root_directory) +
                                      " is not a directory in " + *project_dir_ +
                                      " (create it or fix the path)");
    }
  }
  return Status::Ok();
}

Status TomlReader::ReadServices(const toml::node& node, std::vector<ServiceConfig>& out) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    return ErrorAt(node, "\"services\" must be a table of services like [services.web] (got " +
                             Describe(node) + ")");
  }
  if (table->empty()) {
    return ErrorAt(node, "[services] declares no service: add one, e.g. [services.web]");
  }
  for (const auto& [name_key, value] : InSourceOrder(*table)) {
    std::string name(name_key->str());
    Status valid = ValidateName(name, "service name");
    if (!valid.ok()) return ErrorAt(name_key->source().begin, valid.message());
    std::string context = "[services." + name + "]";
    const auto* service_table = value->as_table();
    if (service_table == nullptr) {
      return ErrorAt(*value, "service " + Quote(name) + " must be a table like " + context +
                                 " (got " + Describe(*value) + ")");
    }
    ServiceConfig service;
    service.name = name;
    Located root_at;
    for (const auto& [key, setting] : InSourceOrder(*service_table)) {
      if (!IsServiceKey(key->str())) {
        return ErrorAt(key->source().begin, "unknown key " + Quote(key->str()) + " in " + context +
                                                DidYouMean(key->str(), ServiceKeys()));
      }
      RETURN_IF_ERROR(
          ApplyServiceKey(*key, *setting, "[services." + name + ".variables]", service, root_at));
    }
    RETURN_IF_ERROR(CheckService(service, root_at));
    out.push_back(std::move(service));
  }
  return Status::Ok();
}

Result<ProjectConfig> TomlReader::Read(std::string_view text, const std::string& fallback_name) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(filename_));
  } catch (const toml::parse_error& e) {
    std::string description(e.description());
    std::replace(description.begin(), description.end(), '\n', ' ');
    return ErrorAt(e.source().begin, description);
  }

  ProjectConfig config;
  config.source = "slipway.toml";
  bool has_services = root.contains("services");
  ServiceConfig shorthand;  // the one "web" service when there is no [services]
  Located root_at;
  bool project_set = false;

  std::vector<std::string> top_keys = {"project", "services", "addons"};
  top_keys.insert(top_keys.end(), ServiceKeys().begin(), ServiceKeys().end());

  for (const auto& [key, node] : InSourceOrder(root)) {
    std::string k(key->str());
    if (k == "project") {
      ASSIGN_OR_RETURN(config.name, ReadString(*node, k, "a string"));
      Status valid = ValidateName(config.name, "project name");
      if (!valid.ok()) {
        std::string hint;
        std::string sanitised = SanitizeName(config.name);
        if (!sanitised.empty()) hint = " (try " + Quote(sanitised) + ")";
        return ErrorAt(*node, valid.message() + hint);
      }
      project_set = true;
      Origin("project", *node);
    } else if (k == "addons") {
      RETURN_IF_ERROR(ReadAddons(*node, config.addons));
    } else if (k == "variables" && has_services) {
      // With [services], top-level variables are the project's shared ones.
      RETURN_IF_ERROR(ReadVariables(*node, "[variables]", "shared.", config.shared_variables));
    } else if (k == "services") {
      RETURN_IF_ERROR(ReadServices(*node, config.services));
    } else if (IsServiceKey(k)) {
      if (has_services) {
        return ErrorAt(key->source().begin,
                       Quote(k) +
                           " at the top level cannot be combined with [services]: move it "
                           "into a [services.<name>] table, or drop [services] for a "
                           "single service");
      }
      RETURN_IF_ERROR(ApplyServiceKey(*key, *node, "[variables]", shorthand, root_at));
    } else {
      return ErrorAt(key->source().begin,
                     "unknown key " + Quote(k) + " at the top level" + DidYouMean(k, top_keys));
    }
  }

  if (!has_services) {
    RETURN_IF_ERROR(CheckService(shorthand, root_at));
    config.services.push_back(std::move(shorthand));
  }

  config.origins = std::move(origins_);
  if (!project_set) {
    config.name = SanitizeName(fallback_name);
    if (config.name.empty()) {
      return InvalidArgument(filename_ + ": cannot name the project after the directory " +
                             Quote(fallback_name) + ": set project = \"my-app\" at the top of " +
                             filename_);
    }
  }
  return config;
}

Result<ProjectConfig> ParseImpl(std::string_view text, const std::string& filename,
                                const std::string& fallback_name, const std::string* project_dir) {
  TomlReader reader(filename, project_dir);
  return reader.Read(text, fallback_name);
}

}  // namespace

Result<ProjectConfig> ParseSlipwayToml(std::string_view text, const std::string& filename,
                                       const std::string& fallback_name) {
  return ParseImpl(text, filename, fallback_name, nullptr);
}

namespace {

// The config files read when there is no slipway.toml, in precedence order (DESIGN.md):
// the first present declares the services; app.json and a Procfile combine (Heroku), and
// a Procfile also supplies a railway.json service's start and release commands.
struct ConfigFile {
  const char* name;
  Result<ProjectConfig> (*import)(std::string_view, const std::string&);
};
constexpr ConfigFile kPrimaryFiles[] = {
    {"railway.json", ImportRailway},       {"railway.toml", ImportRailway},
    {"render.yaml", ImportRender},         {"render.yml", ImportRender},
    {"vercel.json", ImportVercel},         {"app.json", ImportAppJson},
    {"docker-compose.yml", ImportCompose}, {"docker-compose.yaml", ImportCompose},
    {"compose.yaml", ImportCompose},       {"compose.yml", ImportCompose},
};

Result<std::string> ReadConfigFile(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  if (IsDirectory(path)) {
    return InvalidArgument("cannot read " + name + ": " + path + " is a directory, not a file");
  }
  auto text = ReadFile(path);
  if (!text.ok()) return text.status().WithContext("cannot read " + name);
  return text;
}

// Fills the Procfile's commands into `config`'s services: web (start command of the
// first web service that has none) and release; other process types become worker
// services unless the config already has a service of that name. With app.json, a new
// worker gets the config vars app.json gave the web service (Heroku's config vars are
// the app's, not one process type's).
void MergeProcfile(const std::vector<std::pair<std::string, std::string>>& processes,
                   ProjectConfig& config) {
  const bool with_app_json = !config.sources.empty() && config.sources[0] == "app.json";
  for (const auto& [type, command] : processes) {
    if (type == "web" || type == "release") {
      if (config.services.empty()) config.services.emplace_back();
      ServiceConfig& web = config.services.front();
      if (type == "release") {
        web.procfile_release = command;
        config.origins["services." + web.name + ".procfileRelease"] = "Procfile";
      } else if (web.start_command.empty()) {
        web.start_command = command;
        config.origins["services." + web.name + ".startCommand"] = "Procfile";
      }
      continue;
    }
    std::string name = SanitizeName(type);
    if (name.empty()) name = "worker";
    if (name != type) {
      config.warnings.push_back("Procfile: process type " + Quote(type) +
                                " is not a DNS label; its service is named " + Quote(name));
    }
    auto same_name = std::find_if(config.services.begin(), config.services.end(),
                                  [&](const ServiceConfig& s) { return s.name == name; });
    if (same_name == config.services.end()) {
      ServiceConfig worker;
      worker.name = name;
      worker.type = "worker";
      worker.start_command = command;
      config.origins["services." + name + ".startCommand"] = "Procfile";
      if (with_app_json && !config.services.empty()) {
        const ServiceConfig& web = config.services.front();
        worker.variables = web.variables;
        worker.required_variables = web.required_variables;
        const std::string from = "services." + web.name + ".", to = "services." + name + ".";
        std::vector<std::pair<std::string, std::string>> copied;
        for (const auto& [key, where] : config.origins) {
          if (key.rfind(from + "variables.", 0) == 0 ||
              key.rfind(from + "requiredVariables.", 0) == 0) {
            copied.emplace_back(to + key.substr(from.size()), where);
          }
        }
        for (auto& [key, where] : copied) config.origins[key] = where;
      }
      config.services.push_back(std::move(worker));
    } else if (same_name->start_command.empty()) {
      same_name->start_command = command;
      config.origins["services." + name + ".startCommand"] = "Procfile";
    }
  }
}

// app.json's formation may name process types the Procfile does not define; without a
// command there is nothing to run (web alone falls back to detection).
void DropWorkersWithoutCommand(ProjectConfig& config) {
  std::erase_if(config.services, [&](const ServiceConfig& s) {
    if (s.type == "web" || !s.start_command.empty()) return false;
    std::string where = config.origins.count("services." + s.name + ".numReplicas")
                            ? config.origins["services." + s.name + ".numReplicas"]
                            : config.source;
    config.warnings.push_back(where + ": process type " + Quote(s.name) +
                              " has no command in a Procfile and is not run");
    return true;
  });
}

}  // namespace

Result<ProjectConfig> LoadProjectConfig(const std::string& dir, const std::string& fallback_name) {
  if (!IsDirectory(dir)) {
    return NotFound("app directory " + dir + " does not exist or is not a directory");
  }
  if (PathExists(dir + "/slipway.toml")) {
    ASSIGN_OR_RETURN(std::string text, ReadConfigFile(dir, "slipway.toml"));
    ASSIGN_OR_RETURN(ProjectConfig config, ParseImpl(text, "slipway.toml", fallback_name, &dir));
    if (config.sources.empty()) config.sources.push_back(config.source);
    return config;
  }

  ProjectConfig config;
  for (const ConfigFile& file : kPrimaryFiles) {
    if (!PathExists(dir + "/" + file.name)) continue;
    if (!config.sources.empty()) {
      // app.json goes with a Procfile, not with another platform's file.
      config.warnings.push_back(std::string(file.name) + " is ignored: " + config.sources[0] +
                                " declares the services");
      continue;
    }
    ASSIGN_OR_RETURN(std::string text, ReadConfigFile(dir, file.name));
    if (file.import == ImportCompose && PathExists(dir + "/.env")) {
      // Compose interpolates ${VAR} from the .env file next to it.
      ASSIGN_OR_RETURN(std::string env_text, ReadConfigFile(dir, ".env"));
      ASSIGN_OR_RETURN(auto dotenv, ParseDotEnv(env_text, ".env"));
      ASSIGN_OR_RETURN(config, ImportComposeWithEnv(text, file.name, dotenv));
    } else {
      ASSIGN_OR_RETURN(config, file.import(text, file.name));
    }
    config.sources.insert(config.sources.begin(), file.name);
  }

  const bool multi_service_blueprint =
      !config.sources.empty() && (config.sources[0].rfind("render.", 0) == 0 ||
                                  config.sources[0].find("compose") != std::string::npos);
  if (PathExists(dir + "/Procfile")) {
    if (multi_service_blueprint) {
      config.warnings.push_back("Procfile is ignored: " + config.sources[0] +
                                " declares the services and their commands");
    } else {
      ASSIGN_OR_RETURN(std::string text, ReadConfigFile(dir, "Procfile"));
      ASSIGN_OR_RETURN(auto processes, ParseProcfile(text));
      MergeProcfile(processes, config);
      config.sources.push_back("Procfile");
    }
  }
  if (config.sources.empty()) config.sources.push_back("detected");
  if (config.services.empty()) config.services.emplace_back();
  config.source = config.sources[0];
  if (config.source == "app.json") DropWorkersWithoutCommand(config);

  for (const ServiceConfig& service : config.services) {
    std::string where = config.origins.count("services." + service.name + ".rootDirectory")
                            ? config.origins["services." + service.name + ".rootDirectory"]
                            : config.source;
    if (!IsDirectory(JoinPath(dir, service.root_directory))) {
      return InvalidArgument(where + ": service " + Quote(service.name) + ": rootDirectory " +
                             Quote(service.root_directory) + " is not a directory in " + dir);
    }
  }
  if (config.name.empty()) {
    config.name = SanitizeName(fallback_name);
    if (config.name.empty()) {
      return InvalidArgument("cannot name the project after the directory " + Quote(fallback_name) +
                             ": create slipway.toml in " + dir +
                             " with a line like project = \"my-app\"");
    }
  }
  return config;
}

Result<std::vector<std::pair<std::string, std::string>>> ParseProcfile(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::map<std::string, int> first_line;
  int line_number = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;

    auto trim = [](std::string_view s) {
      size_t b = s.find_first_not_of(" \t\r");
      if (b == std::string_view::npos) return std::string_view();
      size_t e = s.find_last_not_of(" \t\r");
      return s.substr(b, e - b + 1);
    };
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;

    std::string where = "Procfile:" + std::to_string(line_number) + ": ";
    size_t colon = line.find(':');
    std::string_view type = colon == std::string_view::npos ? "" : trim(line.substr(0, colon));
    std::string_view command = colon == std::string_view::npos ? "" : trim(line.substr(colon + 1));
    bool type_ok = !type.empty() && std::all_of(type.begin(), type.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
    if (!type_ok || command.empty()) {
      return InvalidArgument(where + "expected \"type: command\"");
    }
    std::string type_str(type);
    auto [it, inserted] = first_line.emplace(type_str, line_number);
    if (!inserted) {
      return InvalidArgument(where + "process type " + Quote(type_str) +
                             " is defined twice (first on line " + std::to_string(it->second) +
                             ")");
    }
    out.emplace_back(type_str, std::string(command));
  }
  return out;
}

std::string ServiceConfigToJson(const ServiceConfig& config) {
  nlohmann::json j;
  j["name"] = config.name;
  j["type"] = config.type;
  j["cronSchedule"] = config.cron_schedule;
  j["rootDirectory"] = config.root_directory;
  j["builder"] = config.builder;
  j["buildCommand"] = config.build_command;
  j["startCommand"] = config.start_command;
  j["staticDirectory"] = config.static_directory;
  j["basePath"] = config.base_path;
  j["healthcheckPath"] = config.healthcheck_path;
  j["healthcheckTimeout"] = config.healthcheck_timeout;
  j["numReplicas"] = config.num_replicas;
  j["variables"] = config.variables;
  j["requiredVariables"] = config.required_variables;
  j["watchPatterns"] = config.watch_patterns;
  auto rules = [](const std::vector<RouteRule>& in) {
    nlohmann::json out = nlohmann::json::array();
    for (const RouteRule& r : in) {
      out.push_back({{"source", r.source}, {"destination", r.destination}, {"status", r.status}});
    }
    return out;
  };
  j["rewrites"] = rules(config.rewrites);
  j["redirects"] = rules(config.redirects);
  j["headers"] = nlohmann::json::array();
  for (const HeaderRule& h : config.headers) {
    nlohmann::json pairs = nlohmann::json::array();
    for (const auto& [k, v] : h.headers) pairs.push_back({{"key", k}, {"value", v}});
    j["headers"].push_back({{"source", h.source}, {"headers", pairs}});
  }
  j["cleanUrls"] = config.clean_urls;
  j["trailingSlash"] = config.trailing_slash;
  j["procfileRelease"] = config.procfile_release;
  j["preDeployCommand"] = config.pre_deploy_command;
  j["healthcheckHost"] = config.healthcheck_host;
  j["healthcheckInterval"] = config.healthcheck_interval;
  j["drainingSeconds"] = config.draining_seconds;
  j["overlapSeconds"] = config.overlap_seconds;
  j["restartPolicyType"] = config.restart_policy;
  j["restartPolicyMaxRetries"] = config.restart_max_retries;
  j["keepReleases"] = config.keep_releases;
  const AutoRollbackConfig& ar = config.auto_rollback;
  j["autoRollback"] = {{"enabled", ar.enabled},
                       {"watchSeconds", ar.watch_seconds},
                       {"failedHealthChecks", ar.failed_health_checks},
                       {"errorRatePercent", ar.error_rate_percent},
                       {"errorRateWindowSeconds", ar.error_rate_window_seconds},
                       {"errorRateMinRequests", ar.error_rate_min_requests},
                       {"p95Ms", ar.p95_ms},
                       {"memoryMb", ar.memory_mb}};
  // Replace invalid UTF-8 rather than throw: the config came from text we accepted.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<ServiceConfig> ServiceConfigFromJson(const std::string& json) {
  const std::string where = "service config JSON: ";
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument(where + "not valid JSON");
  if (!j.is_object()) return InvalidArgument(where + "expected an object");

  ServiceConfig config;
  auto string_field = [&](const char* key, std::string& out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) return Status::Ok();  // older records: keep the default
    if (!it->is_string()) return InvalidArgument(where + Quote(key) + " must be a string");
    out = it->get<std::string>();
    return Status::Ok();
  };
  auto int_field = [&](const char* key, int lo, int hi, int& out) -> Status {
    auto it = j.find(key);
    if (it == j.end()) return Status::Ok();
    if (!it->is_number_integer() || it->get<int64_t>() < lo || it->get<int64_t>() > hi) {
      return InvalidArgument(where + Quote(key) + " must be an integer from " + std::to_string(lo) +
                             " to " + std::to_string(hi));
    }
    out = static_cast<int>(it->get<int64_t>());
    return Status::Ok();
  };
  RETURN_IF_ERROR(string_field("name", config.name));
  RETURN_IF_ERROR(ValidateName(config.name, "service name").WithContext("service config JSON"));
  RETURN_IF_ERROR(string_field("type", config.type));
  RETURN_IF_ERROR(string_field("cronSchedule", config.cron_schedule));
  RETURN_IF_ERROR(string_field("rootDirectory", config.root_directory));
  RETURN_IF_ERROR(string_field("builder", config.builder));
  RETURN_IF_ERROR(string_field("trailingSlash", config.trailing_slash));
  RETURN_IF_ERROR(string_field("buildCommand", config.build_command));
  RETURN_IF_ERROR(string_field("startCommand", config.start_command));
  RETURN_IF_ERROR(string_field("staticDirectory", config.static_directory));
  RETURN_IF_ERROR(string_field("basePath", config.base_path));
  RETURN_IF_ERROR(string_field("healthcheckPath", config.healthcheck_path));
  RETURN_IF_ERROR(
      int_field("healthcheckTimeout", 1, kMaxHealthcheckTimeout, config.healthcheck_timeout));
  RETURN_IF_ERROR(int_field("numReplicas", 1, kMaxReplicas, config.num_replicas));
  RETURN_IF_ERROR(string_field("procfileRelease", config.procfile_release));
  RETURN_IF_ERROR(string_field("preDeployCommand", config.pre_deploy_command));
  RETURN_IF_ERROR(string_field("healthcheckHost", config.healthcheck_host));
  RETURN_IF_ERROR(
      int_field("healthcheckInterval", 1, kMaxHealthcheckTimeout, config.healthcheck_interval));
  RETURN_IF_ERROR(int_field("drainingSeconds", 0, kMaxHealthcheckTimeout, config.draining_seconds));
  RETURN_IF_ERROR(int_field("overlapSeconds", 0, kMaxHealthcheckTimeout, config.overlap_seconds));
  RETURN_IF_ERROR(string_field("restartPolicyType", config.restart_policy));
  RETURN_IF_ERROR(int_field("restartPolicyMaxRetries", 0, 1000, config.restart_max_retries));
  RETURN_IF_ERROR(int_field("keepReleases", 1, 1000, config.keep_releases));
  if (auto it = j.find("autoRollback"); it != j.end() && it->is_object()) {
    AutoRollbackConfig& ar = config.auto_rollback;
    const nlohmann::json& a = *it;
    try {
      ar.enabled = a.value("enabled", ar.enabled);
      ar.watch_seconds = a.value("watchSeconds", ar.watch_seconds);
      ar.failed_health_checks = a.value("failedHealthChecks", ar.failed_health_checks);
      ar.error_rate_percent = a.value("errorRatePercent", ar.error_rate_percent);
      ar.error_rate_window_seconds =
          a.value("errorRateWindowSeconds", ar.error_rate_window_seconds);
      ar.error_rate_min_requests = a.value("errorRateMinRequests", ar.error_rate_min_requests);
      ar.p95_ms = a.value("p95Ms", ar.p95_ms);
      ar.memory_mb = a.value("memoryMb", ar.memory_mb);
    } catch (const nlohmann::json::exception&) {
      return InvalidArgument(where + "\"autoRollback\" holds a value of the wrong type");
    }
  }
  try {
    config.clean_urls = j.value("cleanUrls", false);
    config.required_variables = j.value("requiredVariables", std::vector<std::string>{});
    config.watch_patterns = j.value("watchPatterns", std::vector<std::string>{});
    auto rules = [&](const char* key, std::vector<RouteRule>& out) {
      for (const auto& r : j.value(key, nlohmann::json::array())) {
        out.push_back({r.at("source").get<std::string>(), r.at("destination").get<std::string>(),
                       r.value("status", 0)});
      }
    };
    rules("rewrites", config.rewrites);
    rules("redirects", config.redirects);
    for (const auto& h : j.value("headers", nlohmann::json::array())) {
      HeaderRule rule{h.at("source").get<std::string>(), {}};
      for (const auto& kv : h.at("headers")) {
        rule.headers.emplace_back(kv.at("key").get<std::string>(),
                                  kv.at("value").get<std::string>());
      }
      config.headers.push_back(std::move(rule));
    }
  } catch (const nlohmann::json::exception&) {
    return InvalidArgument(where +
                           "a routing, watch or required-variable field has the wrong type");
  }
  if (auto it = j.find("variables"); it != j.end()) {
    if (!it->is_object()) return InvalidArgument(where + "\"variables\" must be an object");
    for (const auto& [key, value] : it->items()) {
      if (!value.is_string()) {
        return InvalidArgument(where + "variable " + Quote(key) + " must be a string");
      }
      config.variables[key] = value.get<std::string>();
    }
  }
  return config;
}

std::optional<ServiceUrlReference> ParseServiceUrlReference(std::string_view destination) {
  if (!destination.starts_with("${{")) return std::nullopt;
  const size_t close = destination.find("}}");
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view inner = destination.substr(3, close - 3);
  while (!inner.empty() && inner.front() == ' ') inner.remove_prefix(1);
  while (!inner.empty() && inner.back() == ' ') inner.remove_suffix(1);
  const size_t dot = inner.find('.');
  if (dot == std::string_view::npos || dot == 0) return std::nullopt;
  ServiceUrlReference out;
  out.service = std::string(inner.substr(0, dot));
  out.variable = std::string(inner.substr(dot + 1));
  out.rest = std::string(destination.substr(close + 2));
  const bool name_ok = std::all_of(out.service.begin(), out.service.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
  if (!name_ok || (out.variable != "SLIPWAY_PRIVATE_URL" && out.variable != "SLIPWAY_PUBLIC_URL")) {
    return std::nullopt;
  }
  if (!out.rest.empty() && out.rest.front() != '/' && out.rest.front() != '?') return std::nullopt;
  return out;
}

}  // namespace slipway
