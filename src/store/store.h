#pragma once

// Store: the durable state of Slipway in one SQLite database (WAL mode) under the
// data dir. The only writer of durable state; every other part reads and writes
// through it. Schema changes are versioned migrations applied at Open().
//
// Thread-safety: a Store may be used from any number of threads at once; calls are
// serialised internally on one connection. Every method is a single transaction.
//
// Errors: kNotFound for a missing row, kAlreadyExists for a duplicate name,
// kResourceExhausted when the disk is full, kInternal for anything else SQLite says,
// with SQLite's message.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace slipway {

// Deployment statuses as stored and shown (DESIGN.md's state machine).
inline constexpr const char* kQueued = "QUEUED";
inline constexpr const char* kBuilding = "BUILDING";
inline constexpr const char* kDeploying = "DEPLOYING";
inline constexpr const char* kActive = "ACTIVE";
inline constexpr const char* kDraining = "DRAINING";
inline constexpr const char* kRemoved = "REMOVED";
inline constexpr const char* kBuildFailed = "BUILD_FAILED";
inline constexpr const char* kDeployFailed = "DEPLOY_FAILED";
inline constexpr const char* kCrashed = "CRASHED";
inline constexpr const char* kRolledBack = "ROLLED_BACK";
inline constexpr const char* kSkipped = "SKIPPED";

struct ProjectRecord {
  int64_t id = 0;
  std::string name;
  int64_t created_at = 0;  // unix millis, as every *_at below
  // git push (git/git.h): the branch deployed to production and the environment a
  // preview starts from; "" for the defaults (main, production).
  std::string production_branch;
  std::string preview_from;
};

struct EnvironmentRecord {
  int64_t id = 0;
  int64_t project_id = 0;
  std::string name;  // "production"
  int64_t created_at = 0;
  std::string git_branch;  // the branch this preview environment deploys; "" : not a preview
};

struct ServiceRecord {
  int64_t id = 0;
  int64_t project_id = 0;
  int64_t environment_id = 0;
  std::string name;
  std::string config_json;           // the resolved ServiceConfig of the latest deploy
  int64_t active_deployment_id = 0;  // 0: none
  int64_t created_at = 0;
  int scale = 0;  // replicas set with `slipway scale`; 0: the config's numReplicas
};

struct DeploymentRecord {
  int64_t id = 0;
  int64_t service_id = 0;
  std::string status;       // one of the constants above
  int64_t release_id = 0;   // 0 until the build succeeded
  std::string source;       // what was deployed: "upload", "rollback of 12", ...
  std::string error;        // why it failed, one actionable line (may hold log lines after)
  std::string config_json;  // the ServiceConfig this deployment was made from
  int64_t build_pgid = 0;   // process group of the running build step, 0 when none
  int64_t created_at = 0;
  int64_t updated_at = 0;
  int64_t finished_at = 0;  // 0 while in progress
};

struct ReleaseRecord {
  int64_t id = 0;
  int64_t service_id = 0;
  int64_t deployment_id = 0;  // the deployment that built it
  std::string path;           // releases/<id> directory
  std::string manifest_json;
  int64_t created_at = 0;
};

struct ReplicaRecord {
  int64_t id = 0;
  int64_t deployment_id = 0;
  int index = 0;  // 0..replicas-1
  int port = 0;
  int64_t shim_pid = 0;
  int64_t shim_start_time = 0;  // /proc start time, to tell a reused pid apart
  int64_t app_pid = 0;          // leader of the app's process group
  std::string state;            // "starting", "running", "stopped", "crashed"
  int restarts = 0;
  std::string run_dir;
  std::string log_path;
  int64_t started_at = 0;
  int64_t updated_at = 0;
};

struct DomainRecord {
  int64_t id = 0;
  int64_t service_id = 0;
  std::string host;       // lowercase: "api.example.com" or "*.example.com"
  std::string cert_path;  // user certificate (PEM), "" for none
  std::string key_path;
  bool acme = false;  // obtain a certificate with ACME
  int64_t created_at = 0;
};

// A variable set by a user (`slipway variables set`), generated for a ${{ secret() }}, or
// a shared variable of the config file. Every value in the table is sealed
// (secrets/secrets.h), plain ones too; `secret` says whether it is masked when shown.
struct VariableRecord {
  int64_t id = 0;
  int64_t environment_id = 0;
  std::string service;  // "" : shared by the environment's services
  std::string name;
  std::string sealed_value;
  bool secret = true;
  std::string source = "cli";  // "cli", "generated", "config"
  int64_t updated_at = 0;
};

// An add-on server of a project environment: a PostgreSQL or Redis server the platform
// runs for the environment's services (addons/addons.h).
struct AddonRecord {
  int64_t id = 0;
  int64_t environment_id = 0;
  std::string name;  // referenced as ${{ <name>.DATABASE_URL }}; unique in the environment
  std::string kind;  // "postgres" or "redis"
  int port = 0;      // on 127.0.0.1, kept across restarts (URLs given to apps hold it)
  std::string sealed_password;  // secrets/secrets.h
  // "provisioning", "running", "restarting", "failed" (see error), "stopped"
  std::string state = "provisioning";
  std::string error;  // why it is not running, one actionable line; "" when fine
  std::string data_dir;
  std::string run_dir;
  std::string log_path;
  int64_t shim_pid = 0;
  int64_t shim_start_time = 0;
  int64_t app_pid = 0;
  std::string settings_json;  // kind-specific: server version, database, user, backups
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

// Backup statuses. A backup is listed as good only once COMPLETED: its file is whole,
// synced and its checksum recorded.
inline constexpr const char* kBackupRunning = "RUNNING";
inline constexpr const char* kBackupCompleted = "COMPLETED";
inline constexpr const char* kBackupFailed = "FAILED";

struct BackupRecord {
  int64_t id = 0;
  int64_t addon_id = 0;
  std::string status = kBackupRunning;
  std::string trigger;  // "schedule", "manual", "before-restore", "before-delete"
  std::string path;     // the dump file (backups/...)
  int64_t bytes = 0;
  std::string sha256;  // hex, of the complete file
  std::string error;
  int64_t started_at = 0;
  int64_t finished_at = 0;  // 0 while running
};

// Cron run statuses.
inline constexpr const char* kRunRunning = "RUNNING";
inline constexpr const char* kRunSucceeded = "SUCCEEDED";
inline constexpr const char* kRunFailed = "FAILED";
inline constexpr const char* kRunSkipped = "SKIPPED";  // the previous run was still going

// One run of a cron service: started by its schedule or by `slipway cron run`.
struct CronRunRecord {
  int64_t id = 0;
  int64_t service_id = 0;
  int64_t deployment_id = 0;  // whose release it runs
  std::string trigger;        // "schedule" or "manual"
  // The schedule slot (unix millis) it runs for; for a manual run its start. A
  // scheduled slot has at most one run (a second CreateCronRun is kAlreadyExists).
  int64_t scheduled_for = 0;
  std::string status = kRunRunning;
  int exit_code = -1;   // -1 while running, or when it never started
  std::string message;  // why it was skipped or failed to start; "" otherwise
  std::string log_path;
  std::string run_dir;
  int64_t shim_pid = 0;
  int64_t shim_start_time = 0;
  int64_t app_pid = 0;
  int64_t started_at = 0;   // 0 when skipped
  int64_t finished_at = 0;  // 0 while running
};

struct EventRecord {
  int64_t id = 0;
  int64_t service_id = 0;
  int64_t deployment_id = 0;  // 0 when about the service as a whole
  std::string kind;           // "deploy.started", "health.passed", "replica.crashed", ...
  std::string message;
  int64_t at = 0;
};

class Store {
 public:
  // Opens (creating if needed) the database at `path` (timestamps read from `clock`,
  // which must outlive the Store), sets WAL mode and a busy
  // timeout, and applies pending migrations in order. A database written by a newer
  // Slipway (higher schema version than this binary knows) is refused with
  // kFailedPrecondition naming both versions.
  static Result<std::unique_ptr<Store>> Open(const std::string& path, const Clock& clock);
  virtual ~Store() = default;

  virtual int SchemaVersion() = 0;

  // Projects and environments. EnsureProject creates the project and its
  // "production" environment if missing, and returns the project.
  virtual Result<ProjectRecord> EnsureProject(const std::string& name) = 0;
  virtual Result<ProjectRecord> GetProject(const std::string& name) = 0;
  virtual Result<ProjectRecord> GetProjectById(int64_t id) = 0;
  virtual Result<std::vector<ProjectRecord>> ListProjects() = 0;
  virtual Result<EnvironmentRecord> EnsureEnvironment(int64_t project_id,
                                                      const std::string& name) = 0;
  virtual Result<EnvironmentRecord> GetEnvironment(int64_t project_id, const std::string& name) = 0;
  virtual Result<EnvironmentRecord> GetEnvironmentById(int64_t id) = 0;
  // The project's environments, production first, then by name.
  virtual Result<std::vector<EnvironmentRecord>> ListEnvironments(int64_t project_id) = 0;
  // git push settings of a project (see ProjectRecord).
  virtual Status SetProjectGitSettings(int64_t project_id, const std::string& production_branch,
                                       const std::string& preview_from) = 0;
  // Marks an environment as the preview of `branch` ("" : none). A branch has at most
  // one preview environment per project: kAlreadyExists when another has it.
  virtual Status SetEnvironmentBranch(int64_t environment_id, const std::string& branch) = 0;
  // Deletes the environment's rows and everything that hangs off them: its services,
  // their deployments, releases, replicas, custom domains, events, cron runs, add-ons
  // and their backups (rows, not
  // files: the caller removes release and log directories first). kNotFound for an
  // unknown id. Refusing "production" is the caller's business.
  virtual Status DeleteEnvironment(int64_t id) = 0;

  // Services, unique by (environment, name).
  virtual Result<ServiceRecord> EnsureService(int64_t project_id, int64_t environment_id,
                                              const std::string& name) = 0;
  virtual Result<ServiceRecord> GetService(int64_t id) = 0;
  virtual Result<ServiceRecord> FindService(int64_t environment_id, const std::string& name) = 0;
  virtual Result<std::vector<ServiceRecord>> ListServices(int64_t environment_id) = 0;
  virtual Status SetServiceConfig(int64_t service_id, const std::string& config_json) = 0;
  virtual Status SetActiveDeployment(int64_t service_id, int64_t deployment_id) = 0;
  virtual Status SetServiceScale(int64_t service_id, int replicas) = 0;

  // Deployments. CreateDeployment stores status QUEUED and returns the new row.
  virtual Result<DeploymentRecord> CreateDeployment(int64_t service_id, const std::string& source,
                                                    const std::string& config_json) = 0;
  virtual Result<DeploymentRecord> GetDeployment(int64_t id) = 0;
  // Newest first, at most `limit`.
  virtual Result<std::vector<DeploymentRecord>> ListDeployments(int64_t service_id, int limit) = 0;
  // Every deployment whose status is one of `statuses`, oldest first.
  virtual Result<std::vector<DeploymentRecord>> ListDeploymentsByStatus(
      const std::vector<std::string>& statuses) = 0;
  // Sets status (and error, when non-empty); a terminal status also sets finished_at.
  virtual Status SetDeploymentStatus(int64_t id, const std::string& status,
                                     const std::string& error = "") = 0;
  virtual Status SetDeploymentRelease(int64_t id, int64_t release_id) = 0;
  virtual Status SetDeploymentBuildPgid(int64_t id, int64_t pgid) = 0;
  virtual Status SetDeploymentConfig(int64_t id, const std::string& config_json) = 0;

  // Releases.
  virtual Result<ReleaseRecord> CreateRelease(int64_t service_id, int64_t deployment_id,
                                              const std::string& path,
                                              const std::string& manifest_json) = 0;
  virtual Result<ReleaseRecord> GetRelease(int64_t id) = 0;
  virtual Result<std::vector<ReleaseRecord>> ListReleases(int64_t service_id) = 0;  // newest first

  // Replicas. UpsertReplica inserts when id == 0 (and returns the new id), else updates.
  virtual Result<int64_t> UpsertReplica(const ReplicaRecord& replica) = 0;
  virtual Result<std::vector<ReplicaRecord>> ListReplicas(int64_t deployment_id) = 0;
  // Every replica whose state is not "stopped", across all deployments.
  virtual Result<std::vector<ReplicaRecord>> ListLiveReplicas() = 0;

  // Custom domains, unique by host across all services.
  virtual Result<DomainRecord> AddDomain(const DomainRecord& domain) = 0;
  virtual Result<std::vector<DomainRecord>> ListDomains(int64_t service_id) = 0;  // 0: all
  virtual Status RemoveDomain(const std::string& host) = 0;

  // Variables of an environment. A "config" row and a user row ("cli"/"generated") of the
  // same name coexist (the user's wins at deploy); SetVariables replaces the user row of
  // each (service, name), all in one transaction.
  virtual Status SetVariables(const std::vector<VariableRecord>& variables) = 0;
  // Removes user rows; kNotFound naming the first name that has none (nothing removed).
  virtual Status DeleteVariables(int64_t environment_id, const std::string& service,
                                 const std::vector<std::string>& names) = 0;
  // Replaces every "config" row of (environment, service) with `variables`.
  virtual Status ReplaceConfigVariables(int64_t environment_id, const std::string& service,
                                        const std::vector<VariableRecord>& variables) = 0;
  // Every row of the environment (0: of every environment), by service ("" first) then name.
  virtual Result<std::vector<VariableRecord>> ListVariables(int64_t environment_id) = 0;

  // The sealed snapshot of the environment a deployment runs with ("" when none).
  virtual Status SetDeploymentEnv(int64_t deployment_id, const std::string& sealed_env) = 0;
  virtual Result<std::string> GetDeploymentEnv(int64_t deployment_id) = 0;

  // Add-ons, unique by (environment, name). CreateAddon: kAlreadyExists when the name
  // is taken. UpdateAddon writes every field but id, environment_id, name, kind and
  // created_at. DeleteAddon removes its backup rows too (not their files).
  virtual Result<AddonRecord> CreateAddon(const AddonRecord& addon) = 0;
  virtual Status UpdateAddon(const AddonRecord& addon) = 0;
  virtual Result<AddonRecord> GetAddon(int64_t id) = 0;
  virtual Result<AddonRecord> FindAddon(int64_t environment_id, const std::string& name) = 0;
  virtual Result<std::vector<AddonRecord>> ListAddons(int64_t environment_id) = 0;  // 0: all
  virtual Status DeleteAddon(int64_t id) = 0;

  // Backups of an add-on. UpdateBackup writes status, path, bytes, sha256, error and
  // finished_at. ListBackups: newest first (addon_id 0: of every add-on).
  virtual Result<BackupRecord> CreateBackup(const BackupRecord& backup) = 0;
  virtual Status UpdateBackup(const BackupRecord& backup) = 0;
  virtual Result<BackupRecord> GetBackup(int64_t id) = 0;
  virtual Result<std::vector<BackupRecord>> ListBackups(int64_t addon_id) = 0;
  virtual Status DeleteBackup(int64_t id) = 0;

  // Cron runs. CreateCronRun: kAlreadyExists when the service has a run for that
  // scheduled slot already (trigger "schedule"), so a slot never runs twice whatever
  // restarts or deploys happen. UpdateCronRun writes status, exit_code, message, the
  // shim fields, started_at and finished_at. ListCronRuns: newest first, at most
  // `limit` (service 0: of every service). ListRunningCronRuns: status RUNNING, oldest first.
  virtual Result<CronRunRecord> CreateCronRun(const CronRunRecord& run) = 0;
  virtual Status UpdateCronRun(const CronRunRecord& run) = 0;
  virtual Result<CronRunRecord> GetCronRun(int64_t id) = 0;
  virtual Result<std::vector<CronRunRecord>> ListCronRuns(int64_t service_id, int limit) = 0;
  virtual Result<std::vector<CronRunRecord>> ListRunningCronRuns() = 0;
  // The latest scheduled slot the service has a run (or a skip) for; 0 when none.
  virtual Result<int64_t> LastCronSlot(int64_t service_id) = 0;

  // Events, append-only.
  virtual Status AddEvent(int64_t service_id, int64_t deployment_id, const std::string& kind,
                          const std::string& message) = 0;
  // Newest last; at most `limit` of the latest.
  virtual Result<std::vector<EventRecord>> ListEvents(int64_t service_id, int64_t deployment_id,
                                                      int limit) = 0;
};

}  // namespace slipway
