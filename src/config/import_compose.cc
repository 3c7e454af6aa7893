// docker-compose.yml -> services built from their build context, postgres/redis images
// as add-ons, and a warning for every field a container engine would need
// (docs/importers/docker-compose.md).

#include <algorithm>
#include <cctype>
#include <set>
#include <string>
#include <vector>

#include "common/names.h"
#include "common/shell.h"
#include "config/importers.h"

namespace slipway {
namespace {

constexpr int kMaxReplicas = 32;
constexpr int kMaxSeconds = 3600;

bool IsVariableName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// "1m30s", "10s", "500ms", "1h" -> whole seconds (rounded up); -1 when malformed.
int DurationSeconds(const std::string& text) {
  if (text.empty()) return -1;
  double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (start == i) return -1;
    double value = std::atof(text.substr(start, i - start).c_str());
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string unit = text.substr(unit_start, i - unit_start);
    if (unit == "h") {
      total += value * 3600;
    } else if (unit == "m") {
      total += value * 60;
    } else if (unit == "s" || unit.empty()) {
      total += value;
    } else if (unit == "ms") {
      total += value / 1000;
    } else if (unit == "us") {
      total += value / 1e6;
    } else {
      return -1;
    }
  }
  int seconds = static_cast<int>(total);
  if (seconds < total) ++seconds;
  return seconds;
}

// Which add-on an image is, by its repository's last path component: "postgres:16",
// "docker.io/library/postgres", "bitnami/postgresql", "postgis/postgis" -> postgres;
// "redis:7-alpine", "valkey/valkey", "redis/redis-stack" -> redis; else "".
std::string AddonKind(const std::string& image) {
  std::string repo = image.substr(0, image.find('@'));
  size_t slash = repo.rfind('/');
  std::string last = slash == std::string::npos ? repo : repo.substr(slash + 1);
  last = last.substr(0, last.find(':'));
  if (last.rfind("postgres", 0) == 0 || last == "postgis" || last == "timescaledb") {
    return "postgres";
  }
  if (last.rfind("redis", 0) == 0 || last.rfind("valkey", 0) == 0) return "redis";
  return "";
}

struct Entry {
  YAML::Node key;
  YAML::Node value;
};

enum class Kind { kApp, kAddon, kSkipped };

struct Declared {
  std::string original;  // the name in the file
  std::string name;      // its DNS-label name in Slipway
  Kind kind = Kind::kSkipped;
  std::string addon_kind;  // "postgres" / "redis"
  YAML::Node key;
  std::vector<Entry> entries;
};

class ComposeReader {
 public:
  ComposeReader(const std::string& filename, const std::map<std::string, std::string>& dotenv)
      : filename_(filename), dotenv_(dotenv) {}

  Result<ProjectConfig> Read(std::string_view text);

 private:
  std::string At(const YAML::Node& node) const { return Where(filename_, node); }
  Status ErrorAt(const YAML::Node& node, const std::string& message) const {
    return InvalidArgument(At(node) + ": " + message);
  }
  void Warn(const YAML::Node& node, const std::string& message) {
    config_.warnings.push_back(At(node) + ": " + message);
  }

  // A map's entries with YAML merge keys ("<<: *defaults") expanded, own keys first.
  Result<std::vector<Entry>> Entries(const YAML::Node& map, const std::string& what) const;
  // A scalar value with ${VAR} interpolated; `from_dotenv` is set when .env supplied part.
  Result<std::string> Interpolate(const YAML::Node& node, const std::string& text,
                                  bool* from_dotenv);
  Result<std::string> Scalar(const YAML::Node& node, const std::string& field,
                             bool* from_dotenv = nullptr);
  // A string, or a list of words quoted for the shell.
  Result<std::string> CommandLine(const YAML::Node& node, const std::string& field);

  const Declared* Find(const std::string& original) const {
    for (const auto& d : declared_) {
      if (d.original == original || d.name == original) return &d;
    }
    return nullptr;
  }
  // A value pointing at another compose service (postgres://u:p@db:5432/x, http://api:8000/x,
  // a bare host in *_HOST) becomes a reference resolved at deploy, with a note.
  std::string Reference(const std::string& service, const std::string& key,
                        const std::string& value, const YAML::Node& node);

  Status ReadApp(const Declared& d);
  Status ReadBuild(const YAML::Node& node, ServiceConfig& s);
  Status ReadEnvironment(const YAML::Node& node, ServiceConfig& s);
  Status ReadHealthcheck(const YAML::Node& node, ServiceConfig& s);
  Status ReadRestart(const YAML::Node& node, ServiceConfig& s);
  Status ReadDeploy(const YAML::Node& node, ServiceConfig& s);
  Result<int> ReadPorts(const YAML::Node& node, const std::string& field);
  void Origin(const ServiceConfig& s, const std::string& key, const YAML::Node& node) {
    config_.origins["services." + s.name + "." + key] = At(node);
  }

  const std::string& filename_;
  const std::map<std::string, std::string>& dotenv_;
  ProjectConfig config_;
  std::vector<Declared> declared_;
  std::set<std::string> unset_warned_;
};

Result<std::vector<Entry>> ComposeReader::Entries(const YAML::Node& map,
                                                  const std::string& what) const {
  if (!map.IsMap()) return ErrorAt(map, what + " must be a mapping");
  std::vector<Entry> out;
  std::vector<YAML::Node> merges;
  for (const auto& kv : map) {
    if (kv.first.Scalar() == "<<") {
      if (kv.second.IsSequence()) {
        for (const auto& m : kv.second) merges.push_back(m);
      } else {
        merges.push_back(kv.second);
      }
    } else {
      out.push_back({kv.first, kv.second});
    }
  }
  for (const YAML::Node& m : merges) {
    if (!m.IsMap()) return ErrorAt(m, "a merge key (<<) must refer to a mapping");
    for (const auto& kv : m) {
      bool present = std::any_of(out.begin(), out.end(), [&](const Entry& e) {
        return e.key.Scalar() == kv.first.Scalar();
      });
      if (!present) out.push_back({kv.first, kv.second});
    }
  }
  return out;
}

Result<std::string> ComposeReader::Interpolate(const YAML::Node& node, const std::string& text,
                                               bool* from_dotenv) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '$' || i + 1 >= text.size()) {
      out += c;
      ++i;
      continue;
    }
    char next = text[i + 1];
    if (next == '$') {  // "$$" is a literal "$"
      out += '$';
      i += 2;
      continue;
    }
    if (next == '{' && i + 2 < text.size() && text[i + 2] == '{') {
      // A Slipway reference ${{ ... }}: kept for the deploy to resolve.
      size_t end = text.find("}}", i);
      if (end == std::string::npos) end = text.size() - 2;
      out += text.substr(i, end + 2 - i);
      i = end + 2;
      continue;
    }
    std::string name, op, word;
    size_t end;
    if (next == '{') {
      int depth = 1;
      end = i + 2;
      while (end < text.size() && depth > 0) {
        if (text[end] == '{') ++depth;
        if (text[end] == '}') --depth;
        if (depth > 0) ++end;
      }
      if (end >= text.size()) {
        return ErrorAt(node,
                       "unclosed \"${\" in " + text.substr(i) + " (write $$ for a literal $)");
      }
      std::string inner = text.substr(i + 2, end - i - 2);
      size_t n = 0;
      while (n < inner.size() &&
             (std::isalnum(static_cast<unsigned char>(inner[n])) || inner[n] == '_'))
        ++n;
      name = inner.substr(0, n);
      std::string rest = inner.substr(n);
      for (const char* candidate : {":-", ":?", ":+", "-", "?", "+"}) {
        if (rest.rfind(candidate, 0) == 0) {
          op = candidate;
          break;
        }
      }
      if (!IsVariableName(name) || (op.empty() && !rest.empty())) {
        return ErrorAt(node,
                       "invalid interpolation \"${" + inner + "}\" (write $$ for a literal $)");
      }
      word = rest.substr(op.size());
      ++end;
    } else if (std::isalpha(static_cast<unsigned char>(next)) || next == '_') {
      end = i + 1;
      while (end < text.size() &&
             (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_'))
        ++end;
      name = text.substr(i + 1, end - i - 1);
    } else {
      out += c;
      ++i;
      continue;
    }
    auto it = dotenv_.find(name);
    bool set = it != dotenv_.end();
    bool non_empty = set && !it->second.empty();
    std::string value;
    if (op == ":-" || op == "-") {
      bool use_default = op == ":-" ? !non_empty : !set;
      if (use_default) {
        ASSIGN_OR_RETURN(value, Interpolate(node, word, from_dotenv));
      } else {
        value = it->second;
        if (from_dotenv) *from_dotenv = true;
      }
    } else if (op == ":?" || op == "?") {
      bool missing = op == ":?" ? !non_empty : !set;
      if (missing) {
        return ErrorAt(node, "variable " + name + " is required and the .env next to " + filename_ +
                                 " does not set it" + (word.empty() ? "" : " (" + word + ")"));
      }
      value = it->second;
      if (from_dotenv) *from_dotenv = true;
    } else if (op == ":+" || op == "+") {
      bool present = op == ":+" ? non_empty : set;
      if (present) {
        ASSIGN_OR_RETURN(value, Interpolate(node, word, from_dotenv));
      }
    } else if (set) {
      value = it->second;
      if (from_dotenv) *from_dotenv = true;
    } else if (unset_warned_.insert(name).second) {
      Warn(node, "variable " + name + " is not set (no .env next to " + filename_ +
                     " defines it and it has no default): an empty string is used");
    }
    out += value;
    i = end;
  }
  return out;
}

Result<std::string> ComposeReader::Scalar(const YAML::Node& node, const std::string& field,
                                          bool* from_dotenv) {
  if (!node.IsScalar()) return ErrorAt(node, "\"" + field + "\" must be a string");
  return Interpolate(node, node.Scalar(), from_dotenv);
}

Result<std::string> ComposeReader::CommandLine(const YAML::Node& node, const std::string& field) {
  if (node.IsScalar()) return Scalar(node, field);
  if (!node.IsSequence()) return ErrorAt(node, "\"" + field + "\" must be a string or a list");
  std::string out;
  for (const auto& word : node) {
    ASSIGN_OR_RETURN(std::string w, Scalar(word, field));
    if (!out.empty()) out += ' ';
    out += ShellQuote(w);
  }
  return out;
}

std::string ComposeReader::Reference(const std::string& service, const std::string& key,
                                     const std::string& value, const YAML::Node& node) {
  auto note = [&](const std::string& ref, const Declared& target) {
    std::string what = target.kind == Kind::kAddon
                           ? target.addon_kind + " add-on \"" + target.name + "\""
                           : "service \"" + target.name + "\"";
    Warn(node, "service \"" + service + "\": " + key + " points at " + what + ": set to " + ref +
                   ", resolved at deploy");
    return ref;
  };
  size_t scheme_end = value.find("://");
  if (scheme_end == std::string::npos) {
    // A bare host name in a *_HOST variable.
    const Declared* target = Find(value);
    if (target == nullptr || key.size() < 4 || key.substr(key.size() - 4) != "HOST") return value;
    if (target->kind == Kind::kAddon && target->addon_kind == "postgres") {
      return note("${{ " + target->name + ".PGHOST }}", *target);
    }
    if (target->kind == Kind::kApp) {
      return note("${{ " + target->name + ".SLIPWAY_PRIVATE_DOMAIN }}", *target);
    }
    return value;
  }
  std::string scheme = value.substr(0, scheme_end);
  std::string rest = value.substr(scheme_end + 3);
  size_t path_start = rest.find_first_of("/?#");
  std::string authority = rest.substr(0, path_start);
  std::string path = path_start == std::string::npos ? "" : rest.substr(path_start);
  std::string hostport =
      authority.substr(authority.rfind('@') == std::string::npos ? 0 : authority.rfind('@') + 1);
  std::string host = hostport.substr(0, hostport.find(':'));
  const Declared* target = Find(host);
  if (target == nullptr) return value;
  if (target->kind == Kind::kAddon && target->addon_kind == "postgres" &&
      scheme.rfind("postgres", 0) == 0) {
    return note("${{ " + target->name + ".DATABASE_URL }}", *target);
  }
  if (target->kind == Kind::kAddon && target->addon_kind == "redis" &&
      scheme.rfind("redis", 0) == 0) {
    return note("${{ " + target->name + ".REDIS_URL }}", *target);
  }
  if (target->kind == Kind::kApp && (scheme == "http" || scheme == "ws")) {
    return note("${{ " + target->name + ".SLIPWAY_PRIVATE_URL }}" + path, *target);
  }
  return value;
}

Status ComposeReader::ReadBuild(const YAML::Node& node, ServiceConfig& s) {
  YAML::Node context_node = node;
  std::string context = ".";
  if (node.IsMap()) {
    ASSIGN_OR_RETURN(auto entries, Entries(node, "\"build\""));
    for (const auto& [k, v] : entries) {
      const std::string key = k.Scalar();
      if (key == "context") {
        ASSIGN_OR_RETURN(context, Scalar(v, "build.context"));
        context_node = v;
      } else if (key == "dockerfile" || key == "dockerfile_inline" || key == "target") {
        Warn(k, "service \"" + s.name + "\": build." + key +
                    " is not used: Slipway builds the app in the context directory itself "
                    "(Python, Node or static, detected) without a container engine");
      } else {
        Warn(k, "service \"" + s.name + "\": build." + key + " is not supported and is ignored");
      }
    }
  } else {
    ASSIGN_OR_RETURN(context, Scalar(node, "build"));
  }
  if (context.find("://") != std::string::npos || context.rfind("git@", 0) == 0) {
    return ErrorAt(context_node, "build context " + context +
                                     " is a remote repository; Slipway builds a directory of "
                                     "the project");
  }
  if (!context.empty() && context.front() == '/') {
    return ErrorAt(context_node, "build context \"" + context + "\" must be relative to " +
                                     filename_ + "'s directory");
  }
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= context.size()) {
    size_t slash = context.find('/', start);
    if (slash == std::string::npos) slash = context.size();
    std::string part = context.substr(start, slash - start);
    if (part == "..") {
      if (parts.empty()) {
        return ErrorAt(context_node, "build context \"" + context +
                                         "\" is outside the project directory; Slipway "
                                         "deploys the directory holding " +
                                         filename_);
      }
      parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = slash + 1;
  }
  std::string root;
  for (const auto& p : parts) root += (root.empty() ? "" : "/") + p;
  s.root_directory = root.empty() ? "." : root;
  Origin(s, "rootDirectory", context_node);
  if (!node.IsMap() || !node["dockerfile"]) {
    Warn(node, "service \"" + s.name +
                   "\": the Dockerfile is not used: Slipway detects the app in \"" +
                   s.root_directory + "\" (Python, Node or static) and builds it");
  }
  return Status::Ok();
}

Status ComposeReader::ReadEnvironment(const YAML::Node& node, ServiceConfig& s) {
  auto set = [&](const std::string& key, const YAML::Node& at, const std::string& raw,
                 bool has_value) -> Status {
    if (!IsVariableName(key)) {
      return ErrorAt(at, "variable name \"" + key +
                             "\" is not valid: use letters, digits and '_', not starting with "
                             "a digit");
    }
    if (key == "PORT") {
      Warn(at, "service \"" + s.name +
                   "\": PORT is set by Slipway for each replica; this value is ignored");
      return Status::Ok();
    }
    const std::string origin_key = "services." + s.name + ".variables." + key;
    if (!has_value) {
      // Compose takes it from the shell; here the user sets it once with `slipway variables`.
      s.required_variables.push_back(key);
      Warn(at, "service \"" + s.name + "\": " + key +
                   " has no value here (Compose takes it from the shell): it is required; set "
                   "it with `slipway variables set " +
                   key + "=...`");
      config_.origins["services." + s.name + ".requiredVariables." + key] = At(at);
      return Status::Ok();
    }
    bool from_dotenv = false;
    ASSIGN_OR_RETURN(std::string value, Interpolate(at, raw, &from_dotenv));
    s.variables[key] = Reference(s.name, key, value, at);
    config_.origins[origin_key] = At(at) + (from_dotenv ? " (.env)" : "");
    // .env files hold secrets (that is why they are kept out of git): such a value is
    // stored encrypted and masked, not kept in the deployment's config.
    if (from_dotenv) config_.secret_variables[s.name].insert(key);
    return Status::Ok();
  };
  if (node.IsMap()) {
    for (const auto& kv : node) {
      const YAML::Node& v = kv.second;
      if (!v.IsNull() && !v.IsScalar()) {
        return ErrorAt(v, "variable \"" + kv.first.Scalar() + "\" must be a string");
      }
      RETURN_IF_ERROR(set(kv.first.Scalar(), v.IsNull() ? kv.first : v,
                          v.IsNull() ? "" : v.Scalar(), !v.IsNull()));
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) {
      if (!item.IsScalar()) return ErrorAt(item, "each of \"environment\" must be \"KEY=value\"");
      const std::string& line = item.Scalar();
      size_t eq = line.find('=');
      RETURN_IF_ERROR(set(line.substr(0, eq), item,
                          eq == std::string::npos ? "" : line.substr(eq + 1),
                          eq != std::string::npos));
    }
  } else {
    return ErrorAt(node, "\"environment\" must be a mapping or a list of \"KEY=value\"");
  }
  return Status::Ok();
}

Result<int> ComposeReader::ReadPorts(const YAML::Node& node, const std::string& field) {
  if (!node.IsSequence()) return ErrorAt(node, "\"" + field + "\" must be a list");
  int first = 0;
  for (const auto& item : node) {
    std::string target;
    if (item.IsMap()) {
      if (!item["target"]) return ErrorAt(item, "a long-form port needs \"target\"");
      ASSIGN_OR_RETURN(target, Scalar(item["target"], field + "[].target"));
    } else {
      ASSIGN_OR_RETURN(std::string spec, Scalar(item, field));
      spec = spec.substr(0, spec.find('/'));  // "8000/tcp"
      target = spec.substr(spec.rfind(':') == std::string::npos ? 0 : spec.rfind(':') + 1);
      target = target.substr(0, target.find('-'));  // a range: its first port
    }
    int port = std::all_of(target.begin(), target.end(), ::isdigit) && !target.empty() &&
                       target.size() <= 5
                   ? std::atoi(target.c_str())
                   : 0;
    if (port < 1 || port > 65535) {
      return ErrorAt(item, "\"" + field + "\" entry must name a container port from 1 to 65535");
    }
    if (first == 0) {
      first = port;
    } else if (port != first) {
      Warn(item, "only the first container port (" + std::to_string(first) + ") is routed; port " +
                     std::to_string(port) + " is ignored");
    }
  }
  return first;
}

Status ComposeReader::ReadHealthcheck(const YAML::Node& node, ServiceConfig& s) {
  ASSIGN_OR_RETURN(auto entries, Entries(node, "\"healthcheck\""));
  YAML::Node test_node;
  int interval = -1, retries = -1, start_period = -1;
  bool disabled = false;
  for (const auto& [k, v] : entries) {
    const std::string key = k.Scalar();
    if (key == "test") {
      test_node = v;
    } else if (key == "interval" || key == "start_period" || key == "timeout" ||
               key == "start_interval") {
      ASSIGN_OR_RETURN(std::string text, Scalar(v, "healthcheck." + key));
      int seconds = DurationSeconds(text);
      if (seconds < 0) {
        return ErrorAt(v,
                       "\"healthcheck." + key + "\" must be a duration like \"10s\" or \"1m30s\"");
      }
      if (key == "interval") interval = std::clamp(seconds, 1, kMaxSeconds);
      if (key == "start_period") start_period = seconds;
      if (key == "timeout" || key == "start_interval") {
        Warn(k, "healthcheck." + key + " is not used: each probe waits 2 seconds at most");
      }
    } else if (key == "retries") {
      ASSIGN_OR_RETURN(std::string text, Scalar(v, "healthcheck.retries"));
      if (text.empty() || !std::all_of(text.begin(), text.end(), ::isdigit) || text.size() > 4) {
        return ErrorAt(v, "\"healthcheck.retries\" must be a whole number");
      }
      retries = std::atoi(text.c_str());
    } else if (key == "disable") {
      disabled = v.IsScalar() && v.Scalar() == "true";
    } else {
      Warn(k, "healthcheck." + key + " is not supported and is ignored");
    }
  }
  if (disabled) return Status::Ok();
  if (test_node) {
    std::string test;
    if (test_node.IsSequence()) {
      std::vector<std::string> words;
      for (const auto& w : test_node) {
        ASSIGN_OR_RETURN(std::string word, Scalar(w, "healthcheck.test"));
        words.push_back(word);
      }
      if (!words.empty() && words[0] == "NONE") return Status::Ok();
      for (size_t i = words.empty() || (words[0] != "CMD" && words[0] != "CMD-SHELL") ? 0 : 1;
           i < words.size(); ++i) {
        test += (test.empty() ? "" : " ") + words[i];
      }
    } else {
      ASSIGN_OR_RETURN(test, Scalar(test_node, "healthcheck.test"));
    }
    // An HTTP request to the container itself: its path is the health check.
    std::string path;
    bool found = false;
    for (const char* host : {"://localhost", "://127.0.0.1", "://0.0.0.0", "://[::1]"}) {
      size_t at = test.find(host);
      if (at == std::string::npos) continue;
      size_t after = at + std::string_view(host).size();
      if (after < test.size() && test[after] == ':') {
        while (after + 1 < test.size() && std::isdigit(static_cast<unsigned char>(test[after + 1])))
          ++after;
        ++after;
      }
      size_t end = test.find_first_of(" \t'\"),;|&", after);
      path = test.substr(after, end == std::string::npos ? std::string::npos : end - after);
      if (path.empty() || path[0] != '/') path = "/" + path;
      found = true;
      break;
    }
    if (found) {
      s.healthcheck_path = path;
      Origin(s, "healthcheckPath", test_node);
    } else {
      Warn(test_node, "service \"" + s.name + "\": healthcheck test \"" + test +
                          "\" is not an HTTP request to localhost and is not used; the port "
                          "accepting connections is the health check");
    }
  }
  if (interval > 0) {
    s.healthcheck_interval = interval;
    Origin(s, "healthcheckInterval", node["interval"]);
  }
  if (interval > 0 || retries >= 0 || start_period >= 0) {
    // Compose calls a container unhealthy after start_period + interval * retries; a
    // deploy waits at least Slipway's default for the first healthy answer.
    int computed =
        std::max(start_period, 0) + (interval > 0 ? interval : 30) * (retries >= 0 ? retries : 3);
    int timeout = std::clamp(computed, 60, kMaxSeconds);
    if (timeout != s.healthcheck_timeout) {
      s.healthcheck_timeout = timeout;
      Origin(s, "healthcheckTimeout", node);
    }
  }
  return Status::Ok();
}

Status ComposeReader::ReadRestart(const YAML::Node& node, ServiceConfig& s) {
  ASSIGN_OR_RETURN(std::string restart, Scalar(node, "restart"));
  if (restart == "always" || restart == "unless-stopped") {
    s.restart_policy = "ALWAYS";
  } else if (restart == "no") {
    s.restart_policy = "NEVER";
  } else if (restart.rfind("on-failure", 0) == 0) {
    s.restart_policy = "ON_FAILURE";
    if (restart.size() > 11 && restart[10] == ':') {
      std::string n = restart.substr(11);
      if (n.empty() || n.size() > 4 || !std::all_of(n.begin(), n.end(), ::isdigit)) {
        return ErrorAt(node, "\"restart\" must be no, always, unless-stopped or on-failure[:N]");
      }
      s.restart_max_retries = std::atoi(n.c_str());
      Origin(s, "restartPolicyMaxRetries", node);
    }
  } else {
    return ErrorAt(
        node, "\"restart\" must be no, always, unless-stopped or on-failure[:N] (got \"" + restart +
                  "\")");
  }
  Origin(s, "restartPolicyType", node);
  return Status::Ok();
}

Status ComposeReader::ReadDeploy(const YAML::Node& node, ServiceConfig& s) {
  ASSIGN_OR_RETURN(auto entries, Entries(node, "\"deploy\""));
  for (const auto& [k, v] : entries) {
    const std::string key = k.Scalar();
    if (key == "replicas") {
      ASSIGN_OR_RETURN(std::string text, Scalar(v, "deploy.replicas"));
      int n = !text.empty() && text.size() <= 3 && std::all_of(text.begin(), text.end(), ::isdigit)
                  ? std::atoi(text.c_str())
                  : -1;
      if (n < 1 || n > kMaxReplicas) {
        return ErrorAt(v, "\"deploy.replicas\" must be an integer from 1 to " +
                              std::to_string(kMaxReplicas) + " (got \"" + text + "\")");
      }
      s.num_replicas = n;
      Origin(s, "numReplicas", v);
    } else if (key == "restart_policy") {
      ASSIGN_OR_RETURN(auto policy, Entries(v, "\"deploy.restart_policy\""));
      for (const auto& [pk, pv] : policy) {
        const std::string p = pk.Scalar();
        if (p == "condition") {
          ASSIGN_OR_RETURN(std::string c, Scalar(pv, "deploy.restart_policy.condition"));
          if (c == "none") {
            s.restart_policy = "NEVER";
          } else if (c == "on-failure") {
            s.restart_policy = "ON_FAILURE";
          } else if (c == "any") {
            s.restart_policy = "ALWAYS";
          } else {
            return ErrorAt(pv,
                           "\"deploy.restart_policy.condition\" must be none, on-failure or any");
          }
          Origin(s, "restartPolicyType", pv);
        } else if (p == "max_attempts") {
          ASSIGN_OR_RETURN(std::string n, Scalar(pv, "deploy.restart_policy.max_attempts"));
          if (n.empty() || n.size() > 4 || !std::all_of(n.begin(), n.end(), ::isdigit)) {
            return ErrorAt(pv, "\"deploy.restart_policy.max_attempts\" must be a whole number");
          }
          s.restart_max_retries = std::atoi(n.c_str());
          Origin(s, "restartPolicyMaxRetries", pv);
        } else {
          Warn(pk, "deploy.restart_policy." + p + " is not supported and is ignored");
        }
      }
    } else {
      Warn(k, "service \"" + s.name + "\": deploy." + key + " is not supported and is ignored");
    }
  }
  return Status::Ok();
}

Status ComposeReader::ReadApp(const Declared& d) {
  ServiceConfig s;
  s.name = d.name;
  config_.origins["services." + s.name + ".name"] = At(d.key);
  std::string command, entrypoint;
  YAML::Node command_node, entrypoint_node, ports_node;
  int port = 0;
  for (const auto& [k, v] : d.entries) {
    const std::string key = k.Scalar();
    if (key == "build") {
      RETURN_IF_ERROR(ReadBuild(v, s));
    } else if (key == "image") {
      Warn(k, "service \"" + s.name + "\": image names the built image and is ignored");
    } else if (key == "command") {
      ASSIGN_OR_RETURN(command, CommandLine(v, "command"));
      command_node = v;
    } else if (key == "entrypoint") {
      ASSIGN_OR_RETURN(entrypoint, CommandLine(v, "entrypoint"));
      entrypoint_node = v;
    } else if (key == "environment") {
      RETURN_IF_ERROR(ReadEnvironment(v, s));
    } else if (key == "env_file") {
      Warn(k, "service \"" + s.name +
                  "\": env_file is not read (it usually holds secrets): set its variables "
                  "with `slipway variables set`");
    } else if (key == "ports" || key == "expose") {
      ASSIGN_OR_RETURN(int p, ReadPorts(v, key));
      if (port == 0) {
        port = p;
        ports_node = v;
      }
    } else if (key == "depends_on") {
      Warn(k, "service \"" + s.name +
                  "\": depends_on is informational: services start on their own, and "
                  "references between them resolve at deploy");
    } else if (key == "healthcheck") {
      RETURN_IF_ERROR(ReadHealthcheck(v, s));
    } else if (key == "restart") {
      RETURN_IF_ERROR(ReadRestart(v, s));
    } else if (key == "deploy") {
      RETURN_IF_ERROR(ReadDeploy(v, s));
    } else if (key == "volumes") {
      Warn(k, "service \"" + s.name +
                  "\": volumes are not supported (no container engine): the release "
                  "directory is the app's files; keep data in an add-on");
    } else if (key == "networks") {
      Warn(k, "service \"" + s.name +
                  "\": networks are not supported: services reach each other through "
                  "${{ <service>.SLIPWAY_PRIVATE_URL }}");
    } else if (key == "container_name") {
      Warn(k, "service \"" + s.name + "\": container_name is ignored (no container engine)");
    } else if (key.rfind("x-", 0) == 0) {
      Warn(k, "extension field " + key + " is ignored");
    } else {
      Warn(k, "service \"" + s.name + "\": " + key + " is not supported and is ignored");
    }
  }

  if (!entrypoint.empty()) {
    Warn(entrypoint_node,
         "service \"" + s.name + "\": entrypoint and command are run as one start command");
    command = command.empty() ? entrypoint : entrypoint + " " + command;
    if (!command_node) command_node = entrypoint_node;
  }
  if (port == 0) {
    s.type = "worker";
    config_.origins["services." + s.name + ".type"] = At(d.key);
    Warn(d.key, "service \"" + s.name +
                    "\" publishes no port (no ports: or expose:): imported as a worker "
                    "without a route");
  } else {
    // The app must listen on $PORT: a literal container port in the command ("--port 8000",
    // "0.0.0.0:8000", "-b :8000", a bare 8000) is replaced by it.
    const std::string p = std::to_string(port);
    bool replaced = false;
    size_t at = 0;
    while ((at = command.find(p, at)) != std::string::npos) {
      size_t end = at + p.size();
      bool digit_before = at > 0 && std::isdigit(static_cast<unsigned char>(command[at - 1]));
      bool digit_after =
          end < command.size() && std::isdigit(static_cast<unsigned char>(command[end]));
      bool word_end = end == command.size() ||
                      std::string_view(" \t'\"/;&|").find(command[end]) != std::string_view::npos;
      bool port_context =
          at > 0 && std::string_view(" \t:='\"").find(command[at - 1]) != std::string_view::npos;
      if (!digit_before && !digit_after && word_end && port_context) {
        command.replace(at, p.size(), "$PORT");
        replaced = true;
        at += 5;
      } else {
        at = end;
      }
    }
    if (replaced) {
      Warn(command_node, "service \"" + s.name + "\": port " + p +
                             " in the command is replaced with $PORT (Slipway gives each "
                             "replica its port; the app must listen on $PORT)");
    } else {
      Warn(ports_node, "service \"" + s.name +
                           "\": the app must listen on $PORT (Slipway sets "
                           "it for each replica); container port " +
                           p + " is not used");
    }
  }
  if (!command.empty()) {
    s.start_command = command;
    Origin(s, "startCommand", command_node);
  }
  config_.services.push_back(std::move(s));
  return Status::Ok();
}

Result<ProjectConfig> ComposeReader::Read(std::string_view text) {
  ASSIGN_OR_RETURN(YAML::Node root, LoadYaml(text, filename_));
  if (!root.IsMap()) {
    return InvalidArgument(filename_ + ":1:1: expected a mapping with a \"services:\" key");
  }
  YAML::Node services;
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar();
    if (key == "services") {
      services = kv.second;
    } else if (key == "name") {
      ASSIGN_OR_RETURN(std::string name, Scalar(kv.second, "name"));
      std::string sanitised = SanitizeName(name);
      if (sanitised.empty()) {
        Warn(kv.second, "project name \"" + name + "\" is not usable and is ignored");
      } else {
        if (sanitised != name) {
          Warn(kv.second, "project \"" + name + "\" is named \"" + sanitised + "\" (a DNS label)");
        }
        config_.name = sanitised;
        config_.origins["project"] = At(kv.second);
      }
    } else if (key == "version") {
      Warn(kv.first, "\"version\" is obsolete in Compose and is ignored");
    } else if (key.rfind("x-", 0) == 0) {
      Warn(kv.first, "extension field " + key + " is ignored (its anchors are still used)");
    } else if (key == "volumes" || key == "networks" || key == "secrets" || key == "configs") {
      Warn(kv.first,
           "top-level " + key + " are not supported (no container engine) and are ignored");
    } else {
      Warn(kv.first, "top-level " + key + " is not supported and is ignored");
    }
  }
  if (!services || services.IsNull()) {
    return InvalidArgument(filename_ + ":1:1: no \"services:\" declared");
  }
  if (!services.IsMap() || services.size() == 0) {
    return ErrorAt(services, "\"services\" must be a mapping of service names to services");
  }

  // First every service's name and kind, so environment values can refer to any of them.
  std::set<std::string> names;
  for (const auto& kv : services) {
    Declared d;
    d.original = kv.first.Scalar();
    d.key = kv.first;
    ASSIGN_OR_RETURN(d.entries, Entries(kv.second, "service \"" + d.original + "\""));
    d.name = SanitizeName(d.original);
    if (d.name.empty()) {
      return ErrorAt(kv.first, "service name \"" + d.original + "\" cannot be made a DNS label");
    }
    if (!names.insert(d.name).second) {
      return ErrorAt(kv.first, "service \"" + d.original + "\" is named \"" + d.name +
                                   "\" as a DNS label, like another service");
    }
    std::string image;
    bool has_build = false;
    for (const auto& [k, v] : d.entries) {
      if (k.Scalar() == "build") has_build = true;
      if (k.Scalar() == "image" && v.IsScalar()) image = v.Scalar();
    }
    if (has_build) {
      d.kind = Kind::kApp;
    } else if (!AddonKind(image).empty()) {
      d.kind = Kind::kAddon;
      d.addon_kind = AddonKind(image);
    }
    if (d.name != d.original) {
      Warn(kv.first, "service \"" + d.original + "\" is named \"" + d.name +
                         "\" (service names are DNS labels)");
    }
    if (d.kind == Kind::kSkipped && !has_build) {
      if (image.empty()) {
        return ErrorAt(kv.first, "service \"" + d.original + "\" has neither build nor image");
      }
      Warn(kv.first, "service \"" + d.original + "\" (image " + image +
                         ") is skipped: Slipway runs no container images, only apps it builds "
                         "(build:) and postgres/redis add-ons");
    }
    declared_.push_back(std::move(d));
  }

  for (const Declared& d : declared_) {
    if (d.kind == Kind::kAddon) {
      AddonConfig addon;
      addon.kind = d.addon_kind;
      addon.name = d.name;
      config_.addons.push_back(std::move(addon));
      config_.origins["addons." + d.name] = At(d.key);
      std::vector<std::string> ignored;
      for (const auto& [k, v] : d.entries) {
        if (k.Scalar() != "image") ignored.push_back(k.Scalar());
      }
      std::string list;
      for (const auto& i : ignored) list += (list.empty() ? "" : ", ") + i;
      Warn(d.key, "service \"" + d.original + "\" becomes " + d.addon_kind + " add-on \"" + d.name +
                      "\", provisioned at slipway up (its credentials are generated; reach it "
                      "with ${{ " +
                      d.name + (d.addon_kind == "postgres" ? ".DATABASE_URL" : ".REDIS_URL") +
                      " }})" + (list.empty() ? "" : "; its settings (" + list + ") are not used"));
    } else if (d.kind == Kind::kApp) {
      RETURN_IF_ERROR(ReadApp(d));
    }
  }
  if (config_.services.empty()) {
    return ErrorAt(services,
                   "no service to deploy: none has a build: section (Slipway builds "
                   "apps from their directory; images are not run)");
  }
  return std::move(config_);
}

}  // namespace

Result<ProjectConfig> ImportComposeWithEnv(std::string_view text, const std::string& filename,
                                           const std::map<std::string, std::string>& dotenv) {
  ComposeReader reader(filename, dotenv);
  return reader.Read(text);
}

Result<ProjectConfig> ImportCompose(std::string_view text, const std::string& filename) {
  static const std::map<std::string, std::string> kNoDotEnv;
  return ImportComposeWithEnv(text, filename, kNoDotEnv);
}

Result<std::map<std::string, std::string>> ParseDotEnv(std::string_view text,
                                                       const std::string& filename) {
  std::map<std::string, std::string> out;
  int line_number = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string line(text.substr(start, end - start));
    start = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t b = line.find_first_not_of(" \t");
    if (b == std::string::npos || line[b] == '#') continue;
    line = line.substr(b);
    if (line.rfind("export ", 0) == 0) line = line.substr(7);
    size_t eq = line.find('=');
    std::string key = line.substr(0, eq);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    if (eq == std::string::npos || !IsVariableName(key)) {
      return InvalidArgument(filename + ":" + std::to_string(line_number) + ": expected KEY=VALUE");
    }
    std::string value = line.substr(eq + 1);
    size_t vb = value.find_first_not_of(" \t");
    value = vb == std::string::npos ? "" : value.substr(vb);
    if (!value.empty() && (value[0] == '"' || value[0] == '\'')) {
      size_t close = value.find(value[0], 1);
      if (close == std::string::npos) {
        return InvalidArgument(filename + ":" + std::to_string(line_number) +
                               ": unterminated quote in the value of " + key);
      }
      std::string inner = value.substr(1, close - 1);
      if (value[0] == '"') {
        std::string unescaped;
        for (size_t i = 0; i < inner.size(); ++i) {
          if (inner[i] == '\\' && i + 1 < inner.size() && inner[i + 1] == 'n') {
            unescaped += '\n';
            ++i;
          } else {
            unescaped += inner[i];
          }
        }
        inner = unescaped;
      }
      value = inner;
    } else {
      size_t hash = value.find(" #");
      if (hash != std::string::npos) value = value.substr(0, hash);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    }
    out[key] = value;
  }
  return out;
}

}  // namespace slipway
