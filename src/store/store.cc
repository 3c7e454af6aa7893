#include "store/store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <mutex>
#include <string_view>
#include <utility>

namespace slipway {
namespace {

// Schema migrations, applied in order. Entry i takes the database from
// `PRAGMA user_version` i to i + 1. Never edit a released entry; append a new one.
//
// Zero ids in the records ("none") are stored as NULL so that foreign keys hold;
// sqlite3_column_int64 reads NULL back as 0.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE projects (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);

CREATE TABLE environments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id INTEGER NOT NULL REFERENCES projects(id),
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (project_id, name)
);

CREATE TABLE services (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id INTEGER NOT NULL REFERENCES projects(id),
  environment_id INTEGER NOT NULL REFERENCES environments(id),
  name TEXT NOT NULL,
  config_json TEXT NOT NULL DEFAULT '',
  active_deployment_id INTEGER REFERENCES deployments(id),
  created_at INTEGER NOT NULL,
  UNIQUE (environment_id, name)
);
CREATE INDEX services_by_project ON services(project_id);

CREATE TABLE deployments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  service_id INTEGER NOT NULL REFERENCES services(id),
  status TEXT NOT NULL,
  release_id INTEGER REFERENCES releases(id),
  source TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  config_json TEXT NOT NULL DEFAULT '',
  build_pgid INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER
);
CREATE INDEX deployments_by_service ON deployments(service_id, id);
CREATE INDEX deployments_by_status ON deployments(status, id);

CREATE TABLE releases (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  service_id INTEGER NOT NULL REFERENCES services(id),
  deployment_id INTEGER NOT NULL REFERENCES deployments(id),
  path TEXT NOT NULL,
  manifest_json TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);
CREATE INDEX releases_by_service ON releases(service_id, id);

CREATE TABLE replicas (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  deployment_id INTEGER NOT NULL REFERENCES deployments(id),
  idx INTEGER NOT NULL,
  port INTEGER NOT NULL DEFAULT 0,
  shim_pid INTEGER NOT NULL DEFAULT 0,
  shim_start_time INTEGER NOT NULL DEFAULT 0,
  app_pid INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,
  restarts INTEGER NOT NULL DEFAULT 0,
  run_dir TEXT NOT NULL DEFAULT '',
  log_path TEXT NOT NULL DEFAULT '',
  started_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX replicas_by_deployment ON replicas(deployment_id, idx);
CREATE INDEX replicas_by_state ON replicas(state);

CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  service_id INTEGER NOT NULL REFERENCES services(id),
  deployment_id INTEGER REFERENCES deployments(id),
  kind TEXT NOT NULL,
  message TEXT NOT NULL DEFAULT '',
  at INTEGER NOT NULL
);
CREATE INDEX events_by_service ON events(service_id, id);
CREATE INDEX events_by_deployment ON events(deployment_id, id);
)sql",
    // 2: custom domains of services.
    R"sql(
CREATE TABLE domains (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  service_id INTEGER NOT NULL REFERENCES services(id),
  host TEXT NOT NULL UNIQUE,
  cert_path TEXT NOT NULL DEFAULT '',
  key_path TEXT NOT NULL DEFAULT '',
  acme INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE INDEX domains_by_service ON domains(service_id, id);
)sql",
    // 3: replica counts set with `slipway scale`, kept across deploys.
    R"sql(
ALTER TABLE services ADD COLUMN scale INTEGER NOT NULL DEFAULT 0;
)sql",
    // 4: variables (values sealed) and the sealed environment each deployment runs with.
    R"sql(
CREATE TABLE variables (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  environment_id INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
  service TEXT NOT NULL DEFAULT '',
  name TEXT NOT NULL,
  sealed_value TEXT NOT NULL,
  secret INTEGER NOT NULL DEFAULT 1,
  source TEXT NOT NULL DEFAULT 'cli',
  from_config INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL,
  UNIQUE (environment_id, service, name, from_config)
);
ALTER TABLE deployments ADD COLUMN env_sealed TEXT NOT NULL DEFAULT '';
)sql",
    // 5: add-on servers and their backups; cron runs.
    R"sql(
CREATE TABLE addons (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  environment_id INTEGER NOT NULL REFERENCES environments(id),
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  port INTEGER NOT NULL DEFAULT 0,
  sealed_password TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL,
  error TEXT NOT NULL DEFAULT '',
  data_dir TEXT NOT NULL DEFAULT '',
  run_dir TEXT NOT NULL DEFAULT '',
  log_path TEXT NOT NULL DEFAULT '',
  shim_pid INTEGER NOT NULL DEFAULT 0,
  shim_start_time INTEGER NOT NULL DEFAULT 0,
  app_pid INTEGER NOT NULL DEFAULT 0,
  settings_json TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (environment_id, name)
);

CREATE TABLE backups (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  addon_id INTEGER NOT NULL REFERENCES addons(id),
  status TEXT NOT NULL,
  trigger TEXT NOT NULL DEFAULT '',
  path TEXT NOT NULL DEFAULT '',
  bytes INTEGER NOT NULL DEFAULT 0,
  sha256 TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  started_at INTEGER NOT NULL,
  finished_at INTEGER
);
CREATE INDEX backups_by_addon ON backups(addon_id, id);

CREATE TABLE cron_runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  service_id INTEGER NOT NULL REFERENCES services(id),
  deployment_id INTEGER REFERENCES deployments(id),
  trigger TEXT NOT NULL,
  scheduled_for INTEGER NOT NULL,
  status TEXT NOT NULL,
  exit_code INTEGER NOT NULL DEFAULT -1,
  message TEXT NOT NULL DEFAULT '',
  log_path TEXT NOT NULL DEFAULT '',
  run_dir TEXT NOT NULL DEFAULT '',
  shim_pid INTEGER NOT NULL DEFAULT 0,
  shim_start_time INTEGER NOT NULL DEFAULT 0,
  app_pid INTEGER NOT NULL DEFAULT 0,
  started_at INTEGER,
  finished_at INTEGER
);
CREATE INDEX cron_runs_by_service ON cron_runs(service_id, id);
CREATE INDEX cron_runs_by_status ON cron_runs(status, id);
CREATE UNIQUE INDEX cron_runs_one_per_slot ON cron_runs(service_id, scheduled_for)
  WHERE trigger = 'schedule';
)sql",
    // 6: git push (git/git.h): a project's production branch and the environment its
    // previews start from; the branch a preview environment deploys ('' for others).
    R"sql(
ALTER TABLE projects ADD COLUMN production_branch TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN preview_from TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN git_branch TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX environments_one_per_branch ON environments(project_id, git_branch)
  WHERE git_branch <> '';
)sql",
};

constexpr int kKnownVersion = static_cast<int>(std::size(kMigrations));

constexpr const char* kAllStatuses[] = {kQueued,   kBuilding,   kDeploying,   kActive,
                                        kDraining, kRemoved,    kBuildFailed, kDeployFailed,
                                        kCrashed,  kRolledBack, kSkipped};
constexpr const char* kTerminalStatuses[] = {kRemoved, kBuildFailed, kDeployFailed,
                                             kCrashed, kRolledBack,  kSkipped};

bool IsOneOf(std::string_view s, const auto& list) {
  for (const char* item : list) {
    if (s == item) return true;
  }
  return false;
}

constexpr const char* kProjectCols = "id, name, created_at, production_branch, preview_from";
constexpr const char* kEnvironmentCols = "id, project_id, name, created_at, git_branch";
constexpr const char* kServiceCols =
    "id, project_id, environment_id, name, config_json, active_deployment_id, created_at, scale";
constexpr const char* kDeploymentCols =
    "id, service_id, status, release_id, source, error, config_json, build_pgid, created_at, "
    "updated_at, finished_at";
constexpr const char* kReleaseCols =
    "id, service_id, deployment_id, path, manifest_json, created_at";
constexpr const char* kReplicaCols =
    "id, deployment_id, idx, port, shim_pid, shim_start_time, app_pid, state, restarts, run_dir, "
    "log_path, started_at, updated_at";
constexpr const char* kEventCols = "id, service_id, deployment_id, kind, message, at";
constexpr const char* kVariableCols =
    "id, environment_id, service, name, sealed_value, secret, source, updated_at";
constexpr const char* kAddonCols =
    "id, environment_id, name, kind, port, sealed_password, state, error, data_dir, run_dir, "
    "log_path, shim_pid, shim_start_time, app_pid, settings_json, created_at, updated_at";
constexpr const char* kBackupCols =
    "id, addon_id, status, trigger, path, bytes, sha256, error, started_at, finished_at";
constexpr const char* kCronRunCols =
    "id, service_id, deployment_id, trigger, scheduled_for, status, exit_code, message, log_path, "
    "run_dir, shim_pid, shim_start_time, app_pid, started_at, finished_at";
constexpr const char* kDomainCols = "id, service_id, host, cert_path, key_path, acme, created_at";

std::string Sql(const char* head, const char* cols, const char* tail) {
  return std::string(head) + cols + tail;
}

// An integer parameter bound as NULL when 0: the "none" of optional ids and of
// timestamps not reached yet.
struct ZeroAsNull {
  int64_t value;
};

// A cached prepared statement in use: binds parameters, steps, reads columns, and is
// reset for its next use when it goes out of scope.
class Statement {
 public:
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}
  ~Statement() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  // Parameters are numbered from 1, in the order given.
  template <typename... Args>
  void Bind(const Args&... args) {
    int index = 0;
    (BindOne(++index, args), ...);
  }
  void BindAt(int index, const std::string& v) { BindOne(index, v); }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const {
    const unsigned char* text = sqlite3_column_text(stmt_, col);
    if (text == nullptr) return "";
    return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt_, col));
  }

 private:
  void BindOne(int index, int64_t v) { sqlite3_bind_int64(stmt_, index, v); }
  void BindOne(int index, int v) { sqlite3_bind_int64(stmt_, index, v); }
  void BindOne(int index, std::nullptr_t) { sqlite3_bind_null(stmt_, index); }
  void BindOne(int index, const std::string& v) {
    sqlite3_bind_text(stmt_, index, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindOne(int index, const char* v) {
    sqlite3_bind_text(stmt_, index, v, -1, SQLITE_TRANSIENT);
  }
  void BindOne(int index, ZeroAsNull v) {
    if (v.value == 0) {
      sqlite3_bind_null(stmt_, index);
    } else {
      sqlite3_bind_int64(stmt_, index, v.value);
    }
  }

  sqlite3_stmt* stmt_;
};

ProjectRecord ReadProject(const Statement& s) {
  return ProjectRecord{.id = s.Int(0),
                       .name = s.Text(1),
                       .created_at = s.Int(2),
                       .production_branch = s.Text(3),
                       .preview_from = s.Text(4)};
}

EnvironmentRecord ReadEnvironment(const Statement& s) {
  return EnvironmentRecord{.id = s.Int(0),
                           .project_id = s.Int(1),
                           .name = s.Text(2),
                           .created_at = s.Int(3),
                           .git_branch = s.Text(4)};
}

ServiceRecord ReadService(const Statement& s) {
  return ServiceRecord{.id = s.Int(0),
                       .project_id = s.Int(1),
                       .environment_id = s.Int(2),
                       .name = s.Text(3),
                       .config_json = s.Text(4),
                       .active_deployment_id = s.Int(5),
                       .created_at = s.Int(6),
                       .scale = static_cast<int>(s.Int(7))};
}

DeploymentRecord ReadDeployment(const Statement& s) {
  return DeploymentRecord{.id = s.Int(0),
                          .service_id = s.Int(1),
                          .status = s.Text(2),
                          .release_id = s.Int(3),
                          .source = s.Text(4),
                          .error = s.Text(5),
                          .config_json = s.Text(6),
                          .build_pgid = s.Int(7),
                          .created_at = s.Int(8),
                          .updated_at = s.Int(9),
                          .finished_at = s.Int(10)};
}

ReleaseRecord ReadRelease(const Statement& s) {
  return ReleaseRecord{.id = s.Int(0),
                       .service_id = s.Int(1),
                       .deployment_id = s.Int(2),
                       .path = s.Text(3),
                       .manifest_json = s.Text(4),
                       .created_at = s.Int(5)};
}

DomainRecord ReadDomain(const Statement& s) {
  return DomainRecord{.id = s.Int(0),
                      .service_id = s.Int(1),
                      .host = s.Text(2),
                      .cert_path = s.Text(3),
                      .key_path = s.Text(4),
                      .acme = s.Int(5) != 0,
                      .created_at = s.Int(6)};
}

VariableRecord ReadVariable(const Statement& s) {
  return VariableRecord{.id = s.Int(0),
                        .environment_id = s.Int(1),
                        .service = s.Text(2),
                        .name = s.Text(3),
                        .sealed_value = s.Text(4),
                        .secret = s.Int(5) != 0,
                        .source = s.Text(6),
                        .updated_at = s.Int(7)};
}

ReplicaRecord ReadReplica(const Statement& s) {
  return ReplicaRecord{.id = s.Int(0),
                       .deployment_id = s.Int(1),
                       .index = static_cast<int>(s.Int(2)),
                       .port = static_cast<int>(s.Int(3)),
                       .shim_pid = s.Int(4),
                       .shim_start_time = s.Int(5),
                       .app_pid = s.Int(6),
                       .state = s.Text(7),
                       .restarts = static_cast<int>(s.Int(8)),
                       .run_dir = s.Text(9),
                       .log_path = s.Text(10),
                       .started_at = s.Int(11),
                       .updated_at = s.Int(12)};
}

AddonRecord ReadAddon(const Statement& s) {
  return AddonRecord{.id = s.Int(0),
                     .environment_id = s.Int(1),
                     .name = s.Text(2),
                     .kind = s.Text(3),
                     .port = static_cast<int>(s.Int(4)),
                     .sealed_password = s.Text(5),
                     .state = s.Text(6),
                     .error = s.Text(7),
                     .data_dir = s.Text(8),
                     .run_dir = s.Text(9),
                     .log_path = s.Text(10),
                     .shim_pid = s.Int(11),
                     .shim_start_time = s.Int(12),
                     .app_pid = s.Int(13),
                     .settings_json = s.Text(14),
                     .created_at = s.Int(15),
                     .updated_at = s.Int(16)};
}

BackupRecord ReadBackup(const Statement& s) {
  return BackupRecord{.id = s.Int(0),
                      .addon_id = s.Int(1),
                      .status = s.Text(2),
                      .trigger = s.Text(3),
                      .path = s.Text(4),
                      .bytes = s.Int(5),
                      .sha256 = s.Text(6),
                      .error = s.Text(7),
                      .started_at = s.Int(8),
                      .finished_at = s.Int(9)};
}

CronRunRecord ReadCronRun(const Statement& s) {
  return CronRunRecord{.id = s.Int(0),
                       .service_id = s.Int(1),
                       .deployment_id = s.Int(2),
                       .trigger = s.Text(3),
                       .scheduled_for = s.Int(4),
                       .status = s.Text(5),
                       .exit_code = static_cast<int>(s.Int(6)),
                       .message = s.Text(7),
                       .log_path = s.Text(8),
                       .run_dir = s.Text(9),
                       .shim_pid = s.Int(10),
                       .shim_start_time = s.Int(11),
                       .app_pid = s.Int(12),
                       .started_at = s.Int(13),
                       .finished_at = s.Int(14)};
}

EventRecord ReadEvent(const Statement& s) {
  return EventRecord{.id = s.Int(0),
                     .service_id = s.Int(1),
                     .deployment_id = s.Int(2),
                     .kind = s.Text(3),
                     .message = s.Text(4),
                     .at = s.Int(5)};
}

// Maps an SQLite result code to a Status whose message names the database file.
Status SqliteError(sqlite3* db, int rc, const std::string& path, std::string_view doing) {
  std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string where = "state.db at " + path + ": " + std::string(doing) + ": ";
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return ResourceExhausted(where + detail + "; free disk space on the disk holding " + path +
                               " and retry");
    case SQLITE_IOERR:
      return ResourceExhausted(where + detail + "; check that the disk holding " + path +
                               " has free space and is writable, then retry");
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return AlreadyExists(where + detail);
      }
      return Internal(where + detail);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Internal(where + detail +
                      "; another process holds the database; stop any other slipway server "
                      "using this data dir");
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return Internal(where + detail + "; move the file aside (or restore a backup) and restart");
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
      return Internal(where + detail + "; check the permissions of " + path + " and its directory");
    default:
      return Internal(where + detail);
  }
}

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, std::string path, const Clock& clock)
      : db_(db), path_(std::move(path)), clock_(clock) {}

  ~SqliteStore() override {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  // Sets the connection up and applies pending migrations. Called once, before the
  // Store is shared.
  Status Initialize() {
    std::lock_guard lock(mu_);
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 5000);

    // Refuse a newer schema before changing anything in the file.
    ASSIGN_OR_RETURN(int version, ReadUserVersion());
    RETURN_IF_ERROR(CheckVersion(version));

    ASSIGN_OR_RETURN(std::string mode, PragmaText("PRAGMA journal_mode=WAL"));
    if (mode != "wal") {
      return Internal("state.db at " + path_ + ": could not switch to WAL mode (journal mode is " +
                      mode + "); keep the data dir on a local filesystem");
    }
    RETURN_IF_ERROR(Exec("PRAGMA synchronous=NORMAL", "set synchronous"));
    RETURN_IF_ERROR(Exec("PRAGMA foreign_keys=ON", "enable foreign keys"));

    for (;;) {
      RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE", "begin migration"));
      // Read again inside the write lock: another process may have migrated meanwhile.
      Result<int> current = ReadUserVersion();
      Status st = current.ok() ? CheckVersion(*current) : current.status();
      if (st.ok() && *current == kKnownVersion) {
        version_ = *current;
        return Exec("COMMIT", "finish migration check");
      }
      if (st.ok()) {
        int next = *current + 1;
        st = Exec(kMigrations[*current], "apply migration " + std::to_string(next));
        if (st.ok()) {
          st = Exec("PRAGMA user_version=" + std::to_string(next),
                    "record schema version " + std::to_string(next));
        }
        if (st.ok()) st = Exec("COMMIT", "commit migration " + std::to_string(next));
      }
      if (!st.ok()) {
        RollbackIfOpen();
        return st;
      }
    }
  }

  int SchemaVersion() override {
    std::lock_guard lock(mu_);
    return version_;
  }

  // ---- Projects and environments ----

  Result<ProjectRecord> EnsureProject(const std::string& name) override {
    return Write([&]() -> Result<ProjectRecord> {
      auto existing = FindProjectLocked(name);
      if (existing.ok() || existing.status().code() != StatusCode::kNotFound) return existing;
      ASSIGN_OR_RETURN(ProjectRecord project,
                       InsertOne<ProjectRecord>(
                           Sql("INSERT INTO projects (name, created_at) VALUES (?, ?) RETURNING ",
                               kProjectCols, ""),
                           ReadProject, "create project " + name, name, Now()));
      ASSIGN_OR_RETURN(EnvironmentRecord env, EnsureEnvironmentLocked(project.id, "production"));
      (void)env;
      return project;
    });
  }

  Result<ProjectRecord> GetProject(const std::string& name) override {
    return Read([&] { return FindProjectLocked(name); });
  }

  Result<ProjectRecord> GetProjectById(int64_t id) override {
    return Read([&] {
      return QueryOne<ProjectRecord>(Sql("SELECT ", kProjectCols, " FROM projects WHERE id = ?"),
                                     ReadProject, "project " + std::to_string(id), id);
    });
  }

  Result<std::vector<ProjectRecord>> ListProjects() override {
    return Read([&] {
      return QueryAll<ProjectRecord>(Sql("SELECT ", kProjectCols, " FROM projects ORDER BY name"),
                                     ReadProject, "list projects");
    });
  }

  Result<EnvironmentRecord> EnsureEnvironment(int64_t project_id,
                                              const std::string& name) override {
    return Write([&] { return EnsureEnvironmentLocked(project_id, name); });
  }

  Result<EnvironmentRecord> GetEnvironment(int64_t project_id, const std::string& name) override {
    return Read([&] { return FindEnvironmentLocked(project_id, name); });
  }

  Result<EnvironmentRecord> GetEnvironmentById(int64_t id) override {
    return Read([&] {
      return QueryOne<EnvironmentRecord>(
          Sql("SELECT ", kEnvironmentCols, " FROM environments WHERE id = ?"), ReadEnvironment,
          "environment " + std::to_string(id), id);
    });
  }

  Result<std::vector<EnvironmentRecord>> ListEnvironments(int64_t project_id) override {
    return Read([&] {
      return QueryAll<EnvironmentRecord>(
          Sql("SELECT ", kEnvironmentCols,
              " FROM environments WHERE project_id = ? ORDER BY name != 'production', name"),
          ReadEnvironment, "list environments", project_id);
    });
  }

  Status SetProjectGitSettings(int64_t project_id, const std::string& production_branch,
                               const std::string& preview_from) override {
    return Write([&] {
      return UpdateOne("UPDATE projects SET production_branch = ?, preview_from = ? WHERE id = ?",
                       "project " + std::to_string(project_id), production_branch, preview_from,
                       project_id);
    });
  }

  Status SetEnvironmentBranch(int64_t environment_id, const std::string& branch) override {
    return Write([&] {
      return UpdateOne("UPDATE environments SET git_branch = ? WHERE id = ?",
                       "environment " + std::to_string(environment_id), branch, environment_id);
    });
  }

  Status DeleteEnvironment(int64_t id) override {
    return Write([&]() -> Status {
      RETURN_IF_ERROR(GetEnvironmentLocked(id).status());
      // Services point at deployments, deployments at releases and releases back at
      // deployments: cut those links first, then delete from the leaves up.
      constexpr const char* kInEnv = "(SELECT id FROM services WHERE environment_id = ?)";
      constexpr const char* kDepsInEnv =
          "(SELECT id FROM deployments WHERE service_id IN (SELECT id FROM services WHERE "
          "environment_id = ?))";
      RETURN_IF_ERROR(
          Run(Sql("UPDATE services SET active_deployment_id = NULL WHERE id IN ", kInEnv, ""),
              "unlink active deployments", id));
      RETURN_IF_ERROR(
          Run(Sql("UPDATE deployments SET release_id = NULL WHERE service_id IN ", kInEnv, ""),
              "unlink releases", id));
      RETURN_IF_ERROR(
          Run(Sql("DELETE FROM events WHERE service_id IN ", kInEnv, ""), "delete events", id));
      RETURN_IF_ERROR(Run(Sql("DELETE FROM cron_runs WHERE service_id IN ", kInEnv, ""),
                          "delete cron runs", id));
      RETURN_IF_ERROR(Run(
          "DELETE FROM backups WHERE addon_id IN (SELECT id FROM addons WHERE environment_id = ?)",
          "delete backups", id));
      RETURN_IF_ERROR(Run("DELETE FROM addons WHERE environment_id = ?", "delete add-ons", id));
      RETURN_IF_ERROR(Run(Sql("DELETE FROM replicas WHERE deployment_id IN ", kDepsInEnv, ""),
                          "delete replicas", id));
      RETURN_IF_ERROR(
          Run(Sql("DELETE FROM domains WHERE service_id IN ", kInEnv, ""), "delete domains", id));
      RETURN_IF_ERROR(
          Run(Sql("DELETE FROM releases WHERE service_id IN ", kInEnv, ""), "delete releases", id));
      RETURN_IF_ERROR(Run(Sql("DELETE FROM deployments WHERE service_id IN ", kInEnv, ""),
                          "delete deployments", id));
      RETURN_IF_ERROR(Run("DELETE FROM services WHERE environment_id = ?", "delete services", id));
      return Run("DELETE FROM environments WHERE id = ?", "delete environment", id);
    });
  }

  // ---- Services ----

  Result<ServiceRecord> EnsureService(int64_t project_id, int64_t environment_id,
                                      const std::string& name) override {
    return Write([&]() -> Result<ServiceRecord> {
      ASSIGN_OR_RETURN(EnvironmentRecord env, GetEnvironmentLocked(environment_id));
      if (env.project_id != project_id) {
        return InvalidArgument("environment " + std::to_string(environment_id) + " (" + env.name +
                               ") belongs to project " + std::to_string(env.project_id) +
                               ", not project " + std::to_string(project_id));
      }
      auto existing = FindServiceLocked(environment_id, name);
      if (existing.ok() || existing.status().code() != StatusCode::kNotFound) return existing;
      return InsertOne<ServiceRecord>(
          Sql("INSERT INTO services (project_id, environment_id, name, created_at) "
              "VALUES (?, ?, ?, ?) RETURNING ",
              kServiceCols, ""),
          ReadService, "create service " + name, project_id, environment_id, name, Now());
    });
  }

  Result<ServiceRecord> GetService(int64_t id) override {
    return Read([&] { return GetServiceLocked(id); });
  }

  Result<ServiceRecord> FindService(int64_t environment_id, const std::string& name) override {
    return Read([&] { return FindServiceLocked(environment_id, name); });
  }

  Result<std::vector<ServiceRecord>> ListServices(int64_t environment_id) override {
    return Read([&] {
      return QueryAll<ServiceRecord>(
          Sql("SELECT ", kServiceCols, " FROM services WHERE environment_id = ? ORDER BY name"),
          ReadService, "list services", environment_id);
    });
  }

  Status SetServiceConfig(int64_t service_id, const std::string& config_json) override {
    return Write([&] {
      return UpdateOne("UPDATE services SET config_json = ? WHERE id = ?",
                       "service " + std::to_string(service_id), config_json, service_id);
    });
  }

  Status SetServiceScale(int64_t service_id, int replicas) override {
    return Write([&] {
      return UpdateOne("UPDATE services SET scale = ? WHERE id = ?",
                       "service " + std::to_string(service_id), static_cast<int64_t>(replicas),
                       service_id);
    });
  }

  Status SetDeploymentConfig(int64_t id, const std::string& config_json) override {
    return Write([&] {
      return UpdateOne("UPDATE deployments SET config_json = ?, updated_at = ? WHERE id = ?",
                       "deployment " + std::to_string(id), config_json, Now(), id);
    });
  }

  Status SetActiveDeployment(int64_t service_id, int64_t deployment_id) override {
    return Write([&]() -> Status {
      if (deployment_id != 0) {
        ASSIGN_OR_RETURN(DeploymentRecord d, GetDeploymentLocked(deployment_id));
        if (d.service_id != service_id) {
          return InvalidArgument("deployment " + std::to_string(deployment_id) +
                                 " belongs to service " + std::to_string(d.service_id) +
                                 ", not service " + std::to_string(service_id));
        }
      }
      return UpdateOne("UPDATE services SET active_deployment_id = ? WHERE id = ?",
                       "service " + std::to_string(service_id), ZeroAsNull{deployment_id},
                       service_id);
    });
  }

  // ---- Deployments ----

  Result<DeploymentRecord> CreateDeployment(int64_t service_id, const std::string& source,
                                            const std::string& config_json) override {
    return Write([&]() -> Result<DeploymentRecord> {
      RETURN_IF_ERROR(GetServiceLocked(service_id).status());
      int64_t now = Now();
      return InsertOne<DeploymentRecord>(
          Sql("INSERT INTO deployments (service_id, status, source, config_json, created_at, "
              "updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING ",
              kDeploymentCols, ""),
          ReadDeployment, "create deployment", service_id, kQueued, source, config_json, now, now);
    });
  }

  Result<DeploymentRecord> GetDeployment(int64_t id) override {
    return Read([&] { return GetDeploymentLocked(id); });
  }

  Result<std::vector<DeploymentRecord>> ListDeployments(int64_t service_id, int limit) override {
    return Read([&] {
      return QueryAll<DeploymentRecord>(
          Sql("SELECT ", kDeploymentCols,
              " FROM deployments WHERE service_id = ? ORDER BY id DESC LIMIT ?"),
          ReadDeployment, "list deployments", service_id, SqlLimit(limit));
    });
  }

  Result<std::vector<DeploymentRecord>> ListDeploymentsByStatus(
      const std::vector<std::string>& statuses) override {
    if (statuses.empty()) return std::vector<DeploymentRecord>{};
    // One cached statement per list length; callers use a handful of fixed lists.
    std::string sql = Sql("SELECT ", kDeploymentCols, " FROM deployments WHERE status IN (?");
    for (size_t i = 1; i < statuses.size(); ++i) sql += ", ?";
    sql += ") ORDER BY id";
    return Read([&]() -> Result<std::vector<DeploymentRecord>> {
      ASSIGN_OR_RETURN(Statement stmt, Prepare(sql));
      for (size_t i = 0; i < statuses.size(); ++i) {
        stmt.BindAt(static_cast<int>(i + 1), statuses[i]);
      }
      return Collect<DeploymentRecord>(stmt, ReadDeployment, "list deployments by status");
    });
  }

  Status SetDeploymentStatus(int64_t id, const std::string& status,
                             const std::string& error) override {
    if (!IsOneOf(status, kAllStatuses)) {
      return InvalidArgument("unknown deployment status \"" + status +
                             "\"; expected one of QUEUED, BUILDING, DEPLOYING, ACTIVE, DRAINING, "
                             "REMOVED, BUILD_FAILED, DEPLOY_FAILED, CRASHED, ROLLED_BACK, SKIPPED");
    }
    return Write([&] {
      int64_t now = Now();
      ZeroAsNull finished{IsOneOf(status, kTerminalStatuses) ? now : 0};
      std::string sql =
          "UPDATE deployments SET status = ?, error = COALESCE(?, error), updated_at = ?, "
          "finished_at = COALESCE(?, finished_at) WHERE id = ?";
      if (error.empty()) {
        return UpdateOne(sql, "deployment " + std::to_string(id), status, nullptr, now, finished,
                         id);
      }
      return UpdateOne(sql, "deployment " + std::to_string(id), status, error, now, finished, id);
    });
  }

  Status SetDeploymentRelease(int64_t id, int64_t release_id) override {
    return Write([&]() -> Status {
      if (release_id != 0) RETURN_IF_ERROR(GetReleaseLocked(release_id).status());
      return UpdateOne("UPDATE deployments SET release_id = ?, updated_at = ? WHERE id = ?",
                       "deployment " + std::to_string(id), ZeroAsNull{release_id}, Now(), id);
    });
  }

  Status SetDeploymentBuildPgid(int64_t id, int64_t pgid) override {
    return Write([&] {
      return UpdateOne("UPDATE deployments SET build_pgid = ?, updated_at = ? WHERE id = ?",
                       "deployment " + std::to_string(id), pgid, Now(), id);
    });
  }

  // ---- Releases ----

  Result<ReleaseRecord> CreateRelease(int64_t service_id, int64_t deployment_id,
                                      const std::string& path,
                                      const std::string& manifest_json) override {
    return Write([&]() -> Result<ReleaseRecord> {
      RETURN_IF_ERROR(GetServiceLocked(service_id).status());
      ASSIGN_OR_RETURN(DeploymentRecord d, GetDeploymentLocked(deployment_id));
      if (d.service_id != service_id) {
        return InvalidArgument("deployment " + std::to_string(deployment_id) +
                               " belongs to service " + std::to_string(d.service_id) +
                               ", not service " + std::to_string(service_id));
      }
      return InsertOne<ReleaseRecord>(
          Sql("INSERT INTO releases (service_id, deployment_id, path, manifest_json, created_at) "
              "VALUES (?, ?, ?, ?, ?) RETURNING ",
              kReleaseCols, ""),
          ReadRelease, "create release", service_id, deployment_id, path, manifest_json, Now());
    });
  }

  Result<ReleaseRecord> GetRelease(int64_t id) override {
    return Read([&] { return GetReleaseLocked(id); });
  }

  Result<std::vector<ReleaseRecord>> ListReleases(int64_t service_id) override {
    return Read([&] {
      return QueryAll<ReleaseRecord>(
          Sql("SELECT ", kReleaseCols, " FROM releases WHERE service_id = ? ORDER BY id DESC"),
          ReadRelease, "list releases", service_id);
    });
  }

  // ---- Replicas ----

  Result<int64_t> UpsertReplica(const ReplicaRecord& r) override {
    return Write([&]() -> Result<int64_t> {
      RETURN_IF_ERROR(GetDeploymentLocked(r.deployment_id).status());
      int64_t now = Now();
      if (r.id == 0) {
        ASSIGN_OR_RETURN(
            ReplicaRecord inserted,
            InsertOne<ReplicaRecord>(
                Sql("INSERT INTO replicas (deployment_id, idx, port, shim_pid, shim_start_time, "
                    "app_pid, state, restarts, run_dir, log_path, started_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
                    kReplicaCols, ""),
                ReadReplica, "create replica", r.deployment_id, r.index, r.port, r.shim_pid,
                r.shim_start_time, r.app_pid, r.state, r.restarts, r.run_dir, r.log_path,
                r.started_at != 0 ? r.started_at : now, now));
        return inserted.id;
      }
      RETURN_IF_ERROR(UpdateOne(
          "UPDATE replicas SET deployment_id = ?, idx = ?, port = ?, shim_pid = ?, "
          "shim_start_time = ?, app_pid = ?, state = ?, restarts = ?, run_dir = ?, log_path = ?, "
          "started_at = COALESCE(?, started_at), updated_at = ? WHERE id = ?",
          "replica " + std::to_string(r.id), r.deployment_id, r.index, r.port, r.shim_pid,
          r.shim_start_time, r.app_pid, r.state, r.restarts, r.run_dir, r.log_path,
          ZeroAsNull{r.started_at}, now, r.id));
      return r.id;
    });
  }

  Result<std::vector<ReplicaRecord>> ListReplicas(int64_t deployment_id) override {
    return Read([&] {
      return QueryAll<ReplicaRecord>(
          Sql("SELECT ", kReplicaCols, " FROM replicas WHERE deployment_id = ? ORDER BY idx, id"),
          ReadReplica, "list replicas", deployment_id);
    });
  }

  Result<std::vector<ReplicaRecord>> ListLiveReplicas() override {
    return Read([&] {
      return QueryAll<ReplicaRecord>(
          Sql("SELECT ", kReplicaCols, " FROM replicas WHERE state != 'stopped' ORDER BY id"),
          ReadReplica, "list live replicas");
    });
  }

  // ---- Domains ----

  Result<DomainRecord> AddDomain(const DomainRecord& d) override {
    return Write([&]() -> Result<DomainRecord> {
      RETURN_IF_ERROR(GetServiceLocked(d.service_id).status());
      auto existing =
          QueryOne<DomainRecord>(Sql("SELECT ", kDomainCols, " FROM domains WHERE host = ?"),
                                 ReadDomain, "domain " + d.host, d.host);
      if (existing.ok()) {
        return AlreadyExists("domain " + d.host + " is already routed to service " +
                             std::to_string(existing->service_id) +
                             "; remove it first with `slipway domains remove " + d.host + "`");
      }
      return InsertOne<DomainRecord>(
          Sql("INSERT INTO domains (service_id, host, cert_path, key_path, acme, created_at) "
              "VALUES (?, ?, ?, ?, ?, ?) RETURNING ",
              kDomainCols, ""),
          ReadDomain, "add domain", d.service_id, d.host, d.cert_path, d.key_path,
          static_cast<int64_t>(d.acme ? 1 : 0), Now());
    });
  }

  Result<std::vector<DomainRecord>> ListDomains(int64_t service_id) override {
    return Read([&] {
      if (service_id == 0) {
        return QueryAll<DomainRecord>(Sql("SELECT ", kDomainCols, " FROM domains ORDER BY host"),
                                      ReadDomain, "list domains");
      }
      return QueryAll<DomainRecord>(
          Sql("SELECT ", kDomainCols, " FROM domains WHERE service_id = ? ORDER BY host"),
          ReadDomain, "list domains", service_id);
    });
  }

  Status RemoveDomain(const std::string& host) override {
    return Write([&]() -> Status {
      RETURN_IF_ERROR(Run("DELETE FROM domains WHERE host = ?", "remove domain", host));
      if (sqlite3_changes(db_) == 0) return NotFound("no domain " + host + " is configured");
      return Status::Ok();
    });
  }

  // ---- Variables ----

  Status SetVariables(const std::vector<VariableRecord>& variables) override {
    return Write([&]() -> Status {
      for (const auto& v : variables) {
        RETURN_IF_ERROR(GetEnvironmentLocked(v.environment_id).status());
        RETURN_IF_ERROR(InsertVariableLocked(v, /*from_config=*/false));
      }
      return Status::Ok();
    });
  }

  Status DeleteVariables(int64_t environment_id, const std::string& service,
                         const std::vector<std::string>& names) override {
    return Write([&]() -> Status {
      for (const auto& name : names) {
        RETURN_IF_ERROR(
            Run("DELETE FROM variables WHERE environment_id = ? AND service = ? AND "
                "name = ? AND from_config = 0",
                "unset variable", environment_id, service, name));
        if (sqlite3_changes(db_) == 0) {
          return NotFound(
              "no variable " + name + " is set " +
              (service.empty() ? std::string("as shared") : "for service \"" + service + "\""));
        }
      }
      return Status::Ok();
    });
  }

  Status ReplaceConfigVariables(int64_t environment_id, const std::string& service,
                                const std::vector<VariableRecord>& variables) override {
    return Write([&]() -> Status {
      RETURN_IF_ERROR(
          Run("DELETE FROM variables WHERE environment_id = ? AND service = ? AND from_config = 1",
              "replace config variables", environment_id, service));
      for (VariableRecord v : variables) {
        v.environment_id = environment_id;
        v.service = service;
        v.source = "config";
        RETURN_IF_ERROR(InsertVariableLocked(v, /*from_config=*/true));
      }
      return Status::Ok();
    });
  }

  Result<std::vector<VariableRecord>> ListVariables(int64_t environment_id) override {
    return Read([&] {
      if (environment_id == 0) {
        return QueryAll<VariableRecord>(
            Sql("SELECT ", kVariableCols, " FROM variables ORDER BY environment_id, service, name"),
            ReadVariable, "list variables");
      }
      return QueryAll<VariableRecord>(
          Sql("SELECT ", kVariableCols,
              " FROM variables WHERE environment_id = ? ORDER BY service, name, from_config"),
          ReadVariable, "list variables", environment_id);
    });
  }

  Status SetDeploymentEnv(int64_t deployment_id, const std::string& sealed_env) override {
    return Write([&] {
      return UpdateOne("UPDATE deployments SET env_sealed = ? WHERE id = ?",
                       "deployment " + std::to_string(deployment_id), sealed_env, deployment_id);
    });
  }

  Result<std::string> GetDeploymentEnv(int64_t deployment_id) override {
    return Read([&]() -> Result<std::string> {
      ASSIGN_OR_RETURN(Statement stmt, Prepare("SELECT env_sealed FROM deployments WHERE id = ?"));
      stmt.Bind(deployment_id);
      int rc = stmt.Step();
      if (rc == SQLITE_DONE) return NotFound("deployment " + std::to_string(deployment_id));
      if (rc != SQLITE_ROW) return SqliteError(db_, rc, path_, "read a deployment's environment");
      return stmt.Text(0);
    });
  }

  // ---- Add-ons ----

  Result<AddonRecord> CreateAddon(const AddonRecord& a) override {
    return Write([&]() -> Result<AddonRecord> {
      ASSIGN_OR_RETURN(EnvironmentRecord env, GetEnvironmentLocked(a.environment_id));
      auto existing = QueryOne<AddonRecord>(
          Sql("SELECT ", kAddonCols, " FROM addons WHERE environment_id = ? AND name = ?"),
          ReadAddon, "add-on " + a.name, a.environment_id, a.name);
      if (existing.ok()) {
        return AlreadyExists("the " + env.name + " environment has an add-on named \"" + a.name +
                             "\" already (" + existing->kind + ")");
      }
      int64_t now = Now();
      return InsertOne<AddonRecord>(
          Sql("INSERT INTO addons (environment_id, name, kind, port, sealed_password, state, "
              "error, data_dir, run_dir, log_path, shim_pid, shim_start_time, app_pid, "
              "settings_json, created_at, updated_at) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
              kAddonCols, ""),
          ReadAddon, "create add-on " + a.name, a.environment_id, a.name, a.kind, a.port,
          a.sealed_password, a.state, a.error, a.data_dir, a.run_dir, a.log_path, a.shim_pid,
          a.shim_start_time, a.app_pid, a.settings_json, now, now);
    });
  }

  Status UpdateAddon(const AddonRecord& a) override {
    return Write([&] {
      return UpdateOne(
          "UPDATE addons SET port = ?, sealed_password = ?, state = ?, error = ?, data_dir = ?, "
          "run_dir = ?, log_path = ?, shim_pid = ?, shim_start_time = ?, app_pid = ?, "
          "settings_json = ?, updated_at = ? WHERE id = ?",
          "add-on " + std::to_string(a.id), a.port, a.sealed_password, a.state, a.error, a.data_dir,
          a.run_dir, a.log_path, a.shim_pid, a.shim_start_time, a.app_pid, a.settings_json, Now(),
          a.id);
    });
  }

  Result<AddonRecord> GetAddon(int64_t id) override {
    return Read([&] {
      return QueryOne<AddonRecord>(Sql("SELECT ", kAddonCols, " FROM addons WHERE id = ?"),
                                   ReadAddon, "add-on " + std::to_string(id), id);
    });
  }

  Result<AddonRecord> FindAddon(int64_t environment_id, const std::string& name) override {
    return Read([&] {
      return QueryOne<AddonRecord>(
          Sql("SELECT ", kAddonCols, " FROM addons WHERE environment_id = ? AND name = ?"),
          ReadAddon, "add-on " + name, environment_id, name);
    });
  }

  Result<std::vector<AddonRecord>> ListAddons(int64_t environment_id) override {
    return Read([&] {
      if (environment_id == 0) {
        return QueryAll<AddonRecord>(Sql("SELECT ", kAddonCols, " FROM addons ORDER BY id"),
                                     ReadAddon, "list add-ons");
      }
      return QueryAll<AddonRecord>(
          Sql("SELECT ", kAddonCols, " FROM addons WHERE environment_id = ? ORDER BY id"),
          ReadAddon, "list add-ons", environment_id);
    });
  }

  Status DeleteAddon(int64_t id) override {
    return Write([&]() -> Status {
      RETURN_IF_ERROR(Run("DELETE FROM backups WHERE addon_id = ?", "delete backups", id));
      RETURN_IF_ERROR(Run("DELETE FROM addons WHERE id = ?", "delete add-on", id));
      if (sqlite3_changes(db_) == 0) return NotFound("add-on " + std::to_string(id) + " not found");
      return Status::Ok();
    });
  }

  // ---- Backups ----

  Result<BackupRecord> CreateBackup(const BackupRecord& b) override {
    return Write([&]() -> Result<BackupRecord> {
      RETURN_IF_ERROR(QueryOne<AddonRecord>(Sql("SELECT ", kAddonCols, " FROM addons WHERE id = ?"),
                                            ReadAddon, "add-on " + std::to_string(b.addon_id),
                                            b.addon_id)
                          .status());
      return InsertOne<BackupRecord>(
          Sql("INSERT INTO backups (addon_id, status, trigger, path, bytes, sha256, error, "
              "started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
              kBackupCols, ""),
          ReadBackup, "create backup", b.addon_id, b.status, b.trigger, b.path, b.bytes, b.sha256,
          b.error, b.started_at != 0 ? b.started_at : Now(), ZeroAsNull{b.finished_at});
    });
  }

  Status UpdateBackup(const BackupRecord& b) override {
    return Write([&] {
      return UpdateOne(
          "UPDATE backups SET status = ?, path = ?, bytes = ?, sha256 = ?, error = ?, "
          "finished_at = ? WHERE id = ?",
          "backup " + std::to_string(b.id), b.status, b.path, b.bytes, b.sha256, b.error,
          ZeroAsNull{b.finished_at}, b.id);
    });
  }

  Result<BackupRecord> GetBackup(int64_t id) override {
    return Read([&] {
      return QueryOne<BackupRecord>(Sql("SELECT ", kBackupCols, " FROM backups WHERE id = ?"),
                                    ReadBackup, "backup " + std::to_string(id), id);
    });
  }

  Result<std::vector<BackupRecord>> ListBackups(int64_t addon_id) override {
    return Read([&] {
      if (addon_id == 0) {
        return QueryAll<BackupRecord>(Sql("SELECT ", kBackupCols, " FROM backups ORDER BY id DESC"),
                                      ReadBackup, "list backups");
      }
      return QueryAll<BackupRecord>(
          Sql("SELECT ", kBackupCols, " FROM backups WHERE addon_id = ? ORDER BY id DESC"),
          ReadBackup, "list backups", addon_id);
    });
  }

  Status DeleteBackup(int64_t id) override {
    return Write([&]() -> Status {
      RETURN_IF_ERROR(Run("DELETE FROM backups WHERE id = ?", "delete backup", id));
      if (sqlite3_changes(db_) == 0) return NotFound("backup " + std::to_string(id) + " not found");
      return Status::Ok();
    });
  }

  // ---- Cron runs ----

  Result<CronRunRecord> CreateCronRun(const CronRunRecord& r) override {
    return Write([&]() -> Result<CronRunRecord> {
      RETURN_IF_ERROR(GetServiceLocked(r.service_id).status());
      if (r.deployment_id != 0) RETURN_IF_ERROR(GetDeploymentLocked(r.deployment_id).status());
      auto inserted = InsertOne<CronRunRecord>(
          Sql("INSERT INTO cron_runs (service_id, deployment_id, trigger, scheduled_for, status, "
              "exit_code, message, log_path, run_dir, shim_pid, shim_start_time, app_pid, "
              "started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
              "RETURNING ",
              kCronRunCols, ""),
          ReadCronRun, "create cron run", r.service_id, ZeroAsNull{r.deployment_id}, r.trigger,
          r.scheduled_for, r.status, r.exit_code, r.message, r.log_path, r.run_dir, r.shim_pid,
          r.shim_start_time, r.app_pid, ZeroAsNull{r.started_at}, ZeroAsNull{r.finished_at});
      if (!inserted.ok() && inserted.status().code() == StatusCode::kAlreadyExists) {
        return AlreadyExists("the slot at " + FormatTimestamp(r.scheduled_for) + " of service " +
                             std::to_string(r.service_id) + " has a run already");
      }
      return inserted;
    });
  }

  Status UpdateCronRun(const CronRunRecord& r) override {
    return Write([&] {
      return UpdateOne(
          "UPDATE cron_runs SET status = ?, exit_code = ?, message = ?, log_path = ?, "
          "run_dir = ?, shim_pid = ?, shim_start_time = ?, app_pid = ?, started_at = ?, "
          "finished_at = ? WHERE id = ?",
          "cron run " + std::to_string(r.id), r.status, r.exit_code, r.message, r.log_path,
          r.run_dir, r.shim_pid, r.shim_start_time, r.app_pid, ZeroAsNull{r.started_at},
          ZeroAsNull{r.finished_at}, r.id);
    });
  }

  Result<CronRunRecord> GetCronRun(int64_t id) override {
    return Read([&] {
      return QueryOne<CronRunRecord>(Sql("SELECT ", kCronRunCols, " FROM cron_runs WHERE id = ?"),
                                     ReadCronRun, "cron run " + std::to_string(id), id);
    });
  }

  Result<std::vector<CronRunRecord>> ListCronRuns(int64_t service_id, int limit) override {
    return Read([&] {
      if (service_id == 0) {
        return QueryAll<CronRunRecord>(
            Sql("SELECT ", kCronRunCols, " FROM cron_runs ORDER BY id DESC LIMIT ?"), ReadCronRun,
            "list cron runs", SqlLimit(limit));
      }
      return QueryAll<CronRunRecord>(
          Sql("SELECT ", kCronRunCols,
              " FROM cron_runs WHERE service_id = ? ORDER BY id DESC LIMIT ?"),
          ReadCronRun, "list cron runs", service_id, SqlLimit(limit));
    });
  }

  Result<std::vector<CronRunRecord>> ListRunningCronRuns() override {
    return Read([&] {
      return QueryAll<CronRunRecord>(
          Sql("SELECT ", kCronRunCols, " FROM cron_runs WHERE status = ? ORDER BY id"), ReadCronRun,
          "list running cron runs", kRunRunning);
    });
  }

  Result<int64_t> LastCronSlot(int64_t service_id) override {
    return Read([&]() -> Result<int64_t> {
      ASSIGN_OR_RETURN(
          Statement stmt,
          Prepare("SELECT COALESCE(MAX(scheduled_for), 0) FROM cron_runs WHERE service_id = ? "
                  "AND trigger = 'schedule'"));
      stmt.Bind(service_id);
      int rc = stmt.Step();
      if (rc != SQLITE_ROW) return SqliteError(db_, rc, path_, "read the last cron slot");
      return stmt.Int(0);
    });
  }

  // ---- Events ----

  Status AddEvent(int64_t service_id, int64_t deployment_id, const std::string& kind,
                  const std::string& message) override {
    return Write([&]() -> Status {
      RETURN_IF_ERROR(GetServiceLocked(service_id).status());
      if (deployment_id != 0) RETURN_IF_ERROR(GetDeploymentLocked(deployment_id).status());
      return Run(
          "INSERT INTO events (service_id, deployment_id, kind, message, at) "
          "VALUES (?, ?, ?, ?, ?)",
          "add event", service_id, ZeroAsNull{deployment_id}, kind, message, Now());
    });
  }

  Result<std::vector<EventRecord>> ListEvents(int64_t service_id, int64_t deployment_id,
                                              int limit) override {
    return Read([&] {
      // The latest `limit`, then back into chronological order.
      if (deployment_id == 0) {
        return QueryAll<EventRecord>(
            Sql("SELECT * FROM (SELECT ", kEventCols,
                " FROM events WHERE service_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id"),
            ReadEvent, "list events", service_id, SqlLimit(limit));
      }
      return QueryAll<EventRecord>(
          Sql("SELECT * FROM (SELECT ", kEventCols,
              " FROM events WHERE service_id = ? AND deployment_id = ? ORDER BY id DESC LIMIT ?) "
              "ORDER BY id"),
          ReadEvent, "list events", service_id, deployment_id, SqlLimit(limit));
    });
  }

 private:
  int64_t Now() const { return UnixMillis(clock_); }

  // A non-positive limit means no limit.
  static int64_t SqlLimit(int limit) { return limit > 0 ? limit : -1; }

  // Runs `body` under the lock in one transaction: committed when it returns OK,
  // rolled back otherwise.
  template <typename F>
  auto Transaction(const char* begin, F&& body) -> decltype(body()) {
    std::lock_guard lock(mu_);
    RETURN_IF_ERROR(Exec(begin, "begin transaction"));
    auto result = body();
    if (!result.ok()) {
      RollbackIfOpen();
      return result;
    }
    Status commit = Exec("COMMIT", "commit");
    if (!commit.ok()) {
      RollbackIfOpen();
      return commit;
    }
    return result;
  }
  template <typename F>
  auto Write(F&& body) -> decltype(body()) {
    return Transaction("BEGIN IMMEDIATE", std::forward<F>(body));
  }
  template <typename F>
  auto Read(F&& body) -> decltype(body()) {
    return Transaction("BEGIN", std::forward<F>(body));
  }

  // After SQLITE_FULL or an I/O error SQLite may already have rolled back.
  void RollbackIfOpen() {
    if (sqlite3_get_autocommit(db_) == 0) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  Status Exec(const std::string& sql, std::string_view doing) {
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, path_, doing);
    return Status::Ok();
  }

  Result<std::string> PragmaText(const std::string& sql) {
    ASSIGN_OR_RETURN(Statement stmt, Prepare(sql));
    int rc = stmt.Step();
    if (rc != SQLITE_ROW) return SqliteError(db_, rc, path_, sql);
    return stmt.Text(0);
  }

  Result<int> ReadUserVersion() {
    ASSIGN_OR_RETURN(std::string v, PragmaText("PRAGMA user_version"));
    return std::stoi(v);
  }

  Status CheckVersion(int version) const {
    if (version > kKnownVersion) {
      return FailedPrecondition(path_ + " has schema version " + std::to_string(version) +
                                " but this slipway knows up to " + std::to_string(kKnownVersion) +
                                "; upgrade slipway");
    }
    return Status::Ok();
  }

  Result<Statement> Prepare(const std::string& sql) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return Statement(it->second);
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, path_, "prepare \"" + sql + "\"");
    statements_.emplace(sql, stmt);
    return Statement(stmt);
  }

  template <typename T, typename Reader>
  Result<std::vector<T>> Collect(Statement& stmt, Reader read, std::string_view doing) {
    std::vector<T> out;
    for (;;) {
      int rc = stmt.Step();
      if (rc == SQLITE_DONE) return out;
      if (rc != SQLITE_ROW) return SqliteError(db_, rc, path_, doing);
      out.push_back(read(stmt));
    }
  }

  template <typename T, typename Reader, typename... Args>
  Result<std::vector<T>> QueryAll(const std::string& sql, Reader read, std::string_view doing,
                                  const Args&... args) {
    ASSIGN_OR_RETURN(Statement stmt, Prepare(sql));
    stmt.Bind(args...);
    return Collect<T>(stmt, read, doing);
  }

  // The single row `sql` selects, or kNotFound "<what> not found".
  template <typename T, typename Reader, typename... Args>
  Result<T> QueryOne(const std::string& sql, Reader read, const std::string& what,
                     const Args&... args) {
    ASSIGN_OR_RETURN(Statement stmt, Prepare(sql));
    stmt.Bind(args...);
    int rc = stmt.Step();
    if (rc == SQLITE_DONE) return NotFound(what + " not found");
    if (rc != SQLITE_ROW) return SqliteError(db_, rc, path_, "read " + what);
    return read(stmt);
  }

  // An INSERT ... RETURNING: the inserted row.
  template <typename T, typename Reader, typename... Args>
  Result<T> InsertOne(const std::string& sql, Reader read, const std::string& doing,
                      const Args&... args) {
    ASSIGN_OR_RETURN(Statement stmt, Prepare(sql));
    stmt.Bind(args...);
    int rc = stmt.Step();
    if (rc != SQLITE_ROW) return SqliteError(db_, rc, path_, doing);
    T row = read(stmt);
    // RETURNING rows are produced before the statement finishes; run it to the end.
    rc = stmt.Step();
    if (rc != SQLITE_DONE) return SqliteError(db_, rc, path_, doing);
    return row;
  }

  template <typename... Args>
  Status Run(const std::string& sql, std::string_view doing, const Args&... args) {
    ASSIGN_OR_RETURN(Statement stmt, Prepare(sql));
    stmt.Bind(args...);
    int rc = stmt.Step();
    if (rc != SQLITE_DONE) return SqliteError(db_, rc, path_, doing);
    return Status::Ok();
  }

  // An UPDATE of one row by id: kNotFound "<what> not found" when no row matched.
  template <typename... Args>
  Status UpdateOne(const std::string& sql, const std::string& what, const Args&... args) {
    RETURN_IF_ERROR(Run(sql, "update " + what, args...));
    if (sqlite3_changes(db_) == 0) return NotFound(what + " not found");
    return Status::Ok();
  }

  Result<ProjectRecord> FindProjectLocked(const std::string& name) {
    return QueryOne<ProjectRecord>(Sql("SELECT ", kProjectCols, " FROM projects WHERE name = ?"),
                                   ReadProject, "project " + name, name);
  }

  Status InsertVariableLocked(const VariableRecord& v, bool from_config) {
    return Run(
        "INSERT INTO variables (environment_id, service, name, sealed_value, secret, source, "
        "from_config, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (environment_id, service, name, from_config) DO UPDATE SET "
        "sealed_value = excluded.sealed_value, secret = excluded.secret, source = excluded.source, "
        "updated_at = excluded.updated_at",
        "set variable " + v.name, v.environment_id, v.service, v.name, v.sealed_value,
        static_cast<int64_t>(v.secret ? 1 : 0), v.source, static_cast<int64_t>(from_config ? 1 : 0),
        Now());
  }

  Result<EnvironmentRecord> GetEnvironmentLocked(int64_t id) {
    return QueryOne<EnvironmentRecord>(
        Sql("SELECT ", kEnvironmentCols, " FROM environments WHERE id = ?"), ReadEnvironment,
        "environment " + std::to_string(id), id);
  }

  Result<EnvironmentRecord> FindEnvironmentLocked(int64_t project_id, const std::string& name) {
    return QueryOne<EnvironmentRecord>(
        Sql("SELECT ", kEnvironmentCols, " FROM environments WHERE project_id = ? AND name = ?"),
        ReadEnvironment, "environment " + name + " of project " + std::to_string(project_id),
        project_id, name);
  }

  Result<EnvironmentRecord> EnsureEnvironmentLocked(int64_t project_id, const std::string& name) {
    auto existing = FindEnvironmentLocked(project_id, name);
    if (existing.ok() || existing.status().code() != StatusCode::kNotFound) return existing;
    RETURN_IF_ERROR(
        QueryOne<ProjectRecord>(Sql("SELECT ", kProjectCols, " FROM projects WHERE id = ?"),
                                ReadProject, "project " + std::to_string(project_id), project_id)
            .status());
    return InsertOne<EnvironmentRecord>(
        Sql("INSERT INTO environments (project_id, name, created_at) VALUES (?, ?, ?) RETURNING ",
            kEnvironmentCols, ""),
        ReadEnvironment, "create environment " + name, project_id, name, Now());
  }

  Result<ServiceRecord> GetServiceLocked(int64_t id) {
    return QueryOne<ServiceRecord>(Sql("SELECT ", kServiceCols, " FROM services WHERE id = ?"),
                                   ReadService, "service " + std::to_string(id), id);
  }

  Result<ServiceRecord> FindServiceLocked(int64_t environment_id, const std::string& name) {
    return QueryOne<ServiceRecord>(
        Sql("SELECT ", kServiceCols, " FROM services WHERE environment_id = ? AND name = ?"),
        ReadService, "service " + name + " in environment " + std::to_string(environment_id),
        environment_id, name);
  }

  Result<DeploymentRecord> GetDeploymentLocked(int64_t id) {
    return QueryOne<DeploymentRecord>(
        Sql("SELECT ", kDeploymentCols, " FROM deployments WHERE id = ?"), ReadDeployment,
        "deployment " + std::to_string(id), id);
  }

  Result<ReleaseRecord> GetReleaseLocked(int64_t id) {
    return QueryOne<ReleaseRecord>(Sql("SELECT ", kReleaseCols, " FROM releases WHERE id = ?"),
                                   ReadRelease, "release " + std::to_string(id), id);
  }

  std::mutex mu_;
  sqlite3* const db_;  // guarded by mu_
  const std::string path_;
  const Clock& clock_;
  std::map<std::string, sqlite3_stmt*> statements_;  // guarded by mu_
  int version_ = 0;                                  // guarded by mu_
};

// Creates the file (or tightens an existing one) with mode 0600 before SQLite opens it:
// SQLite gives the -wal and -shm files it creates the database file's mode.
Status RestrictPermissions(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return ErrnoStatus("create state.db at " + path +
                           " (does its directory exist and is it "
                           "writable?)",
                       errno);
  }
  int rc = ::fchmod(fd, 0600);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus("chmod 0600 " + path, err);
  for (const char* suffix : {"-wal", "-shm"}) {
    std::string side = path + suffix;
    if (::chmod(side.c_str(), 0600) != 0 && errno != ENOENT) {
      return ErrnoStatus("chmod 0600 " + side, errno);
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const std::string& path, const Clock& clock) {
  RETURN_IF_ERROR(RestrictPermissions(path));
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status st = SqliteError(db, rc, path, "open");
    sqlite3_close_v2(db);
    return st;
  }
  auto store = std::make_unique<SqliteStore>(db, path, clock);
  RETURN_IF_ERROR(store->Initialize());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace slipway
