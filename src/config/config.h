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
#include <optional>
#include <set>
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

// Static-site routing rules, as vercel.json / render.yaml declare them; the edge applies
// them to static services (docs/static.md). Sources are route patterns
// (common/route_pattern.h), checked when the config is read.
struct RouteRule {
  std::string source;  // path pattern: "/api/:path*", "/old", "/(.*)"
  // A path of the site, an absolute URL, or another service's URL followed by a path:
  // "${{ api.SLIPWAY_PRIVATE_URL }}/api/:path*" (resolved when the route is published).
  std::string destination;
  int status = 0;  // redirects: 301, 302, 303, 307, 308 (0: 308 when permanent, else 307)
};
struct HeaderRule {
  std::string source;
  std::vector<std::pair<std::string, std::string>> headers;  // in file order
};

struct ServiceConfig {
  std::string name = "web";
  // "web" (listens on $PORT, routed), "worker" (no port, no route; started once it keeps
  // running), "cron" (no replicas: the start command runs once per `cron_schedule` slot).
  std::string type = "web";
  std::string cron_schedule;         // 5-field cron expression in UTC, for type "cron"
  std::string root_directory = ".";  // relative to the project directory; no ".." escapes
  std::string builder;               // "" (detect), "python", "node", "static", "command"
  std::string build_command;         // shell command run after the builder's own steps
  std::string start_command;         // shell command; "" lets the builder decide
  std::string static_directory;      // static sites: served directory, relative to root
  // The path the service is routed under at its hosts: "" (all of them) or "/shop" (no
  // trailing slash). A static site's files are then its root ("/shop/a.css" is a.css, as
  // Vite's `base: '/shop/'` expects); an app gets the path unchanged (Next.js basePath).
  std::string base_path;
  std::string healthcheck_path;  // "" : the port accepting connections is healthy
  int healthcheck_timeout = 60;  // seconds
  int num_replicas = 1;
  // Variables declared in the config file. Values may hold references resolved at
  // deploy: ${{ shared.KEY }}, ${{ other-service.KEY }}, ${{ postgres.DATABASE_URL }},
  // ${{ secret(32) }} (generated once, then kept). Variables set with
  // `slipway variables set` win over these.
  std::map<std::string, std::string> variables;
  // Variables the config says must be set by the user (render.yaml `sync: false`,
  // app.json `required: true` without a value); a deploy without them fails naming them.
  std::vector<std::string> required_variables;
  // Gitignore-style patterns relative to the project root; a change outside them does
  // not redeploy the service. Empty: any change under root_directory does.
  std::vector<std::string> watch_patterns;
  // Static routing (see RouteRule).
  std::vector<RouteRule> rewrites;
  std::vector<RouteRule> redirects;
  std::vector<HeaderRule> headers;
  bool clean_urls = false;
  std::string trailing_slash;    // "" (leave), "add", "remove"
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

// A database the project declares (slipway.toml [addons.NAME], render.yaml databases,
// docker-compose postgres/redis images, app.json addons), provisioned by the add-ons
// subsystem (addons/addons.h) at deploy. The backup settings are slipway.toml's only
// (importers leave the defaults) and apply to postgres add-ons; a redis one with either
// set is an error at its place.
struct AddonConfig {
  std::string kind;  // "postgres" or "redis"
  std::string name;  // referenced as ${{ <name>.DATABASE_URL }} / ${{ <name>.REDIS_URL }}
  std::string backup_schedule;  // cron expression (UTC); "": kDefaultBackupSchedule
  int backup_retention = 0;     // scheduled backups kept, 1-365; 0: kDefaultBackupRetention
};

// The add-on manager's defaults for the settings above, as `slipway config show --all`
// shows them.
inline constexpr const char* kDefaultBackupSchedule = "0 3 * * *";  // daily, 03:00 UTC
inline constexpr int kDefaultBackupRetention = 7;

struct ProjectConfig {
  std::string name;  // the project's name (validated DNS label)
  // The files the config was read from, the main one first: "slipway.toml",
  // "railway.json", "render.yaml", "vercel.json", "app.json", "docker-compose.yml",
  // "Procfile", or "detected" when there is none.
  std::string source;
  std::vector<std::string> sources;
  std::vector<ServiceConfig> services;  // at least one, names unique
  std::vector<AddonConfig> addons;
  std::map<std::string, std::string> shared_variables;  // ${{ shared.KEY }}
  // Variables of the config whose values are secrets (read from a .env file): service ->
  // names. They are stored encrypted and masked like `slipway variables set` secrets.
  std::map<std::string, std::set<std::string>> secret_variables;
  // Where each value came from, for `slipway config show`: key "services.api.startCommand"
  // (the slipway.toml key path; "project", "shared.KEY", "addons.NAME",
  // "addons.NAME.backupSchedule") -> "railway.json:7:5"
  // or "railway.json:7" or "default". A value not listed here is a default.
  std::map<std::string, std::string> origins;
  // A field Slipway does not support, or supports later, is named here, never dropped:
  // "render.yaml:12:5: \"plan\" is not supported and is ignored".
  std::vector<std::string> warnings;
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

// A routing rule's destination that starts with another service's URL, as written in a
// config: "${{ api.SLIPWAY_PRIVATE_URL }}/api/:path*" -> {"api", "SLIPWAY_PRIVATE_URL",
// "/api/:path*"}. Only SLIPWAY_PRIVATE_URL and SLIPWAY_PUBLIC_URL may be referred to;
// nullopt for a destination without a reference at its start (or with another one).
struct ServiceUrlReference {
  std::string service;
  std::string variable;
  std::string rest;
};
std::optional<ServiceUrlReference> ParseServiceUrlReference(std::string_view destination);

// JSON form of a ServiceConfig (stored with each deployment) and back.
std::string ServiceConfigToJson(const ServiceConfig& config);
Result<ServiceConfig> ServiceConfigFromJson(const std::string& json);

}  // namespace slipway
