// render.yaml: a Render Blueprint (https://render.com/docs/blueprint-spec). Its services
// become Slipway services, its databases and Key Value instances add-ons, its environment
// groups shared variables (docs/importers/render.md).

#include <algorithm>
#include <map>
#include <set>

#include "config/import_tree.h"
#include "config/importers.h"

namespace slipway {
namespace {

constexpr int kMaxReplicas = 32;
constexpr int kMaxSeconds = 3600;

// Fields of a service that only mean something on Render's infrastructure.
const std::set<std::string>& PlatformOnlyServiceFields() {
  static const std::set<std::string> fields = {"plan",
                                               "region",
                                               "disk",
                                               "domains",
                                               "scaling",
                                               "autoDeploy",
                                               "autoDeployTrigger",
                                               "branch",
                                               "repo",
                                               "previews",
                                               "pullRequestPreviewsEnabled",
                                               "dockerfilePath",
                                               "dockerContext",
                                               "dockerCommand",
                                               "image",
                                               "registryCredential",
                                               "ipAllowList",
                                               "maxmemoryPolicy",
                                               "initialDeployHook"};
  return fields;
}

class RenderReader {
 public:
  RenderReader(const std::string& filename, ProjectConfig& config)
      : fields_(filename, config), config_(config) {}

  Status Read(const ImportNode& root);

 private:
  struct Declared {
    std::string kind;  // "service", "postgres", "redis"
    std::string where;
  };

  Status DeclareName(const std::string& name, const std::string& kind, const std::string& where);
  Status CollectNames(const ImportNode& root);
  Status ReadDatabase(const ImportNode& db);
  Status ReadGroup(const ImportNode& group);
  Status ReadService(const ImportNode& node);
  Status ReadServiceField(const ImportNode::Member& m, ServiceConfig& service, bool& skip);
  Status ReadEnvVars(const ImportNode& list, ServiceConfig& service);
  Status ReadEnvVar(const ImportNode& item, ServiceConfig& service);
  Result<std::string> FromDatabase(const ImportNode& from);
  Result<std::string> FromService(const ImportNode& from, const std::string& var_where);
  Status ReadRoutes(const ImportNode& list, ServiceConfig& service);
  Status ReadHeaders(const ImportNode& list, ServiceConfig& service);
  Status ReadBuildFilter(const ImportNode& filter, ServiceConfig& service);

  std::string Key(const ServiceConfig& s, const std::string& field) const {
    return "services." + s.name + "." + field;
  }

  FieldReader fields_;
  ProjectConfig& config_;
  // Names as the file writes them -> sanitised names, for references between entries.
  std::map<std::string, std::string> service_names_;  // includes keyvalue/redis
  std::map<std::string, std::string> service_types_;  // raw name -> render type
  std::map<std::string, std::string> database_names_;
  std::map<std::string, std::vector<std::string>> group_keys_;
  std::map<std::string, Declared> declared_;
};

Status RenderReader::DeclareName(const std::string& name, const std::string& kind,
                                 const std::string& where) {
  auto [it, inserted] = declared_.emplace(name, Declared{kind, where});
  if (!inserted) {
    return fields_.Error(where, "the name " + QuoteForMessage(name) + " is already used by the " +
                                    it->second.kind + " at " + it->second.where +
                                    " (names are shared by services and databases)");
  }
  return Status::Ok();
}

// Services may reference databases, groups and other services declared anywhere in the
// file, so names are read first.
Status RenderReader::CollectNames(const ImportNode& root) {
  if (const ImportNode* services = root.Find("services")) {
    RETURN_IF_ERROR(fields_.ExpectSequence(*services, "services"));
    for (const auto& s : services->items) {
      RETURN_IF_ERROR(fields_.ExpectMap(s, "services[]"));
      const ImportNode* name = s.Find("name");
      if (name == nullptr) return fields_.Error(s.where, "a service needs a \"name\"");
      const ImportNode* type = s.Find("type");
      if (type == nullptr) {
        return fields_.Error(s.where,
                             "service needs a \"type\" (web, worker, cron, pserv or "
                             "keyvalue)");
      }
      ASSIGN_OR_RETURN(std::string raw, fields_.String(*name, "name"));
      ASSIGN_OR_RETURN(std::string t, fields_.String(*type, "type"));
      ASSIGN_OR_RETURN(std::string clean, fields_.Name(*name, "service name"));
      RETURN_IF_ERROR(DeclareName(clean, "service", name->where));
      service_names_[raw] = clean;
      service_types_[raw] = t;
    }
  }
  if (const ImportNode* databases = root.Find("databases")) {
    RETURN_IF_ERROR(fields_.ExpectSequence(*databases, "databases"));
    for (const auto& d : databases->items) {
      RETURN_IF_ERROR(fields_.ExpectMap(d, "databases[]"));
      const ImportNode* name = d.Find("name");
      if (name == nullptr) return fields_.Error(d.where, "a database needs a \"name\"");
      ASSIGN_OR_RETURN(std::string raw, fields_.String(*name, "name"));
      ASSIGN_OR_RETURN(std::string clean, fields_.Name(*name, "database name"));
      RETURN_IF_ERROR(DeclareName(clean, "database", name->where));
      database_names_[raw] = clean;
    }
  }
  return Status::Ok();
}

Status RenderReader::Read(const ImportNode& root) {
  RETURN_IF_ERROR(fields_.ExpectMap(root, "the top level"));
  RETURN_IF_ERROR(CollectNames(root));
  const ImportNode* services = nullptr;
  for (const auto& m : root.members) {
    if (m.key == "services") {
      services = &m.value;
    } else if (m.key == "databases") {
      for (const auto& d : m.value.items) RETURN_IF_ERROR(ReadDatabase(d));
    } else if (m.key == "envVarGroups") {
      RETURN_IF_ERROR(fields_.ExpectSequence(m.value, "envVarGroups"));
      for (const auto& g : m.value.items) RETURN_IF_ERROR(ReadGroup(g));
    } else if (m.key == "version") {
      // The Blueprint format's version; there is only one.
    } else {
      // previews, previewsEnabled, previewsExpireAfterDays, projects, ungrouped ...
      fields_.Unsupported(m, m.key);
    }
  }
  if (services == nullptr || services->items.empty()) {
    return fields_.Error(root.where,
                         "render.yaml declares no services (expected a \"services\" "
                         "list with at least one web service)");
  }
  // Groups are read before services so fromGroup finds them wherever they are written.
  for (const auto& s : services->items) RETURN_IF_ERROR(ReadService(s));
  if (config_.services.empty()) {
    return fields_.Error(services->where,
                         "no service in render.yaml can run here: add a web service (docker "
                         "and image services need a container engine; databases and Key Value "
                         "instances are add-ons)");
  }
  return Status::Ok();
}

Status RenderReader::ReadDatabase(const ImportNode& db) {
  const ImportNode* name = db.Find("name");
  AddonConfig addon;
  addon.kind = "postgres";
  addon.name = database_names_.at(name->text);
  for (const auto& m : db.members) {
    if (m.key == "name") continue;
    // databaseName, user, plan, region, postgresMajorVersion, ipAllowList, diskSizeGB,
    // readReplicas, highAvailability: the add-on is a local PostgreSQL database.
    fields_.Unsupported(m, "databases." + m.key);
  }
  fields_.Origin("addons." + addon.name, *name);
  config_.addons.push_back(std::move(addon));
  return Status::Ok();
}

Status RenderReader::ReadGroup(const ImportNode& group) {
  RETURN_IF_ERROR(fields_.ExpectMap(group, "envVarGroups[]"));
  const ImportNode* name = group.Find("name");
  if (name == nullptr) return fields_.Error(group.where, "an environment group needs a \"name\"");
  ASSIGN_OR_RETURN(std::string group_name, fields_.String(*name, "name"));
  if (group_keys_.count(group_name) != 0) {
    return fields_.Error(name->where,
                         "environment group " + QuoteForMessage(group_name) + " is declared twice");
  }
  std::vector<std::string>& keys = group_keys_[group_name];
  for (const auto& m : group.members) {
    if (m.key == "name") continue;
    if (m.key != "envVars") {
      fields_.Unsupported(m, "envVarGroups." + m.key);
      continue;
    }
    RETURN_IF_ERROR(fields_.ExpectSequence(m.value, "envVars"));
    for (const auto& item : m.value.items) {
      RETURN_IF_ERROR(fields_.ExpectMap(item, "envVars[]"));
      const ImportNode* key = item.Find("key");
      if (key == nullptr)
        return fields_.Error(item.where, "an environment variable needs a \"key\"");
      ASSIGN_OR_RETURN(std::string k, fields_.String(*key, "key"));
      RETURN_IF_ERROR(fields_.VariableName(k, key->where));
      std::string value;
      bool has_value = false;
      for (const auto& f : item.members) {
        if (f.key == "key") continue;
        if (f.key == "value") {
          ASSIGN_OR_RETURN(value, fields_.String(f.value, "value"));
          has_value = true;
          fields_.Origin("shared." + k, f.value);
        } else if (f.key == "generateValue") {
          ASSIGN_OR_RETURN(bool generate, fields_.Bool(f.value, "generateValue"));
          if (generate) {
            value = "${{ secret(32) }}";
            has_value = true;
            fields_.Origin("shared." + k, f.value);
          }
        } else {
          // sync: false asks for a value the user enters; a shared variable has no such
          // check, so it is set with `slipway variables set --shared`.
          fields_.Unsupported(f, "envVarGroups.envVars." + f.key,
                              f.key == "sync" ? "set " + k + " with `slipway variables set`" : "");
        }
      }
      auto previous = config_.shared_variables.find(k);
      if (has_value && previous != config_.shared_variables.end() && previous->second != value) {
        fields_.Warn(key->where, "shared variable " + k + " is set by two groups; the value from " +
                                     QuoteForMessage(group_name) + " is kept");
      }
      if (has_value) config_.shared_variables[k] = value;
      keys.push_back(k);
    }
  }
  return Status::Ok();
}

Status RenderReader::ReadService(const ImportNode& node) {
  const ImportNode& name_node = *node.Find("name");
  const std::string name = service_names_.at(name_node.text);
  const ImportNode& type_node = *node.Find("type");
  const std::string type = type_node.text;

  if (type == "keyvalue" || type == "redis") {
    for (const auto& m : node.members) {
      if (m.key == "name" || m.key == "type") continue;
      fields_.Unsupported(m, m.key, "a Key Value instance is a local Redis add-on");
    }
    AddonConfig addon;
    addon.kind = "redis";
    addon.name = name;
    config_.addons.push_back(std::move(addon));
    fields_.Origin("addons." + name, name_node);
    return Status::Ok();
  }

  ServiceConfig service;
  service.name = name;
  if (type == "web" || type == "pserv") {
    service.type = "web";
    if (type == "pserv") {
      fields_.Warn(type_node.where, "private service " + QuoteForMessage(name) +
                                        " is deployed as a web service: it gets a public URL too");
    }
  } else if (type == "worker") {
    service.type = "worker";
  } else if (type == "cron") {
    service.type = "cron";
    if (node.Find("schedule") == nullptr) {
      return fields_.Error(node.where,
                           "cron service " + QuoteForMessage(name) + " needs a \"schedule\"");
    }
  } else {
    return fields_.Error(type_node.where,
                         "\"type\" must be one of \"web\", \"worker\", \"cron\", \"pserv\", "
                         "\"keyvalue\" (got " +
                             QuoteForMessage(type) + ")");
  }
  fields_.Origin(Key(service, "type"), type_node);

  bool skip = false;
  for (const auto& m : node.members) RETURN_IF_ERROR(ReadServiceField(m, service, skip));
  if (skip) {
    const std::string prefix = "services." + name + ".";
    std::erase_if(config_.origins, [&](const auto& kv) { return kv.first.rfind(prefix, 0) == 0; });
    return Status::Ok();
  }
  config_.services.push_back(std::move(service));
  return Status::Ok();
}

Status RenderReader::ReadServiceField(const ImportNode::Member& m, ServiceConfig& service,
                                      bool& skip) {
  const ImportNode& v = m.value;
  const std::string& k = m.key;
  if (k == "name" || k == "type") return Status::Ok();
  if (k == "runtime" || k == "env") {
    ASSIGN_OR_RETURN(std::string runtime, fields_.String(v, k));
    if (runtime == "python" || runtime == "node" || runtime == "static") {
      service.builder = runtime;
      fields_.Origin(Key(service, "builder"), v);
    } else if (runtime == "docker" || runtime == "image") {
      fields_.Warn(v.where, "service " + QuoteForMessage(service.name) + " is skipped: runtime " +
                                QuoteForMessage(runtime) +
                                " needs a container engine, which Slipway does not run");
      skip = true;
    } else if (runtime == "ruby" || runtime == "go" || runtime == "rust" || runtime == "elixir") {
      fields_.Warn(v.where, "runtime " + QuoteForMessage(runtime) +
                                " has no Slipway builder; the app is built by detection");
    } else {
      return fields_.Error(v.where, QuoteForMessage(k) +
                                        " must be one of \"python\", \"node\", \"static\", "
                                        "\"docker\", \"image\", \"ruby\", \"go\", \"rust\", "
                                        "\"elixir\" (got " +
                                        QuoteForMessage(runtime) + ")");
    }
  } else if (k == "rootDir") {
    ASSIGN_OR_RETURN(service.root_directory, fields_.RelativePath(v, k));
    fields_.Origin(Key(service, "rootDirectory"), v);
  } else if (k == "buildCommand") {
    ASSIGN_OR_RETURN(service.build_command, fields_.Command(v, k));
    fields_.Origin(Key(service, "buildCommand"), v);
  } else if (k == "startCommand") {
    ASSIGN_OR_RETURN(service.start_command, fields_.Command(v, k));
    fields_.Origin(Key(service, "startCommand"), v);
  } else if (k == "preDeployCommand") {
    ASSIGN_OR_RETURN(service.pre_deploy_command, fields_.Command(v, k));
    fields_.Origin(Key(service, "preDeployCommand"), v);
  } else if (k == "healthCheckPath") {
    ASSIGN_OR_RETURN(service.healthcheck_path, fields_.HealthPath(v, k));
    fields_.Origin(Key(service, "healthcheckPath"), v);
  } else if (k == "schedule") {
    ASSIGN_OR_RETURN(service.cron_schedule, fields_.CronSchedule(v, k));
    if (service.type != "cron") {
      fields_.Warn(v.where, "\"schedule\" is only used by cron services; " +
                                QuoteForMessage(service.name) + " is a " + service.type);
      service.cron_schedule.clear();
    } else {
      fields_.Origin(Key(service, "cronSchedule"), v);
    }
  } else if (k == "numInstances") {
    ASSIGN_OR_RETURN(service.num_replicas, fields_.Int(v, k, 1, kMaxReplicas));
    fields_.Origin(Key(service, "numReplicas"), v);
  } else if (k == "maxShutdownDelaySeconds") {
    ASSIGN_OR_RETURN(service.draining_seconds, fields_.Int(v, k, 1, kMaxSeconds));
    fields_.Origin(Key(service, "drainingSeconds"), v);
  } else if (k == "staticPublishPath") {
    ASSIGN_OR_RETURN(service.static_directory, fields_.RelativePath(v, k));
    fields_.Origin(Key(service, "staticDirectory"), v);
  } else if (k == "envVars") {
    RETURN_IF_ERROR(ReadEnvVars(v, service));
  } else if (k == "routes") {
    RETURN_IF_ERROR(ReadRoutes(v, service));
  } else if (k == "headers") {
    RETURN_IF_ERROR(ReadHeaders(v, service));
  } else if (k == "buildFilter") {
    RETURN_IF_ERROR(ReadBuildFilter(v, service));
  } else if (PlatformOnlyServiceFields().count(k) != 0) {
    fields_.Unsupported(m, k);
  } else {
    fields_.Unsupported(m, k, "not a field Slipway knows in a Render service",
                        {"type", "name", "runtime", "env", "rootDir", "buildCommand",
                         "startCommand", "preDeployCommand", "healthCheckPath", "schedule",
                         "numInstances", "maxShutdownDelaySeconds", "staticPublishPath", "envVars",
                         "routes", "headers", "buildFilter"});
  }
  return Status::Ok();
}

Status RenderReader::ReadEnvVars(const ImportNode& list, ServiceConfig& service) {
  RETURN_IF_ERROR(fields_.ExpectSequence(list, "envVars"));
  for (const auto& item : list.items) RETURN_IF_ERROR(ReadEnvVar(item, service));
  return Status::Ok();
}

Status RenderReader::ReadEnvVar(const ImportNode& item, ServiceConfig& service) {
  RETURN_IF_ERROR(fields_.ExpectMap(item, "envVars[]"));
  if (const ImportNode* group = item.Find("fromGroup")) {
    ASSIGN_OR_RETURN(std::string g, fields_.String(*group, "fromGroup"));
    auto it = group_keys_.find(g);
    if (it == group_keys_.end()) {
      return fields_.Error(group->where,
                           "no environment group named " + QuoteForMessage(g) + " in envVarGroups");
    }
    for (const std::string& key : it->second) {
      service.variables[key] = Reference("shared", key);
      fields_.Origin(Key(service, "variables." + key), *group);
    }
    return Status::Ok();
  }
  const ImportNode* key_node = item.Find("key");
  if (key_node == nullptr) {
    return fields_.Error(item.where, "an environment variable needs a \"key\" (or \"fromGroup\")");
  }
  ASSIGN_OR_RETURN(std::string key, fields_.String(*key_node, "key"));
  RETURN_IF_ERROR(fields_.VariableName(key, key_node->where));
  if (key == "PORT") {
    fields_.Warn(key_node->where, "PORT is set by Slipway for each replica; this value is ignored");
    return Status::Ok();
  }
  const std::string origin_key = Key(service, "variables." + key);
  int sources = 0;
  for (const auto& f : item.members) {
    const ImportNode& v = f.value;
    if (f.key == "key") continue;
    ++sources;
    if (f.key == "value") {
      ASSIGN_OR_RETURN(service.variables[key], fields_.String(v, "value"));
    } else if (f.key == "generateValue") {
      ASSIGN_OR_RETURN(bool generate, fields_.Bool(v, "generateValue"));
      if (!generate) continue;
      service.variables[key] = "${{ secret(32) }}";
    } else if (f.key == "sync") {
      ASSIGN_OR_RETURN(bool sync, fields_.Bool(v, "sync"));
      if (sync) continue;
      service.required_variables.push_back(key);
      fields_.Origin(Key(service, "requiredVariables." + key), v);
      continue;
    } else if (f.key == "fromDatabase") {
      ASSIGN_OR_RETURN(service.variables[key], FromDatabase(v));
    } else if (f.key == "fromService") {
      ASSIGN_OR_RETURN(std::string ref, FromService(v, key_node->where));
      if (ref.empty()) continue;
      service.variables[key] = ref;
    } else {
      // previewValue and anything newer
      fields_.Unsupported(f, "envVars." + f.key);
      --sources;
      continue;
    }
    fields_.Origin(origin_key, v);
  }
  if (sources == 0) {
    return fields_.Error(item.where, "environment variable " + key +
                                         " needs \"value\", \"generateValue\", \"sync\", "
                                         "\"fromDatabase\" or \"fromService\"");
  }
  return Status::Ok();
}

Result<std::string> RenderReader::FromDatabase(const ImportNode& from) {
  RETURN_IF_ERROR(fields_.ExpectMap(from, "fromDatabase"));
  const ImportNode* name = from.Find("name");
  const ImportNode* property = from.Find("property");
  if (name == nullptr || property == nullptr) {
    return fields_.Error(from.where, "\"fromDatabase\" needs \"name\" and \"property\"");
  }
  ASSIGN_OR_RETURN(std::string db, fields_.String(*name, "name"));
  auto it = database_names_.find(db);
  if (it == database_names_.end()) {
    return fields_.Error(name->where, "no database named " + QuoteForMessage(db) + " in databases");
  }
  static const std::map<std::string, std::string> kProperties = {
      {"connectionString", "DATABASE_URL"},
      {"host", "PGHOST"},
      {"port", "PGPORT"},
      {"user", "PGUSER"},
      {"password", "PGPASSWORD"},
      {"database", "PGDATABASE"}};
  ASSIGN_OR_RETURN(std::string p, fields_.String(*property, "property"));
  auto prop = kProperties.find(p);
  if (prop == kProperties.end()) {
    return fields_.Error(property->where,
                         "\"property\" must be one of \"connectionString\", \"host\", \"port\", "
                         "\"user\", \"password\", \"database\" (got " +
                             QuoteForMessage(p) + ")");
  }
  return Reference(it->second, prop->second);
}

// "" (with a warning) when the reference has no Slipway equivalent.
Result<std::string> RenderReader::FromService(const ImportNode& from,
                                              const std::string& var_where) {
  RETURN_IF_ERROR(fields_.ExpectMap(from, "fromService"));
  const ImportNode* name = from.Find("name");
  if (name == nullptr) return fields_.Error(from.where, "\"fromService\" needs a \"name\"");
  ASSIGN_OR_RETURN(std::string raw, fields_.String(*name, "name"));
  auto it = service_names_.find(raw);
  if (it == service_names_.end()) {
    return fields_.Error(name->where, "no service named " + QuoteForMessage(raw) + " in services");
  }
  const std::string& svc = it->second;
  const std::string& svc_type = service_types_[raw];
  const bool keyvalue = svc_type == "keyvalue" || svc_type == "redis";
  if (const ImportNode* env_key = from.Find("envVarKey")) {
    ASSIGN_OR_RETURN(std::string k, fields_.String(*env_key, "envVarKey"));
    RETURN_IF_ERROR(fields_.VariableName(k, env_key->where));
    return Reference(svc, k);
  }
  const ImportNode* property = from.Find("property");
  if (property == nullptr) {
    return fields_.Error(from.where, "\"fromService\" needs \"property\" or \"envVarKey\"");
  }
  ASSIGN_OR_RETURN(std::string p, fields_.String(*property, "property"));
  if (keyvalue) {
    if (p == "connectionString") return Reference(svc, "REDIS_URL");
    fields_.Warn(property->where, "property " + QuoteForMessage(p) + " of Key Value " +
                                      QuoteForMessage(svc) +
                                      " is not offered (use \"connectionString\"); the variable "
                                      "at " +
                                      var_where + " is not set");
    return std::string();
  }
  if (p == "host") return Reference(svc, "SLIPWAY_PRIVATE_DOMAIN");
  if (p == "port") return Reference(svc, "SLIPWAY_PRIVATE_PORT");
  if (p == "hostport") {
    return Reference(svc, "SLIPWAY_PRIVATE_DOMAIN") + ":" + Reference(svc, "SLIPWAY_PRIVATE_PORT");
  }
  return fields_.Error(property->where,
                       "\"property\" of a service must be one of \"host\", \"port\", "
                       "\"hostport\" (\"connectionString\" for a Key Value instance) (got " +
                           QuoteForMessage(p) + ")");
}

// Render's paths use "*" for "anything" (and ":name" as Slipway does): "/old/*" becomes
// the route pattern "/old/(.*)", and each "*" of the destination the group in the same
// position ("/new/*" -> "/new/$1"). Characters that are special in route patterns are
// taken literally.
std::string RenderSource(std::string_view source) {
  std::string out;
  for (char c : source) {
    if (c == '*') {
      out += "(.*)";
    } else if (std::string_view("()+?{}\\").find(c) != std::string_view::npos) {
      out.push_back('\\');
      out.push_back(c);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string RenderDestination(std::string_view destination) {
  std::string out;
  int group = 0;
  for (char c : destination) {
    if (c == '*') {
      out.push_back('$');
      out += std::to_string(++group);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Status RenderReader::ReadRoutes(const ImportNode& list, ServiceConfig& service) {
  RETURN_IF_ERROR(fields_.ExpectSequence(list, "routes"));
  for (const auto& r : list.items) {
    RETURN_IF_ERROR(fields_.ExpectMap(r, "routes[]"));
    const ImportNode* type = r.Find("type");
    const ImportNode* source = r.Find("source");
    const ImportNode* destination = r.Find("destination");
    if (type == nullptr || source == nullptr || destination == nullptr) {
      return fields_.Error(r.where, "a route needs \"type\", \"source\" and \"destination\"");
    }
    RouteRule rule;
    ASSIGN_OR_RETURN(std::string t, fields_.String(*type, "type"));
    ASSIGN_OR_RETURN(rule.source, fields_.String(*source, "source"));
    ASSIGN_OR_RETURN(rule.destination, fields_.String(*destination, "destination"));
    rule.source = RenderSource(rule.source);
    rule.destination = RenderDestination(rule.destination);
    if (t == "rewrite" || t == "redirect") {
      RETURN_IF_ERROR(CheckRouteRule(t + "s", rule.source, source->where, &rule.destination,
                                     destination->where));
    }
    if (t == "rewrite") {
      service.rewrites.push_back(std::move(rule));
    } else if (t == "redirect") {
      rule.status = 301;  // Render's redirects are permanent
      service.redirects.push_back(std::move(rule));
    } else {
      return fields_.Error(type->where, "route \"type\" must be \"rewrite\" or \"redirect\" (got " +
                                            QuoteForMessage(t) + ")");
    }
    for (const auto& m : r.members) {
      if (m.key != "type" && m.key != "source" && m.key != "destination") {
        fields_.Unsupported(m, "routes." + m.key);
      }
    }
  }
  fields_.Origin(Key(service, "routes"), list);
  return Status::Ok();
}

Status RenderReader::ReadHeaders(const ImportNode& list, ServiceConfig& service) {
  RETURN_IF_ERROR(fields_.ExpectSequence(list, "headers"));
  for (const auto& h : list.items) {
    RETURN_IF_ERROR(fields_.ExpectMap(h, "headers[]"));
    const ImportNode* path = h.Find("path");
    const ImportNode* name = h.Find("name");
    const ImportNode* value = h.Find("value");
    if (path == nullptr || name == nullptr || value == nullptr) {
      return fields_.Error(h.where, "a header rule needs \"path\", \"name\" and \"value\"");
    }
    ASSIGN_OR_RETURN(std::string p, fields_.String(*path, "path"));
    ASSIGN_OR_RETURN(std::string n, fields_.String(*name, "name"));
    ASSIGN_OR_RETURN(std::string v, fields_.String(*value, "value"));
    p = RenderSource(p);
    RETURN_IF_ERROR(CheckRouteRule("headers", p, path->where, nullptr, ""));
    if (Status st = CheckHeaderName(n, name->where); !st.ok()) {
      fields_.Warn(name->where, st.message().substr(name->where.size() + 2) + "; it is ignored");
      continue;
    }
    if (service.headers.empty() || service.headers.back().source != p) {
      service.headers.push_back({p, {}});
    }
    service.headers.back().headers.emplace_back(n, v);
  }
  fields_.Origin(Key(service, "headers"), list);
  return Status::Ok();
}

Status RenderReader::ReadBuildFilter(const ImportNode& filter, ServiceConfig& service) {
  RETURN_IF_ERROR(fields_.ExpectMap(filter, "buildFilter"));
  for (const auto& m : filter.members) {
    if (m.key == "paths") {
      ASSIGN_OR_RETURN(auto paths, fields_.Strings(m.value, "buildFilter.paths"));
      for (auto& p : paths) service.watch_patterns.push_back(std::move(p));
    } else if (m.key == "ignoredPaths") {
      ASSIGN_OR_RETURN(auto paths, fields_.Strings(m.value, "buildFilter.ignoredPaths"));
      for (auto& p : paths) service.watch_patterns.push_back("!" + p);
    } else {
      fields_.Unsupported(m, "buildFilter." + m.key);
    }
  }
  // Render: only ignoredPaths means "everything but these".
  if (!service.watch_patterns.empty() &&
      std::all_of(service.watch_patterns.begin(), service.watch_patterns.end(),
                  [](const std::string& p) { return p.rfind('!', 0) == 0; })) {
    service.watch_patterns.insert(service.watch_patterns.begin(), "**");
  }
  fields_.Origin(Key(service, "watchPatterns"), filter);
  return Status::Ok();
}

}  // namespace

Result<ProjectConfig> ImportRender(std::string_view text, const std::string& filename) {
  ASSIGN_OR_RETURN(YAML::Node yaml, LoadYaml(text, filename));
  ASSIGN_OR_RETURN(ImportNode root, ImportTreeFromYaml(yaml, filename));
  if (root.kind == ImportNode::Kind::kNull) {
    return InvalidArgument(filename + ":1:1: the file is empty (expected a \"services\" list)");
  }
  ProjectConfig config;
  RenderReader reader(filename, config);
  RETURN_IF_ERROR(reader.Read(root));
  return config;
}

}  // namespace slipway
