#include "cli/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "build/builder.h"
#include "cli/api_client.h"
#include "cli/cli_util.h"
#include "cli/config_command.h"
#include "cli/cron_command.h"
#include "cli/deploy_progress.h"
#include "cli/edge_command.h"
#include "cli/git_command.h"
#include "cli/server_command.h"
#include "common/archive.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/names.h"
#include "common/run_stream.h"
#include "config/config.h"
#include "deploy/variables.h"

namespace slipway {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxUploadBytes = 512ull << 20;

// ---- up ---------------------------------------------------------------------

struct UpOptions {
  std::string dir = ".";
  std::string service;
  std::string env = "production";
  bool detach = false;
};

int Up(const UpOptions& opts) {
  std::string dir = AbsolutePath(opts.dir);
  if (!IsDirectory(dir)) return PrintError(NotFound(opts.dir + " is not a directory"));
  auto config = LoadProjectConfig(dir, BaseName(dir));
  if (!config.ok()) return PrintError(config.status());
  for (const auto& w : config->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  bool found_service = opts.service.empty();
  for (const auto& svc : config->services) {
    if (!opts.service.empty() && svc.name != opts.service) continue;
    found_service = true;
    std::string root = AbsolutePath(dir + "/" + svc.root_directory);
    if (!IsDirectory(root)) {
      return PrintError(InvalidArgument("service \"" + svc.name + "\": rootDirectory \"" +
                                        svc.root_directory + "\" is not a directory in " + dir));
    }
    auto plan = DetectBuildPlan(root, svc);
    if (!plan.ok()) return PrintError(plan.status());
  }
  if (!found_service) {
    return PrintError(NotFound("no service named \"" + opts.service + "\" in " + dir));
  }
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto packed = PackDirectory(dir, DefaultArchiveExcludes(), kMaxUploadBytes);
  if (!packed.ok()) return PrintError(packed.status());
  std::printf("==> Uploading %s (%.1f KiB) to %s\n", dir.c_str(), packed->size() / 1024.0,
              client->url().c_str());
  std::fflush(stdout);
  std::string target =
      "/v1/deploy?project=" + UrlEncode(config->name) + "&env=" + UrlEncode(opts.env);
  if (!opts.service.empty()) target += "&service=" + UrlEncode(opts.service);
  auto accepted = client->Post(target, *packed, "application/gzip", 600'000);
  if (!accepted.ok()) return PrintError(accepted.status());
  for (const auto& w : (*accepted)["warnings"]) {
    // The config's own warnings were printed above, when it was read here.
    const std::string text = w.get<std::string>();
    if (std::find(config->warnings.begin(), config->warnings.end(), text) !=
        config->warnings.end()) {
      continue;
    }
    std::fprintf(stderr, "warning: %s\n", text.c_str());
  }
  for (const auto& line : accepted->value("provisioned", json::array())) {
    std::printf("==> %s\n", line.get<std::string>().c_str());
  }
  for (const auto& name : accepted->value("unchanged", json::array())) {
    std::printf("%s: unchanged (watchPatterns), not redeployed\n", name.get<std::string>().c_str());
  }
  const json& deployments = (*accepted)["deployments"];
  if (opts.detach) {
    for (const auto& d : deployments) {
      std::printf("%s: deployment %lld queued; follow it with `slipway deployments %s`; URL %s\n",
                  d["service"].get<std::string>().c_str(), d["id"].get<long long>(),
                  d["service"].get<std::string>().c_str(), d["url"].get<std::string>().c_str());
    }
    return 0;
  }
  auto failures = FollowDeployments(*client, deployments);
  if (!failures.ok()) return PrintError(failures.status());
  return *failures == 0 ? 0 : 1;
}

// ---- status / deployments / logs -------------------------------------------

void PrintServices(const std::string& project, const json& services) {
  std::printf("Project %s\n", project.c_str());
  std::vector<std::vector<std::string>> rows = {
      {"SERVICE", "DEPLOYMENT", "STATUS", "REPLICAS", "HEALTH", "URL"}};
  std::vector<std::string> notes;
  for (const auto& s : services) {
    long long active = s.value("active_deployment_id", 0LL);
    int running = 0, total = 0;
    for (const auto& r : s["replicas"]) {
      total++;
      if (r.value("state", "") == "running") running++;
    }
    std::string kind = s.value("kind", "");
    const std::string type = s.value("type", "web");
    std::string replicas =
        kind == "static" ? "static" : std::to_string(running) + "/" + std::to_string(total);
    std::string where = s.value("url", "");
    if (type == "worker") where = "(worker)";
    if (type == "cron") {
      replicas = "cron";
      where = s.value("schedule", "") + " UTC, next " + FormatTime(s.value("next_run", 0LL));
    }
    rows.push_back({s.value("name", ""), active ? "#" + std::to_string(active) : "-",
                    active ? s.value("active_status", "") : "NOT DEPLOYED", replicas,
                    s.value("health", ""), where});
    if (!s.value("notice", "").empty()) {
      notes.push_back("  " + s.value("name", "") + ": " + s.value("notice", ""));
    }
    long long latest = s.value("latest_deployment_id", 0LL);
    if (latest != 0 && latest != active) {
      notes.push_back("  " + s.value("name", "") + ": latest deployment #" +
                      std::to_string(latest) + " is " + s.value("latest_status", ""));
    }
  }
  PrintTable(rows);
  for (const auto& n : notes) std::printf("%s\n", n.c_str());
}

int StatusCommand(const std::string& project_flag, const std::string& env) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  std::string dir = ".";
  bool in_app = !project_flag.empty() || LooksLikeAppDir(dir);
  if (in_app) {
    auto project = ResolveProject(project_flag, dir);
    if (!project.ok()) return PrintError(project.status());
    auto res = client->Get("/v1/projects/" + UrlEncode(*project) + "/status?env=" + UrlEncode(env));
    if (!res.ok()) return PrintError(res.status());
    PrintServices(*project, (*res)["services"]);
    return 0;
  }
  auto res = client->Get("/v1/projects");
  if (!res.ok()) return PrintError(res.status());
  if ((*res)["projects"].empty()) {
    std::printf("No projects yet: run `slipway up` in an app directory.\n");
    return 0;
  }
  bool first = true;
  for (const auto& p : (*res)["projects"]) {
    const std::string name = p["name"];
    for (const auto& e : p.value("environments", json::array())) {
      if (!first) std::printf("\n");
      first = false;
      const std::string env_name = e["name"];
      PrintServices(env_name == "production" ? name : name + " (" + env_name + ")", e["services"]);
    }
  }
  return 0;
}

int DeploymentsCommand(const std::string& project_flag, const std::string& env,
                       const std::string& service, int limit) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(project_flag, ".");
  if (!project.ok()) return PrintError(project.status());
  std::string target = "/v1/projects/" + UrlEncode(*project) +
                       "/deployments?env=" + UrlEncode(env) + "&limit=" + std::to_string(limit);
  if (!service.empty()) target += "&service=" + UrlEncode(service);
  auto res = client->Get(target);
  if (!res.ok()) return PrintError(res.status());
  std::vector<std::vector<std::string>> rows = {
      {"ID", "SERVICE", "STATUS", "CREATED", "SOURCE", "DETAIL"}};
  for (const auto& d : (*res)["deployments"]) {
    std::string status = d.value("status", "");
    if (d.value("active", false) && status == "ACTIVE") status = "ACTIVE *";
    rows.push_back({std::to_string(d.value("id", 0LL)), d.value("service", ""), status,
                    FormatTime(d.value("created_at", 0LL)), d.value("source", ""),
                    FirstLine(d.value("error", ""))});
  }
  if (rows.size() == 1) {
    std::printf("No deployments yet.\n");
    return 0;
  }
  PrintTable(rows);
  return 0;
}

// ---- rollback / scale ------------------------------------------------------

struct RollbackOptions {
  std::string project;
  std::string env = "production";
  std::string service;
  long long to = 0;
};

int RollbackCommand(const RollbackOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  std::string target =
      "/v1/projects/" + UrlEncode(*project) + "/rollback?env=" + UrlEncode(opts.env);
  if (!opts.service.empty()) target += "&service=" + UrlEncode(opts.service);
  json body = json::object();
  if (opts.to != 0) body["to"] = opts.to;
  auto accepted = client->Post(target, body.dump(), "application/json", 60'000);
  if (!accepted.ok()) return PrintError(accepted.status());
  const std::string service = (*accepted)["service"];
  std::printf("==> %s: deployment %lld (%s)\n", service.c_str(), (*accepted)["id"].get<long long>(),
              (*accepted)["source"].get<std::string>().c_str());
  std::fflush(stdout);
  auto done = FollowDeployment(*client, (*accepted)["id"].get<int64_t>(), service);
  if (!done.ok()) return PrintError(done.status());
  if ((*done)["status"] != "ACTIVE") {
    std::fprintf(stderr, "error: %s: rollback deployment %lld %s: %s\n", service.c_str(),
                 (*accepted)["id"].get<long long>(), (*done)["status"].get<std::string>().c_str(),
                 (*done)["error"].get<std::string>().c_str());
    return 1;
  }
  std::printf("%s\n", LiveLine(service, *done).c_str());
  return 0;
}

struct ScaleOptions {
  std::string project;
  std::string env = "production";
  std::string assignment;  // "web=3"
};

int ScaleCommand(const ScaleOptions& opts) {
  auto eq = opts.assignment.find('=');
  int replicas = 0;
  if (eq == std::string::npos || eq == 0 ||
      std::sscanf(opts.assignment.c_str() + eq + 1, "%d", &replicas) != 1) {
    return PrintError(
        InvalidArgument("expected SERVICE=COUNT, like web=3 (got \"" + opts.assignment + "\")"));
  }
  const std::string service = opts.assignment.substr(0, eq);
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  std::string target = "/v1/projects/" + UrlEncode(*project) + "/scale?env=" + UrlEncode(opts.env) +
                       "&service=" + UrlEncode(service);
  auto res = client->Post(target, json{{"replicas", replicas}}.dump(), "application/json", 900'000);
  if (!res.ok()) return PrintError(res.status());
  std::printf("%s now runs %d replica(s)\n", service.c_str(), replicas);
  return 0;
}

struct LogsOptions {
  std::string project;
  std::string env = "production";
  std::string service;
  bool build = false;
  bool follow = false;
  std::string filter;
  int lines = 100;
  long long deployment = 0;
};

volatile std::sig_atomic_t g_interrupted = 0;

int LogsCommand(const LogsOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  std::string base = "/v1/projects/" + UrlEncode(*project) + "/logs?env=" + UrlEncode(opts.env) +
                     "&lines=" + std::to_string(opts.lines);
  if (!opts.service.empty()) base += "&service=" + UrlEncode(opts.service);
  if (opts.build) base += "&build=1";
  if (opts.deployment) base += "&deployment=" + std::to_string(opts.deployment);
  std::string cursor;
  bool first = true;
  std::signal(SIGINT, [](int) { g_interrupted = 1; });
  while (!g_interrupted) {
    std::string target = base;
    if (!first) target += "&cursor=" + UrlEncode(cursor);
    auto res = client->Get(target);
    if (!res.ok()) return PrintError(res.status());
    if (first && !opts.follow && (*res)["lines"].empty()) {
      std::fprintf(stderr, "(no %s log lines yet for deployment %lld)\n",
                   opts.build ? "build" : "runtime", (*res)["deployment_id"].get<long long>());
    }
    for (const auto& line : (*res)["lines"]) {
      const std::string& text = line.get_ref<const std::string&>();
      if (!opts.filter.empty() && text.find(opts.filter) == std::string::npos) continue;
      std::printf("%s\n", text.c_str());
    }
    std::fflush(stdout);
    cursor = (*res)["cursor"];
    first = false;
    if (!opts.follow) break;
    if (opts.build && (*res)["finished"].get<bool>() && (*res)["lines"].empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return 0;
}

struct DomainOptions {
  std::string project;
  std::string env = "production";
  std::string service;
  std::string host;
  std::string cert;
  std::string key;
  bool acme = false;
};

int DomainsAdd(const DomainOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  json body{{"host", opts.host}, {"acme", opts.acme}};
  if (!opts.cert.empty()) body["cert"] = AbsolutePath(opts.cert);
  if (!opts.key.empty()) body["key"] = AbsolutePath(opts.key);
  std::string target =
      "/v1/projects/" + UrlEncode(*project) + "/domains?env=" + UrlEncode(opts.env);
  if (!opts.service.empty()) target += "&service=" + UrlEncode(opts.service);
  auto res = client->Post(target, body.dump(), "application/json", 120'000);
  if (!res.ok()) return PrintError(res.status());
  std::printf("%s now routes to %s/%s\n", (*res)["host"].get<std::string>().c_str(),
              project->c_str(), (*res)["service"].get<std::string>().c_str());
  return 0;
}

int DomainsList(const DomainOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  auto res =
      client->Get("/v1/projects/" + UrlEncode(*project) + "/domains?env=" + UrlEncode(opts.env));
  if (!res.ok()) return PrintError(res.status());
  std::vector<std::vector<std::string>> rows = {{"DOMAIN", "SERVICE", "CERTIFICATE"}};
  for (const auto& d : (*res)["domains"]) {
    std::string cert = d.value("acme", false)        ? "ACME"
                       : d.value("cert", "").empty() ? "local CA"
                                                     : d.value("cert", "");
    rows.push_back({d.value("host", ""), d.value("service", ""), cert});
  }
  if (rows.size() == 1) {
    std::printf("No custom domains: add one with `slipway domains add HOST`.\n");
    return 0;
  }
  PrintTable(rows);
  return 0;
}

int DomainsRemove(const DomainOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto res = client->Delete("/v1/domains/" + UrlEncode(opts.host));
  if (!res.ok()) return PrintError(res.status());
  std::printf("%s removed\n", opts.host.c_str());
  return 0;
}

int CertsCommand() {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto res = client->Get("/v1/certs");
  if (!res.ok()) return PrintError(res.status());
  std::printf("%s\n", (*res)["instructions"].get<std::string>().c_str());
  std::vector<std::vector<std::string>> rows = {{"NAME", "SOURCE", "EXPIRES", "ISSUER"}};
  for (const auto& c : (*res)["certificates"]) {
    rows.push_back({c.value("name", ""), c.value("source", ""),
                    FormatTime(c.value("expires_at", 0LL)), c.value("issuer", "")});
  }
  if (rows.size() > 1) {
    std::printf("\n");
    PrintTable(rows);
  }
  return 0;
}

int MetricsCommand() {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto res = client->Get("/v1/metrics");
  if (!res.ok()) return PrintError(res.status());
  std::vector<std::vector<std::string>> rows = {
      {"ROUTE", "SERVICE", "REQUESTS", "2XX", "4XX", "5XX", "P50", "P95", "P99", "IN", "OUT"}};
  auto ms = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1fms", v);
    return std::string(buf);
  };
  for (const auto& r : (*res)["routes"]) {
    std::string prefix = r.value("path_prefix", "/");
    rows.push_back(
        {r.value("host", "") + (prefix == "/" ? "" : prefix), r.value("service", ""),
         std::to_string(r.value("requests", 0ULL)), std::to_string(r.value("status_2xx", 0ULL)),
         std::to_string(r.value("status_4xx", 0ULL)), std::to_string(r.value("status_5xx", 0ULL)),
         ms(r.value("p50_ms", 0.0)), ms(r.value("p95_ms", 0.0)), ms(r.value("p99_ms", 0.0)),
         std::to_string(r.value("bytes_in", 0ULL)), std::to_string(r.value("bytes_out", 0ULL))});
  }
  if (rows.size() == 1) {
    std::printf("No routes yet: deploy something with `slipway up`.\n");
    return 0;
  }
  PrintTable(rows);
  return 0;
}

// ---- env / run -------------------------------------------------------------

struct EnvOptions {
  std::string project;
  std::string name;
  std::string from;
  bool yes = false;
};

int EnvList(const EnvOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  auto res = client->Get("/v1/projects/" + UrlEncode(*project) + "/environments");
  if (!res.ok()) return PrintError(res.status());
  std::vector<std::vector<std::string>> rows = {{"ENVIRONMENT", "SERVICE", "STATUS", "URL"}};
  for (const auto& e : (*res)["environments"]) {
    const std::string env_name = e["name"];
    if (e["services"].empty()) rows.push_back({env_name, "-", "no services", "-"});
    for (const auto& s : e["services"]) {
      const bool active = s.value("active_deployment_id", 0LL) != 0;
      rows.push_back({env_name, s.value("name", ""),
                      active ? s.value("active_status", "") : "NOT DEPLOYED", s.value("url", "")});
    }
  }
  std::printf("Project %s\n", project->c_str());
  PrintTable(rows);
  for (const auto& e : (*res)["environments"]) {
    const std::string branch = e.value("branch", "");
    if (branch.empty()) continue;
    std::printf("  %s: the preview of git branch %s (deleted with the branch)\n",
                e["name"].get<std::string>().c_str(), branch.c_str());
  }
  return 0;
}

int EnvCreate(const EnvOptions& opts) {
  if (Status st = ValidateName(opts.name, "environment name"); !st.ok()) return PrintError(st);
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  json body{{"name", opts.name}};
  if (!opts.from.empty()) body["from"] = opts.from;
  auto res = client->Post("/v1/projects/" + UrlEncode(*project) + "/environments", body.dump(),
                          "application/json", 60'000);
  if (!res.ok()) return PrintError(res.status());
  std::printf("Environment %s of %s created", opts.name.c_str(), project->c_str());
  if (!opts.from.empty()) {
    std::printf(" with the services of %s (%zu); deploy them with `slipway up --env %s`",
                opts.from.c_str(), (*res)["services"].size(), opts.name.c_str());
  } else {
    std::printf("; deploy to it with `slipway up --env %s`", opts.name.c_str());
  }
  std::printf("\n");
  return 0;
}

int EnvDelete(const EnvOptions& opts) {
  if (opts.name == "production") {
    return PrintError(FailedPrecondition(
        "the production environment cannot be deleted; delete other environments only"));
  }
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  if (!opts.yes) {
    if (!isatty(STDIN_FILENO)) {
      return PrintError(FailedPrecondition(
          "deleting environment " + opts.name + " of " + *project +
          " stops its services and removes their deployments, logs and add-ons (a backup of each "
          "database is kept); pass --yes to confirm"));
    }
    std::printf(
        "Delete environment %s of %s: stop its services and remove their deployments, releases, "
        "logs and add-ons (a backup of each database is kept)? Type its name to confirm: ",
        opts.name.c_str(), project->c_str());
    std::fflush(stdout);
    std::string answer;
    if (!std::getline(std::cin, answer) || answer != opts.name) {
      std::fprintf(stderr, "not deleted\n");
      return 1;
    }
  }
  auto res = client->Delete(
      "/v1/projects/" + UrlEncode(*project) + "/environments/" + UrlEncode(opts.name), 3600 * 1000);
  if (!res.ok()) return PrintError(res.status());
  std::printf("Environment %s of %s deleted\n", opts.name.c_str(), project->c_str());
  return 0;
}

struct OneOffOptions {
  std::string project;
  std::string env = "production";
  std::string service;
  int timeout_seconds = 3600;
  std::vector<std::string> command;  // everything after "--"
};

int RunOneOff(const OneOffOptions& opts) {
  if (opts.command.empty()) {
    return PrintError(
        InvalidArgument("no command: give it after --, like `slipway run web -- python3 manage.py "
                        "migrate`"));
  }
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  std::string target = "/v1/projects/" + UrlEncode(*project) + "/run?env=" + UrlEncode(opts.env);
  if (!opts.service.empty()) target += "&service=" + UrlEncode(opts.service);
  json body{{"argv", opts.command}, {"timeout_seconds", opts.timeout_seconds}};
  RunStreamDecoder decoder;
  Status st = client->PostStream(target, body.dump(), [&](std::string_view data) {
    return decoder.Feed(data, [](std::string_view output) {
      std::fwrite(output.data(), 1, output.size(), stdout);
      std::fflush(stdout);
    });
  });
  if (!st.ok()) return PrintError(st);
  auto code = decoder.Finish();
  if (!code.ok()) return PrintError(code.status());
  return *code;
}

// ---- add-ons and backups ---------------------------------------------------------

struct AddonCommandOptions {
  std::string project;
  std::string env = "production";
  std::string kind;  // add: postgres, redis
  std::string name;  // add: --name; remove: the add-on
  int port = 0;
  bool no_backup = false;
};

struct BackupCommandOptions {
  std::string project;
  std::string env = "production";
  std::string addon;
  long long id = 0;      // restore
  std::string database;  // restore --to
};

std::string AddonsTarget(const std::string& project, const std::string& env,
                         const std::string& what) {
  return "/v1/projects/" + UrlEncode(project) + "/" + what + "?env=" + UrlEncode(env);
}

std::string HumanBytes(long long bytes) {
  char buf[32];
  if (bytes < 1024) {
    std::snprintf(buf, sizeof(buf), "%lld B", bytes);
  } else if (bytes < (1 << 20)) {
    std::snprintf(buf, sizeof(buf), "%.1f KiB", bytes / 1024.0);
  } else if (bytes < (1LL << 30)) {
    std::snprintf(buf, sizeof(buf), "%.1f MiB", bytes / 1048576.0);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f GiB", bytes / 1073741824.0);
  }
  return buf;
}

// "daily at 03:00 UTC" for the default, else the expression itself.
std::string DescribeSchedule(const std::string& cron) {
  return cron == "0 3 * * *" ? "daily at 03:00 UTC (0 3 * * *)" : cron + " (UTC)";
}

int AddCommand(const AddonCommandOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  json body{{"kind", opts.kind}};
  if (!opts.name.empty()) body["name"] = opts.name;
  if (opts.port != 0) body["port"] = opts.port;
  auto res = client->Post(AddonsTarget(*project, opts.env, "addons"), body.dump(),
                          "application/json", 300'000);
  if (!res.ok()) return PrintError(res.status());
  const json& a = *res;
  const std::string name = a.value("name", "");
  const std::string where = *project + " (" + opts.env + ")";
  if (a.value("created", true)) {
    std::printf("Added %s \"%s\" to %s: %s on 127.0.0.1:%d\n", a.value("kind", "").c_str(),
                name.c_str(), where.c_str(), a.value("version", "").c_str(), a.value("port", 0));
  } else {
    std::printf("%s already has %s \"%s\" (%s on 127.0.0.1:%d, %s); nothing changed\n",
                where.c_str(), a.value("kind", "").c_str(), name.c_str(),
                a.value("version", "").c_str(), a.value("port", 0), a.value("state", "").c_str());
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [key, value] : a["variables"].items()) {
    rows.push_back({"  " + key, value.get<std::string>()});
  }
  std::printf("Variables (secrets as ***):\n");
  PrintTable(rows);
  const std::string main_var = a.value("kind", "") == "postgres" ? "DATABASE_URL" : "REDIS_URL";
  std::string alias;  // "cache-2" -> "CACHE_2_URL"
  for (char c : name) alias += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  alias += "_URL";
  std::printf(
      "Every service of %s gets %s automatically. Under another name, or another of these "
      "variables, by reference:\n  slipway variables set %s='${{ %s.%s }}'\n",
      where.c_str(), main_var.c_str(), alias.c_str(), name.c_str(), main_var.c_str());
  if (a.value("kind", "") == "postgres") {
    std::printf("Backups: %s, the newest %d kept; take one now with `slipway backups create`.\n",
                DescribeSchedule(a.value("backup_schedule", "")).c_str(),
                a.value("backup_retention", 0));
  }
  return 0;
}

int AddonsList(const AddonCommandOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  auto res = client->Get(AddonsTarget(*project, opts.env, "addons"));
  if (!res.ok()) return PrintError(res.status());
  std::vector<std::vector<std::string>> rows = {
      {"ID", "NAME", "KIND", "STATE", "PORT", "VERSION", "ERROR"}};
  for (const auto& a : (*res)["addons"]) {
    rows.push_back({std::to_string(a.value("id", 0LL)), a.value("name", ""), a.value("kind", ""),
                    a.value("state", ""), std::to_string(a.value("port", 0)),
                    a.value("version", ""), FirstLine(a.value("error", ""))});
  }
  if (rows.size() == 1) {
    std::printf(
        "No add-ons in %s (%s): add one with `slipway add postgres` or `slipway add redis`.\n",
        project->c_str(), opts.env.c_str());
    return 0;
  }
  PrintTable(rows);
  return 0;
}

int AddonsRemove(const AddonCommandOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  std::string target = "/v1/projects/" + UrlEncode(*project) + "/addons/" + UrlEncode(opts.name) +
                       "?env=" + UrlEncode(opts.env) + (opts.no_backup ? "&backup=0" : "");
  auto res = client->Delete(target, 12 * 3600 * 1000);
  if (!res.ok()) return PrintError(res.status());
  std::printf("Removed add-on \"%s\" of %s (%s): its server is stopped and its data deleted\n",
              opts.name.c_str(), project->c_str(), opts.env.c_str());
  const std::string kept = res->value("backup", "");
  if (!kept.empty()) std::printf("Its last backup is kept: %s\n", kept.c_str());
  return 0;
}

std::string BackupsTarget(const BackupCommandOptions& opts, const std::string& project,
                          const std::string& suffix = "") {
  std::string target =
      "/v1/projects/" + UrlEncode(project) + "/backups" + suffix + "?env=" + UrlEncode(opts.env);
  if (!opts.addon.empty()) target += "&addon=" + UrlEncode(opts.addon);
  return target;
}

int BackupsList(const BackupCommandOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  auto res = client->Get(BackupsTarget(opts, *project));
  if (!res.ok()) return PrintError(res.status());
  std::vector<std::vector<std::string>> rows = {
      {"ID", "ADDON", "STATUS", "TRIGGER", "STARTED", "SIZE", "FILE / ERROR"}};
  for (const auto& b : (*res)["backups"]) {
    const std::string status = b.value("status", "");
    rows.push_back({std::to_string(b.value("id", 0LL)), b.value("addon", ""), status,
                    b.value("trigger", ""), FormatTime(b.value("started_at", 0LL)),
                    status == "COMPLETED" ? HumanBytes(b.value("bytes", 0LL)) : "-",
                    status == "FAILED" ? FirstLine(b.value("error", "")) : b.value("path", "")});
  }
  if (rows.size() == 1) {
    std::printf("No backups yet in %s (%s): take one with `slipway backups create`.\n",
                project->c_str(), opts.env.c_str());
    return 0;
  }
  PrintTable(rows);
  return 0;
}

int BackupsCreate(const BackupCommandOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  auto res =
      client->Post(BackupsTarget(opts, *project), "{}", "application/json", 12 * 3600 * 1000);
  if (!res.ok()) return PrintError(res.status());
  std::printf("Backup %lld of \"%s\" completed: %s (%s, SHA-256 %s)\n", res->value("id", 0LL),
              res->value("addon", "").c_str(), res->value("path", "").c_str(),
              HumanBytes(res->value("bytes", 0LL)).c_str(),
              res->value("sha256", "").substr(0, 16).c_str());
  std::printf("Restore it with `slipway backups restore %lld`.\n", res->value("id", 0LL));
  return 0;
}

int BackupsRestore(const BackupCommandOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  json body = json::object();
  if (!opts.database.empty()) body["database"] = opts.database;
  auto res = client->Post(BackupsTarget(opts, *project, "/" + std::to_string(opts.id) + "/restore"),
                          body.dump(), "application/json", 12 * 3600 * 1000);
  if (!res.ok()) return PrintError(res.status());
  if (res->value("replaced", false)) {
    std::printf(
        "Backup %lld restored into database %s of \"%s\"; what it replaced is kept as a "
        "before-restore backup (slipway backups list)\n",
        opts.id, res->value("database", "").c_str(), res->value("addon", "").c_str());
  } else {
    std::printf(
        "Backup %lld restored into the new database %s of \"%s\" (owned by the "
        "environment's user; connect with DATABASE_URL ending in /%s)\n",
        opts.id, res->value("database", "").c_str(), res->value("addon", "").c_str(),
        res->value("database", "").c_str());
  }
  return 0;
}

std::string ProgramName() { return "slipway"; }

}  // namespace

// ---- variables ----------------------------------------------------------------

struct VariablesOptions {
  std::string project;
  std::string env = "production";
  std::string service;
  bool shared = false;
  bool reveal = false;
  bool plain = false;
  bool deploy = false;
  std::vector<std::string> args;  // set: KEY=VALUE...; unset: KEY...
};

// The API target of a variables command: its service (the flag, else the app directory's
// only service, else the API picks the project's only one) or the shared set.
Result<std::string> VariablesTarget(const VariablesOptions& opts) {
  if (opts.shared && !opts.service.empty()) {
    return InvalidArgument("give either --service or --shared, not both");
  }
  ASSIGN_OR_RETURN(std::string project, ResolveProject(opts.project, "."));
  std::string target =
      "/v1/projects/" + UrlEncode(project) + "/variables?env=" + UrlEncode(opts.env);
  std::string service = opts.service;
  if (!opts.shared && service.empty() && opts.project.empty() && LooksLikeAppDir(".")) {
    ASSIGN_OR_RETURN(ProjectConfig config, LoadProjectConfig(".", BaseName(".")));
    if (config.services.size() > 1) {
      std::string names;
      for (const auto& s : config.services) names += (names.empty() ? "" : ", ") + s.name;
      return InvalidArgument("this project has several services (" + names +
                             "): name one with --service S, or use --shared");
    }
    if (config.services.size() == 1) service = config.services.front().name;
  }
  if (opts.shared) target += "&shared=1";
  if (!service.empty()) target += "&service=" + UrlEncode(service);
  return target;
}

std::string VariablesWhere(const json& answer) {
  std::string service = answer.value("service", "");
  return (service.empty() ? std::string("shared variables") : "service " + service) + " (" +
         answer.value("environment", "") + ")";
}

// Follows the deployments a --deploy started; 0 when all went live.
int FollowVariableDeployments(const ApiClient& client, const json& answer) {
  int rc = 0;
  for (const auto& dep : answer["deployments"]) {
    const std::string service = dep.value("service", "");
    std::printf("==> %s: deployment %lld applies the variables (no build)\n", service.c_str(),
                dep["id"].get<long long>());
    std::fflush(stdout);
    auto done = FollowDeployment(client, dep["id"].get<int64_t>(), service);
    if (!done.ok()) return PrintError(done.status());
    if ((*done)["status"] != "ACTIVE") {
      std::fprintf(stderr, "error: %s: deployment %lld %s: %s\n", service.c_str(),
                   dep["id"].get<long long>(), (*done)["status"].get<std::string>().c_str(),
                   (*done)["error"].get<std::string>().c_str());
      rc = 1;
      continue;
    }
    std::printf("%s\n", LiveLine(service, *done).c_str());
  }
  if (answer["deployments"].empty()) std::printf("no running service to apply them to\n");
  return rc;
}

int VariablesList(const VariablesOptions& opts) {
  auto target = VariablesTarget(opts);
  if (!target.ok()) return PrintError(target.status());
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto answer = client->Get(*target + (opts.reveal ? "&reveal=1" : ""));
  if (!answer.ok()) return PrintError(answer.status());
  std::vector<std::vector<std::string>> rows = {{"NAME", "VALUE", "SOURCE"}};
  for (const auto& v : (*answer)["variables"]) {
    std::string source = v.value("source", "");
    if (v.value("service", "").empty() && !(*answer).value("service", "").empty()) {
      source = "shared, " + source;
    }
    rows.push_back({v.value("name", ""), v.value("value", ""), source});
  }
  if (rows.size() == 1) {
    std::printf("no variables for %s\n", VariablesWhere(*answer).c_str());
    return 0;
  }
  PrintTable(rows);
  return 0;
}

int VariablesSet(const VariablesOptions& opts) {
  json values = json::object();
  for (const auto& arg : opts.args) {
    auto eq = arg.find('=');
    if (eq == std::string::npos) {
      return PrintError(InvalidArgument("expected KEY=VALUE, got \"" + arg +
                                        "\" (to remove a variable: `slipway variables unset " +
                                        arg + "`)"));
    }
    const std::string name = arg.substr(0, eq);
    if (!IsValidVariableName(name)) {
      return PrintError(InvalidArgument(
          "\"" + name +
          "\" is not a variable name: use letters, digits and _, not starting with a digit"));
    }
    values[name] = arg.substr(eq + 1);
  }
  if (values.empty()) return PrintError(InvalidArgument("nothing to set: give KEY=VALUE pairs"));
  auto target = VariablesTarget(opts);
  if (!target.ok()) return PrintError(target.status());
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto answer = client->Put(
      *target, json{{"variables", values}, {"secret", !opts.plain}, {"deploy", opts.deploy}},
      120'000);
  if (!answer.ok()) return PrintError(answer.status());
  std::string names;
  for (const auto& n : (*answer)["names"])
    names += (names.empty() ? "" : ", ") + n.get<std::string>();
  std::printf("set %s for %s%s\n", names.c_str(), VariablesWhere(*answer).c_str(),
              opts.plain ? " (plain)" : " (secret: stored encrypted, shown as ***)");
  if (!opts.deploy) {
    std::printf("they take effect at the next deploy; add --deploy to apply them now\n");
    return 0;
  }
  return FollowVariableDeployments(*client, *answer);
}

int VariablesUnset(const VariablesOptions& opts) {
  if (opts.args.empty()) return PrintError(InvalidArgument("nothing to unset: name the variables"));
  std::string names;
  for (const auto& name : opts.args) {
    if (!IsValidVariableName(name)) {
      return PrintError(InvalidArgument("\"" + name + "\" is not a variable name"));
    }
    names += (names.empty() ? "" : ",") + name;
  }
  auto target = VariablesTarget(opts);
  if (!target.ok()) return PrintError(target.status());
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto answer =
      client->Delete(*target + "&names=" + UrlEncode(names) + (opts.deploy ? "&deploy=1" : ""));
  if (!answer.ok()) return PrintError(answer.status());
  std::printf("unset %s for %s\n", names.c_str(), VariablesWhere(*answer).c_str());
  if (!opts.deploy) {
    std::printf("this takes effect at the next deploy; add --deploy to apply it now\n");
    return 0;
  }
  return FollowVariableDeployments(*client, *answer);
}

int RunCli(int argc, char** argv) {
  CLI::App app{"Slipway: push code, see it live, safely — on your own machine.", ProgramName()};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");

  ServerOptions server_opts;
  auto* server = app.add_subcommand("server", "Run the Slipway daemon in the foreground");
  server->add_option("--http", server_opts.http, "Edge HTTP listen address [:8080]");
  server->add_option("--https", server_opts.https, "Edge HTTPS listen address, e.g. :8443");
  server->add_flag("--redirect-https", server_opts.redirect_https,
                   "Redirect plain HTTP requests to apps to HTTPS");
  server->add_option("--acme-directory", server_opts.acme_directory,
                     "ACME directory URL for certificates of custom domains");
  server->add_option("--acme-email", server_opts.acme_email, "ACME account contact");
  server->add_option("--acme-ca-bundle", server_opts.acme_ca_bundle,
                     "PEM bundle to trust for the ACME server");
  server->add_flag("!--no-access-log", server_opts.access_log,
                   "Do not write <data dir>/logs/access.log");
  server->add_option("--api", server_opts.api, "Control API listen address [127.0.0.1:7788]");
  server->add_option("--edge-threads", server_opts.edge_threads, "Edge proxy threads [1]");

  EdgeCommandOptions edge_opts;
  auto* edge = app.add_subcommand(
      "edge",
      "Run the edge proxy (the data plane `slipway server` starts, or alone with --routes)");
  edge->add_option("--http", edge_opts.http, "Listen address [:8080]");
  edge->add_option("--https", edge_opts.https, "HTTPS listen address, e.g. :8443");
  edge->add_option("--home", edge_opts.home, "Data dir [$SLIPWAY_HOME or ~/.slipway]");
  edge->add_option("--routes", edge_opts.routes_file,
                   "Serve this routing table (JSON) alone, without a server");
  edge->add_option("--threads", edge_opts.threads, "Event-loop threads [1]");
  edge->add_flag("!--no-access-log", edge_opts.access_log,
                 "Do not write <data dir>/logs/access.log");
  edge->add_flag("--takeover", edge_opts.takeover,
                 "Take the listening sockets over from the running edge (an upgrade)");

  UpOptions up_opts;
  auto* up = app.add_subcommand("up", "Build and deploy an app directory");
  up->add_option("dir", up_opts.dir, "App directory [.]");
  up->add_option("--service,-s", up_opts.service, "Deploy only this service");
  up->add_option("--env,-e", up_opts.env, "Environment [production]");
  up->add_flag("--detach,-d", up_opts.detach, "Return once the deploy is queued");

  std::string project_flag;
  std::string env = "production";
  auto* status = app.add_subcommand("status", "Show services, their deployments and URLs");
  status->add_option("--project,-p", project_flag, "Project [from the current directory]");
  status->add_option("--env,-e", env, "Environment [production]");

  std::string dep_service;
  int dep_limit = 20;
  auto* deployments = app.add_subcommand("deployments", "Show the deployment history");
  deployments->add_option("service", dep_service, "Only this service");
  deployments->add_option("--project,-p", project_flag, "Project [from the current directory]");
  deployments->add_option("--env,-e", env, "Environment [production]");
  deployments->add_option("--limit,-n", dep_limit, "How many [20]");

  LogsOptions logs_opts;
  auto* logs = app.add_subcommand("logs", "Show a service's runtime or build logs");
  logs->add_option("service", logs_opts.service, "Service [the project's only one]");
  logs->add_option("--project,-p", logs_opts.project, "Project [from the current directory]");
  logs->add_option("--env,-e", logs_opts.env, "Environment [production]");
  logs->add_flag("--build,-b", logs_opts.build, "The build log of the latest deployment");
  logs->add_flag("--follow,-f", logs_opts.follow, "Keep printing new lines");
  logs->add_option("--filter", logs_opts.filter, "Only lines containing this text");
  logs->add_option("--lines,-n", logs_opts.lines, "How many of the latest lines [100]");
  logs->add_option("--deployment", logs_opts.deployment, "A given deployment's logs");

  RollbackOptions rollback_opts;
  auto* rollback =
      app.add_subcommand("rollback", "Bring back an earlier release without rebuilding");
  rollback->add_option("service", rollback_opts.service, "Service [the project's only one]");
  rollback->add_option("--to", rollback_opts.to, "Deployment whose release to bring back");
  rollback->add_option("--project,-p", rollback_opts.project,
                       "Project [from the current directory]");
  rollback->add_option("--env,-e", rollback_opts.env, "Environment [production]");

  ScaleOptions scale_opts;
  auto* scale = app.add_subcommand("scale", "Set how many replicas a service runs");
  scale->add_option("assignment", scale_opts.assignment, "SERVICE=COUNT, e.g. web=3")->required();
  scale->add_option("--project,-p", scale_opts.project, "Project [from the current directory]");
  scale->add_option("--env,-e", scale_opts.env, "Environment [production]");

  auto* certs = app.add_subcommand("certs", "Show the local CA to trust and the certificates");
  auto* metrics = app.add_subcommand("metrics", "Show per-route request metrics of the edge");

  DomainOptions domain_opts;
  auto* domains = app.add_subcommand("domains", "Route custom domains to a service");
  domains->require_subcommand(1);
  auto* domains_add = domains->add_subcommand("add", "Route HOST to a service");
  domains_add->add_option("host", domain_opts.host, "Domain, e.g. api.example.com")->required();
  domains_add->add_option("--service,-s", domain_opts.service, "Service [the only one]");
  domains_add->add_option("--cert", domain_opts.cert, "Certificate chain (PEM) for HTTPS");
  domains_add->add_option("--key", domain_opts.key, "Its private key (PEM)");
  domains_add->add_flag("--acme", domain_opts.acme, "Obtain a certificate with ACME");
  auto* domains_list = domains->add_subcommand("list", "Show the project's custom domains");
  auto* domains_remove = domains->add_subcommand("remove", "Stop routing HOST");
  domains_remove->add_option("host", domain_opts.host, "Domain")->required();
  for (auto* sub : {domains_add, domains_list}) {
    sub->add_option("--project,-p", domain_opts.project, "Project [from the current directory]");
    sub->add_option("--env,-e", domain_opts.env, "Environment [production]");
  }

  ConfigShowOptions config_opts;
  auto* config_cmd = app.add_subcommand("config", "Inspect an app directory's config");
  config_cmd->require_subcommand(1);
  auto* config_show = config_cmd->add_subcommand(
      "show", "Print the resolved config and the file each value came from (local)");
  config_show->add_option("dir", config_opts.dir, "App directory [.]");
  config_show->add_flag("--all", config_opts.all, "Also the fields left at their defaults");
  config_show->add_flag("--json", config_opts.json, "Machine-readable output");

  VariablesOptions var_opts;
  auto* variables = app.add_subcommand("variables", "List, set and unset variables and secrets");
  auto* var_list = variables->add_subcommand("list", "Show the variables (secrets as ***)");
  auto* var_set = variables->add_subcommand("set", "Set variables (secrets unless --plain)");
  auto* var_unset = variables->add_subcommand("unset", "Remove variables");
  var_set->add_option("assignments", var_opts.args, "KEY=VALUE...")->required();
  var_set->add_flag("--plain", var_opts.plain, "A plain variable: shown in clear, not masked");
  var_unset->add_option("names", var_opts.args, "KEY...")->required();
  var_list->add_flag("--reveal", var_opts.reveal, "Show the values of secrets too");
  for (auto* sub : {variables, var_list, var_set, var_unset}) {
    sub->add_option("--service,-s", var_opts.service, "Service [the only one]");
    sub->add_flag("--shared", var_opts.shared, "The variables shared by every service");
    sub->add_option("--project,-p", var_opts.project, "Project [from the current directory]");
    sub->add_option("--env,-e", var_opts.env, "Environment [production]");
  }
  for (auto* sub : {var_set, var_unset}) {
    sub->add_flag("--deploy", var_opts.deploy,
                  "Apply now: redeploy the running release with the new variables");
  }

  // `slipway run ... -- CMD...`: what follows "--" is the command, kept from CLI11 so
  // that it never fills the SERVICE positional.
  OneOffOptions run_opts;
  std::vector<char*> args(argv, argv + argc);
  if (argc > 1 && std::string(argv[1]) == "run") {
    auto dashes = std::find_if(args.begin() + 2, args.end(),
                               [](const char* a) { return std::string(a) == "--"; });
    if (dashes != args.end()) {
      run_opts.command.assign(dashes + 1, args.end());
      args.erase(dashes, args.end());
    }
  }
  auto* run = app.add_subcommand(
      "run", "Run a one-off command in a service's active release, with its environment");
  run->add_option("service", run_opts.service, "Service [the project's only one]");
  run->add_option("--project,-p", run_opts.project, "Project [from the current directory]");
  run->add_option("--env,-e", run_opts.env, "Environment [production]");
  run->add_option("--timeout", run_opts.timeout_seconds,
                  "Kill the command after this many seconds [3600]");
  run->footer("Usage: slipway run [SERVICE] [options] -- CMD [ARGS...]  (no stdin)");

  EnvOptions env_opts;
  auto* env_cmd = app.add_subcommand("env", "List, create and delete environments");
  env_cmd->require_subcommand(1);
  auto* env_list = env_cmd->add_subcommand("list", "Show environments, their services and URLs");
  auto* env_create = env_cmd->add_subcommand("create", "Create an empty environment");
  env_create->add_option("name", env_opts.name, "Environment name, e.g. staging")->required();
  env_create->add_option("--from", env_opts.from,
                         "Start with the services (configs) of this environment");
  auto* env_delete =
      env_cmd->add_subcommand("delete", "Stop an environment's services and remove it");
  env_delete->add_option("name", env_opts.name, "Environment name")->required();
  env_delete->add_flag("--yes,-y", env_opts.yes, "Do not ask for confirmation");
  for (auto* sub : {env_list, env_create, env_delete}) {
    sub->add_option("--project,-p", env_opts.project, "Project [from the current directory]");
  }

  CronOptions cron_opts;
  auto* cron_cmd = app.add_subcommand("cron", "Show cron services and their runs; run one now");
  cron_cmd->require_subcommand(1);
  auto* cron_list =
      cron_cmd->add_subcommand("list", "Each cron service: schedule, next and last run");
  auto* cron_runs = cron_cmd->add_subcommand("runs", "A cron service's runs, newest first");
  cron_runs->add_option("service", cron_opts.service, "Cron service")->required();
  cron_runs->add_option("--limit,-n", cron_opts.limit, "How many [20]");
  auto* cron_run = cron_cmd->add_subcommand(
      "run", "Start a run now and print its output; exits with the run's exit code");
  cron_run->add_option("service", cron_opts.service, "Cron service")->required();
  cron_run->add_flag("--detach,-d", cron_opts.detach, "Return once the run has started");
  for (auto* sub : {cron_list, cron_runs, cron_run}) {
    sub->add_option("--project,-p", cron_opts.project, "Project [from the current directory]");
    sub->add_option("--env,-e", cron_opts.env, "Environment [production]");
  }

  AddonCommandOptions addon_opts;
  auto* add = app.add_subcommand("add", "Add a PostgreSQL or Redis server to an environment");
  add->add_option("kind", addon_opts.kind, "postgres or redis")
      ->required()
      ->check(CLI::IsMember({"postgres", "redis"}));
  add->add_option("--name,-n", addon_opts.name, "Its name, for ${{ NAME.VAR }} [the kind]");
  add->add_option("--port", addon_opts.port, "Port on 127.0.0.1 [a free one, kept]");
  auto* addons = app.add_subcommand("addons", "List the environment's add-ons, or remove one");
  auto* addons_remove =
      addons->add_subcommand("remove", "Stop an add-on and delete its data (a backup is kept)");
  addons_remove->add_option("name", addon_opts.name, "The add-on")->required();
  addons_remove->add_flag("--no-backup", addon_opts.no_backup,
                          "Do not take a before-delete backup of a postgres add-on");
  for (auto* sub : {add, addons, addons_remove}) {
    sub->add_option("--project,-p", addon_opts.project, "Project [from the current directory]");
    sub->add_option("--env,-e", addon_opts.env, "Environment [production]");
  }

  BackupCommandOptions backup_opts;
  auto* backups = app.add_subcommand("backups", "List, take and restore database backups");
  auto* backups_list = backups->add_subcommand("list", "Show the backups, newest first");
  auto* backups_create = backups->add_subcommand("create", "Take a backup now");
  auto* backups_restore = backups->add_subcommand(
      "restore", "Restore a backup (over the environment's database, or into a new one)");
  backups_restore->add_option("id", backup_opts.id, "Backup id (slipway backups list)")->required();
  backups_restore->add_option("--to", backup_opts.database,
                              "Restore into this new database instead");
  for (auto* sub : {backups, backups_list, backups_create, backups_restore}) {
    sub->add_option("--addon,-a", backup_opts.addon,
                    "The postgres add-on [the environment's only one]");
    sub->add_option("--project,-p", backup_opts.project, "Project [from the current directory]");
    sub->add_option("--env,-e", backup_opts.env, "Environment [production]");
  }

  GitRemoteOptions git_remote_opts;
  auto* git_remote = app.add_subcommand(
      "git-remote", "Print the git remote to push to (deploys on git push; docs/git.md)");
  git_remote->add_option("--project,-p", git_remote_opts.project,
                         "Project [from the current directory]");
  git_remote->add_option("--production-branch", git_remote_opts.production_branch,
                         "Set the branch deployed to production [main]");
  git_remote->add_option("--preview-from", git_remote_opts.preview_from,
                         "Set the environment previews start from [production]");
  git_remote->add_flag("--url", git_remote_opts.url_only, "Print the remote's URL alone");
  std::string git_hook_name;
  auto* git_hook = app.add_subcommand("git-hook", "What the repositories' hooks run");
  git_hook->add_option("hook", git_hook_name, "pre-receive")->required();
  git_hook->group("");  // not for users: hidden from --help

  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (server->parsed()) return RunServer(server_opts);
  if (edge->parsed()) return RunEdge(edge_opts);
  if (up->parsed()) return Up(up_opts);
  if (status->parsed()) return StatusCommand(project_flag, env);
  if (deployments->parsed()) return DeploymentsCommand(project_flag, env, dep_service, dep_limit);
  if (logs->parsed()) return LogsCommand(logs_opts);
  if (rollback->parsed()) return RollbackCommand(rollback_opts);
  if (scale->parsed()) return ScaleCommand(scale_opts);
  if (certs->parsed()) return CertsCommand();
  if (metrics->parsed()) return MetricsCommand();
  if (config_show->parsed()) return ConfigShowCommand(config_opts);
  if (domains_add->parsed()) return DomainsAdd(domain_opts);
  if (domains_list->parsed()) return DomainsList(domain_opts);
  if (domains_remove->parsed()) return DomainsRemove(domain_opts);
  if (var_set->parsed()) return VariablesSet(var_opts);
  if (var_unset->parsed()) return VariablesUnset(var_opts);
  if (variables->parsed()) return VariablesList(var_opts);
  if (run->parsed()) return RunOneOff(run_opts);
  if (env_list->parsed()) return EnvList(env_opts);
  if (env_create->parsed()) return EnvCreate(env_opts);
  if (env_delete->parsed()) return EnvDelete(env_opts);
  if (cron_list->parsed()) return CronListCommand(cron_opts);
  if (cron_runs->parsed()) return CronRunsCommand(cron_opts);
  if (cron_run->parsed()) return CronRunCommand(cron_opts);
  if (add->parsed()) return AddCommand(addon_opts);
  if (addons_remove->parsed()) return AddonsRemove(addon_opts);
  if (addons->parsed()) return AddonsList(addon_opts);
  if (backups_create->parsed()) return BackupsCreate(backup_opts);
  if (backups_restore->parsed()) return BackupsRestore(backup_opts);
  if (backups->parsed()) return BackupsList(backup_opts);
  if (git_remote->parsed()) return GitRemoteCommand(git_remote_opts);
  if (git_hook->parsed()) return GitHookCommand(git_hook_name);
  return 1;
}

}  // namespace slipway
