// app.json: Heroku's app manifest (https://devcenter.heroku.com/articles/app-json-schema).
// It declares config vars, the formation (how many dynos of each process type), add-ons
// and health checks; the commands come from the Procfile, which LoadProjectConfig merges
// afterwards (docs/importers/heroku.md).

#include <algorithm>
#include <map>

#include "config/import_tree.h"
#include "config/importers.h"

namespace slipway {
namespace {

constexpr int kMaxReplicas = 32;

class AppJsonReader {
 public:
  AppJsonReader(const std::string& filename, ProjectConfig& config)
      : fields_(filename, config), config_(config) {}

  Status Read(const ImportNode& root) {
    RETURN_IF_ERROR(fields_.ExpectMap(root, "the top level"));
    Service("web");
    std::vector<std::string> informational;
    std::string informational_where;
    for (const auto& m : root.members) {
      if (m.key == "$schema") continue;
      if (m.key == "env") {
        RETURN_IF_ERROR(ReadEnv(m.value));
      } else if (m.key == "formation") {
        RETURN_IF_ERROR(ReadFormation(m.value));
      } else if (m.key == "addons") {
        RETURN_IF_ERROR(ReadAddons(m.value));
      } else if (m.key == "healthchecks") {
        RETURN_IF_ERROR(ReadHealthchecks(m.value));
      } else if (m.key == "scripts") {
        RETURN_IF_ERROR(fields_.ExpectMap(m.value, "scripts"));
        for (const auto& s : m.value.members) {
          fields_.Unsupported(s, "scripts." + s.key,
                              s.key == "postdeploy"
                                  ? "for a command run on every deploy, use the Procfile's "
                                    "release: line"
                                  : "");
        }
      } else if (m.key == "name" || m.key == "description" || m.key == "keywords" ||
                 m.key == "logo" || m.key == "repository" || m.key == "website" ||
                 m.key == "success_url") {
        if (informational.empty()) informational_where = m.key_where;
        informational.push_back(QuoteForMessage(m.key));
      } else if (m.key == "buildpacks" || m.key == "stack" || m.key == "image") {
        fields_.Unsupported(m, m.key, "the builder detects the app");
      } else {
        // environments (review apps, CI) and anything newer
        fields_.Unsupported(m, m.key);
      }
    }
    if (!informational.empty()) {
      std::string list;
      for (const auto& i : informational) list += (list.empty() ? "" : ", ") + i;
      fields_.Warn(informational_where,
                   list + (informational.size() == 1 ? " is" : " are") +
                       " informational and not used (the project is named after its "
                       "directory)");
    }
    ApplyVariables();
    return Status::Ok();
  }

 private:
  ServiceConfig& Service(const std::string& name) {
    for (auto& s : config_.services) {
      if (s.name == name) return s;
    }
    ServiceConfig& s = config_.services.emplace_back();
    s.name = name;
    s.type = name == "web" ? "web" : "worker";
    return s;
  }

  struct Variable {
    std::string value;
    std::string where;
  };

  Status ReadEnv(const ImportNode& env) {
    RETURN_IF_ERROR(fields_.ExpectMap(env, "env"));
    for (const auto& m : env.members) {
      RETURN_IF_ERROR(fields_.VariableName(m.key, m.key_where));
      if (m.key == "PORT") {
        fields_.Warn(m.key_where, "PORT is set by Slipway for each replica; this value is ignored");
        continue;
      }
      const ImportNode& v = m.value;
      if (v.IsScalar()) {
        variables_[m.key] = {v.text, v.where};
        continue;
      }
      RETURN_IF_ERROR(fields_.ExpectMap(v, "env." + m.key));
      bool required = true;  // Heroku's default
      bool has_value = false;
      for (const auto& f : v.members) {
        if (f.key == "value") {
          ASSIGN_OR_RETURN(std::string value, fields_.String(f.value, "value"));
          variables_[m.key] = {value, f.value.where};
          has_value = true;
        } else if (f.key == "generator") {
          ASSIGN_OR_RETURN(std::string generator, fields_.String(f.value, "generator"));
          if (generator != "secret") {
            return fields_.Error(f.value.where, "\"generator\" must be \"secret\" (got " +
                                                    QuoteForMessage(generator) + ")");
          }
          variables_[m.key] = {"${{ secret(64) }}", f.value.where};
          has_value = true;
        } else if (f.key == "required") {
          ASSIGN_OR_RETURN(required, fields_.Bool(f.value, "required"));
        } else if (f.key == "description") {
          // for the person filling in the value
        } else {
          fields_.Unsupported(f, "env." + m.key + "." + f.key);
        }
      }
      if (!has_value && required) required_.emplace_back(m.key, v.where);
    }
    return Status::Ok();
  }

  Status ReadFormation(const ImportNode& formation) {
    RETURN_IF_ERROR(fields_.ExpectMap(formation, "formation"));
    for (const auto& m : formation.members) {
      RETURN_IF_ERROR(fields_.ExpectMap(m.value, "formation." + m.key));
      ImportNode key_node;
      key_node.kind = ImportNode::Kind::kScalar;
      key_node.text = m.key;
      key_node.where = m.key_where;
      ASSIGN_OR_RETURN(std::string name, fields_.Name(key_node, "process type"));
      ServiceConfig& service = Service(name);
      for (const auto& f : m.value.members) {
        if (f.key == "quantity") {
          ASSIGN_OR_RETURN(int quantity, fields_.Int(f.value, "formation." + m.key + ".quantity", 0,
                                                     kMaxReplicas));
          if (quantity == 0) {
            fields_.Warn(f.value.where, "quantity 0 is not supported: " + QuoteForMessage(name) +
                                            " runs one replica (remove it from the Procfile to "
                                            "not run it)");
            quantity = 1;
          }
          service.num_replicas = quantity;
          fields_.Origin("services." + name + ".numReplicas", f.value);
        } else {
          // size: every replica gets the machine's resources
          fields_.Unsupported(f, "formation." + m.key + "." + f.key);
        }
      }
    }
    return Status::Ok();
  }

  Status ReadAddons(const ImportNode& addons) {
    RETURN_IF_ERROR(fields_.ExpectSequence(addons, "addons"));
    for (const auto& a : addons.items) {
      std::string plan;
      std::string as;
      std::string as_where;
      if (a.IsScalar()) {
        plan = a.text;
      } else {
        RETURN_IF_ERROR(fields_.ExpectMap(a, "addons[]"));
        const ImportNode* plan_node = a.Find("plan");
        if (plan_node == nullptr) return fields_.Error(a.where, "an add-on needs a \"plan\"");
        ASSIGN_OR_RETURN(plan, fields_.String(*plan_node, "plan"));
        for (const auto& f : a.members) {
          if (f.key == "plan") continue;
          if (f.key == "as") {
            ASSIGN_OR_RETURN(as, fields_.String(f.value, "as"));
            as_where = f.value.where;
          } else {
            fields_.Unsupported(f, "addons." + f.key);
          }
        }
      }
      std::string service = plan.substr(0, plan.find(':'));
      std::string kind, url_var, default_name;
      if (service == "heroku-postgresql") {
        kind = "postgres";
        url_var = "DATABASE_URL";
        default_name = "db";
      } else if (service == "heroku-redis") {
        kind = "redis";
        url_var = "REDIS_URL";
        default_name = "cache";
      } else {
        fields_.Warn(a.where, "add-on " + QuoteForMessage(plan) +
                                  " is not offered (Slipway provides heroku-postgresql and "
                                  "heroku-redis) and is ignored");
        continue;
      }
      std::string name = default_name;
      if (!as.empty()) {
        // Heroku names the variable after the attachment: "as": "ANALYTICS" -> ANALYTICS_URL.
        RETURN_IF_ERROR(fields_.VariableName(as, as_where));
        url_var = as + "_URL";
        name = SanitizeForAddon(as);
      }
      for (int n = 2; std::any_of(config_.addons.begin(), config_.addons.end(),
                                  [&](const AddonConfig& x) { return x.name == name; });
           ++n) {
        name = (as.empty() ? default_name : SanitizeForAddon(as)) + "-" + std::to_string(n);
      }
      if (std::any_of(config_.services.begin(), config_.services.end(),
                      [&](const ServiceConfig& s) { return s.name == name; })) {
        return fields_.Error(a.where, "add-on name " + QuoteForMessage(name) +
                                          " is also a process type; give the add-on another "
                                          "\"as\" name");
      }
      AddonConfig addon;
      addon.kind = kind;
      addon.name = name;
      config_.addons.push_back(std::move(addon));
      fields_.Origin("addons." + name, a);
      std::string reference = Reference(name, kind == "postgres" ? "DATABASE_URL" : "REDIS_URL");
      if (variables_.count(url_var) == 0) variables_[url_var] = {reference, a.where};
    }
    return Status::Ok();
  }

  static std::string SanitizeForAddon(const std::string& raw) {
    std::string out;
    for (char c : raw) {
      unsigned char u = static_cast<unsigned char>(c);
      if (std::isalnum(u)) {
        out += static_cast<char>(std::tolower(u));
      } else if (!out.empty() && out.back() != '-') {
        out += '-';
      }
    }
    while (!out.empty() && out.back() == '-') out.pop_back();
    if (out.size() > 40) out.resize(40);
    return out.empty() ? "addon" : out;
  }

  // Heroku's dyno health checks: {"web": [{"type": "startup"|"readiness"|"liveness",
  // "path": "/health", "port", "initialDelay", "period", "timeout", "maxAttempts", "name",
  // "description"}]}. A web startup or readiness path is the deploy's health check.
  Status ReadHealthchecks(const ImportNode& checks) {
    RETURN_IF_ERROR(fields_.ExpectMap(checks, "healthchecks"));
    for (const auto& process : checks.members) {
      std::vector<const ImportNode*> list;
      if (process.value.IsSequence()) {
        for (const auto& item : process.value.items) list.push_back(&item);
      } else {
        RETURN_IF_ERROR(fields_.ExpectMap(process.value, "healthchecks." + process.key));
        list.push_back(&process.value);
      }
      for (const ImportNode* check : list) {
        RETURN_IF_ERROR(fields_.ExpectMap(*check, "healthchecks." + process.key + "[]"));
        std::string type = "startup";
        if (const ImportNode* t = check->Find("type")) {
          ASSIGN_OR_RETURN(type, fields_.String(*t, "type"));
        }
        const ImportNode* path = check->Find("path");
        if (process.key != "web" || (type != "startup" && type != "readiness") || path == nullptr) {
          fields_.Warn(check->where,
                       "health check (" + QuoteForMessage(process.key) + ", " +
                           QuoteForMessage(type) +
                           ") is not supported and is ignored: Slipway checks the web "
                           "service's startup and readiness with one HTTP path");
          continue;
        }
        ServiceConfig& web = Service("web");
        ASSIGN_OR_RETURN(web.healthcheck_path, fields_.HealthPath(*path, "path"));
        fields_.Origin("services.web.healthcheckPath", *path);
        for (const auto& f : check->members) {
          if (f.key == "type" || f.key == "path" || f.key == "name" || f.key == "description") {
            continue;
          }
          fields_.Unsupported(f, "healthchecks.web." + f.key,
                              "Slipway probes $PORT with its own timing");
        }
      }
    }
    return Status::Ok();
  }

  // Config vars apply to every process type.
  void ApplyVariables() {
    for (auto& service : config_.services) {
      for (const auto& [key, v] : variables_) {
        service.variables[key] = v.value;
        config_.origins["services." + service.name + ".variables." + key] = v.where;
      }
      for (const auto& [key, where] : required_) {
        service.required_variables.push_back(key);
        config_.origins["services." + service.name + ".requiredVariables." + key] = where;
      }
    }
  }

  FieldReader fields_;
  ProjectConfig& config_;
  std::map<std::string, Variable> variables_;
  std::vector<std::pair<std::string, std::string>> required_;
};

}  // namespace

Result<ProjectConfig> ImportAppJson(std::string_view text, const std::string& filename) {
  ASSIGN_OR_RETURN(YAML::Node yaml, LoadJson(text, filename));
  ASSIGN_OR_RETURN(ImportNode root, ImportTreeFromYaml(yaml, filename));
  ProjectConfig config;
  AppJsonReader reader(filename, config);
  RETURN_IF_ERROR(reader.Read(root));
  return config;
}

}  // namespace slipway
