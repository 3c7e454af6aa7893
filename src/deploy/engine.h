#pragma once

// DeployEngine: the deployment state machine and the owner of running replicas.
//
//   QUEUED -> BUILDING -> DEPLOYING -> (health) -> ACTIVE, the old one DRAINING -> REMOVED
//   failures BUILD_FAILED, DEPLOY_FAILED, CRASHED; a queued deploy superseded by a
//   newer one for the same service is SKIPPED.
//
// One deploy at a time per service (a worker thread per busy service). After each
// change of what serves, the engine rebuilds the routing table from what is running
// and hands it to the route sink (the edge). A monitor thread restarts crashed
// replicas of active deployments with exponential backoff.
//
// Service types (ServiceConfig::type):
//   web     replicas listen on $PORT, health-checked, routed at their URL;
//   worker  replicas get no PORT and no route; a replica counts as started once it
//           has kept running for kWorkerStartSeconds; the restart policy applies;
//   cron    no replicas: its active deployment's start command runs as a one-off on
//           the schedule (deploy/cron_runner.h); a replaced deployment stays DRAINING
//           while a run of it is going.
// The project's add-ons (addons/addons.h) are provisioned when a deploy that declares
// them is accepted; the first postgres and the first redis add-on of the environment
// give every service DATABASE_URL, PG* and REDIS_URL, REDIS* (lowest layer: any
// variable of the same name wins).
//
// Thread-safety: every public method may be called from any thread.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "addons/addons.h"
#include "common/clock.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "deploy/variables.h"
#include "proxy/edge.h"
#include "secrets/secrets.h"
#include "store/store.h"
#include "supervisor/supervisor.h"

namespace slipway {

// Hands a routing table to the edge and returns once the edge serves it (a switch is
// complete only then), or with the error that kept it from arriving.
using RouteSink = std::function<Status(std::shared_ptr<const RouteTable>)>;

// What the edge measures, for automatic rollback and draining.
struct EdgeStats {
  std::vector<RouteMetrics> routes;
  std::vector<UpstreamLoad> upstreams;
};
using EdgeStatsSource = std::function<Result<EdgeStats>()>;

struct EngineOptions {
  std::string home;      // the data dir
  int edge_port = 8080;  // for URLs shown to users
  std::string domain_suffix = "localhost";
  std::chrono::milliseconds stop_grace{std::chrono::seconds(10)};
  bool redirect_to_https = false;  // every app route redirects plain HTTP to HTTPS
  // Apps run isolated (common/sandbox.h: own uid kAppIdBase + service id, own mount
  // namespace seeing only their release and data dir) when this process is root.
  bool isolate_apps = true;
  EdgeStatsSource edge_stats;  // null: no traffic-based rollback, no drain wait
  // Seals variables and deployment environments; null: a key of the engine's own, lost
  // when it stops (tests).
  std::shared_ptr<const SecretBox> secrets;
  // The add-on servers (provisioned at deploy, referenced as ${{ <addon>.KEY }},
  // removed with their environment); null: no add-ons (a config's add-ons are named
  // in a warning and not provisioned).
  AddonManager* addons = nullptr;
};

// How long a worker replica must keep running after its start to count as started.
inline constexpr int kWorkerStartSeconds = 2;

// One variable as `slipway variables list` shows it.
struct VariableEntry {
  std::string service;  // "" : shared
  std::string name;
  std::string value;  // "***" for a secret unless revealed
  bool secret = false;
  std::string source;  // "cli", "config file", "generated"
};

// What one service looks like now, for `slipway status`.
struct ReplicaStatus {
  int index = 0;
  int port = 0;
  std::string state;  // "running", "starting", "restarting", "crashed"
  int restarts = 0;
  int64_t pid = 0;
};

struct ServiceStatus {
  std::string project;
  std::string environment;
  std::string name;
  std::string type;  // "web", "worker", "cron"
  std::string url;   // "" for workers and cron jobs
  std::string kind;  // "python", "node", "static", ...
  int64_t active_deployment_id = 0;
  std::string active_status;  // status of the active deployment, "" if none
  int64_t latest_deployment_id = 0;
  std::string latest_status;
  std::string health;  // "healthy", "unhealthy", "static", "none"
  std::string notice;  // e.g. why the latest deployment was rolled back automatically
  std::vector<ReplicaStatus> replicas;
  // Cron services: the schedule, the next slot (unix millis; 0 when not scheduled) and
  // the latest run.
  std::string schedule;
  int64_t next_run = 0;
  std::optional<CronRunRecord> last_run;
};

struct DeployRequest {
  std::string project;
  std::string environment = "production";
  std::string source_dir;                  // the unpacked upload (removed when done)
  std::vector<std::string> only_services;  // empty: every service in the config
  std::string source_label = "upload";
};

struct DeployAccepted {
  std::vector<DeploymentRecord> deployments;
  std::vector<std::string> service_names;  // parallel to deployments
  // Services not redeployed: their watchPatterns files and config are unchanged.
  std::vector<std::string> unchanged;
  std::vector<std::string> warnings;
  // Add-ons this deploy started for the first time: "add-on db: PostgreSQL 15.18 on
  // 127.0.0.1:41235 (new)".
  std::vector<std::string> provisioned;
  std::string project;
};

// A one-off command (`slipway run`) in a service's active release.
struct RunRequest {
  std::string project;
  std::string environment = "production";
  std::string service;
  std::vector<std::string> argv;  // run as is (no shell); argv[0] looked up in the app's PATH
};

class DeployEngine {
 public:
  static Result<std::unique_ptr<DeployEngine>> Create(Store& store, Supervisor& supervisor,
                                                      Clock& clock, RouteSink sink,
                                                      EngineOptions options);
  ~DeployEngine();

  // At startup: fails deploys a previous daemon left half done, re-adopts replicas of
  // active deployments (restarting those that died), stops anything else left
  // running, and publishes the routes.
  Status Recover();

  // Validates the uploaded tree (config, something deployable per service), creates
  // one QUEUED deployment per service and queues them. Errors are the config's or
  // the builder's detection errors, naming file and field.
  Result<DeployAccepted> Deploy(const DeployRequest& request);

  Result<std::vector<ServiceStatus>> ProjectStatus(const std::string& project,
                                                   const std::string& environment);

  // The URL of a service: http://<service>.<project>[-<env>].<suffix>:<port>
  std::string ServiceUrl(const std::string& project, const std::string& environment,
                         const std::string& service) const;
  // Path of a deployment's build log and of its replicas' logs.
  std::string BuildLogPath(int64_t deployment_id) const;
  std::vector<std::string> ReplicaLogPaths(int64_t deployment_id);

  // Queues a deployment that brings back the release of deployment `to` (0: the most
  // recent release that served before the current one and was replaced by a deploy)
  // without building; returns it (QUEUED). Errors: kNotFound for an unknown service or
  // a deployment of another service, kFailedPrecondition when there is nothing to go
  // back to or its release was deleted (keepReleases).
  Result<DeploymentRecord> Rollback(const std::string& project, const std::string& environment,
                                    const std::string& service, int64_t to);

  // Sets the service's replica count (kept for later deploys) and applies it to the
  // running deployment: new replicas are routed once healthy, removed ones drained
  // first. Returns when done. kInvalidArgument outside 1..32.
  Status Scale(const std::string& project, const std::string& environment,
               const std::string& service, int replicas);

  // Variables (docs/variables.md). `service` "" means the shared variables. Set and
  // unset change what the next deploy gets; ApplyVariables deploys it now: a deployment
  // per service (every service with an active deployment, for shared variables) that
  // reuses the active release with freshly resolved variables, health-checked and
  // switched like any deploy. kInvalidArgument for bad names (CheckSettableVariableName),
  // values over 64 KiB; kNotFound for an unknown project/environment or unset name.
  Result<std::vector<VariableEntry>> ListVariables(const std::string& project,
                                                   const std::string& environment,
                                                   const std::string& service, bool reveal);
  Status SetVariables(const std::string& project, const std::string& environment,
                      const std::string& service,
                      const std::vector<std::pair<std::string, std::string>>& values, bool secret);
  Status UnsetVariables(const std::string& project, const std::string& environment,
                        const std::string& service, const std::vector<std::string>& names);
  Result<std::vector<DeploymentRecord>> ApplyVariables(const std::string& project,
                                                       const std::string& environment,
                                                       const std::string& service);
  // Masks every secret value known (set, generated, or in a running deployment's
  // environment) in text the platform shows.
  std::shared_ptr<const Masker> SecretMasker();

  // Environments. CreateEnvironment makes an empty one (kAlreadyExists if it exists);
  // with `from`, its services are created with the configs of `from`'s services (not
  // deployed: `slipway up --env` deploys them).
  Result<EnvironmentRecord> CreateEnvironment(const std::string& project, const std::string& name,
                                              const std::string& from);
  // Stops the environment's replicas (routes removed first, then drained like a
  // retired deployment), deletes its releases, logs and run directories from disk and
  // its rows from the store. kFailedPrecondition for "production" or while one of its
  // deploys is in progress; kNotFound for an unknown project or environment.
  Status DeleteEnvironment(const std::string& project, const std::string& environment);

  // Starts `request.argv` in the service's active release directory (its app dir) with
  // the environment its replicas get, minus PORT and SLIPWAY_REPLICA_INDEX, stdin
  // /dev/null, stdout+stderr merged into the returned process's output pipe, in a
  // process group of its own (the caller kills it when done or abandoned).
  // kFailedPrecondition when the service has no active deployment; kNotFound for an
  // unknown project, environment, service or command.
  Result<std::unique_ptr<Process>> StartRun(const RunRequest& request);

  // Cron services. RunCron starts a run now (kFailedPrecondition while one is going,
  // or for a service that is not a deployed cron service); CronRuns lists the latest
  // `limit` runs, newest first. kNotFound for an unknown project, environment or service.
  Result<CronRunRecord> RunCron(const std::string& project, const std::string& environment,
                                const std::string& service);
  Result<std::vector<CronRunRecord>> CronRuns(const std::string& project,
                                              const std::string& environment,
                                              const std::string& service, int limit);

  // Publishes the routing table again, after something it is built from changed
  // outside the engine (custom domains).
  void RefreshRoutes();

  // Stops the workers and the monitor. With `stop_apps`, replicas are stopped too;
  // without, they keep running for the next daemon to adopt.
  void Shutdown(bool stop_apps);

 private:
  class Impl;
  explicit DeployEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace slipway
