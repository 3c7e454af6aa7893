#include "addons/addons.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "addons/addons_impl.h"
#include "common/cron.h"
#include "common/fs.h"
#include "common/names.h"
#include "common/sandbox.h"
#include "config/config.h"

namespace slipway {

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using namespace addons_impl;

constexpr const char* kPostgres = "postgres";
constexpr const char* kRedis = "redis";
// The defaults a config's [addons.NAME] leaves unset (config/config.h).
constexpr const char* kDefaultSchedule = kDefaultBackupSchedule;
constexpr int kDefaultRetention = kDefaultBackupRetention;
constexpr int kPasswordLength = 32;

// States of AddonRecord::state.
constexpr const char* kProvisioning = "provisioning";
constexpr const char* kRunning = "running";
constexpr const char* kRestarting = "restarting";
constexpr const char* kFailed = "failed";
constexpr const char* kStopped = "stopped";

// Restarts of a server that exited: 0.5 s, doubling to 30 s; a server that ran this long
// since its last start begins again at 0.5 s.
constexpr std::chrono::milliseconds kFirstBackoff = 500ms;
constexpr std::chrono::milliseconds kMaxBackoff = 30s;
constexpr std::chrono::milliseconds kStableAfter = 60s;
// How often the threads look (real time; the durations they compare are the Clock's).
constexpr auto kMonitorInterval = 100ms;
constexpr auto kScheduleInterval = 200ms;
constexpr auto kReadyPoll = 100ms;
constexpr int kLogTailLines = 10;

constexpr const char* kBasePath = "/usr/local/bin:/usr/bin:/bin";

// Kind-specific settings kept in AddonRecord::settings_json.
struct Settings {
  std::string version;   // "PostgreSQL 15.18"
  std::string database;  // postgres
  std::string user;      // postgres: the environment's role; redis: "default"
  std::string schedule;  // postgres: cron expression
  int retention = 0;     // postgres: scheduled backups kept
};

std::string SettingsJson(const Settings& s) {
  json j{{"version", s.version}, {"user", s.user}};
  if (!s.database.empty()) j["database"] = s.database;
  if (!s.schedule.empty()) {
    j["backup_schedule"] = s.schedule;
    j["backup_retention"] = s.retention;
  }
  return j.dump();
}

Settings ParseSettings(const AddonRecord& rec) {
  Settings s;
  json j = json::parse(rec.settings_json, nullptr, false);
  if (!j.is_object()) j = json::object();
  auto text = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  s.version = text("version");
  s.database = text("database");
  s.user = text("user");
  s.schedule = text("backup_schedule");
  auto retention = j.find("backup_retention");
  s.retention = retention != j.end() && retention->is_number_integer() ? retention->get<int>() : 0;
  if (rec.kind == kPostgres) {
    if (s.schedule.empty()) s.schedule = kDefaultSchedule;
    if (s.retention <= 0) s.retention = kDefaultRetention;
  }
  if (rec.kind == kRedis && s.user.empty()) s.user = "default";
  return s;
}

// "20260101T030000Z", for backup file names.
std::string CompactUtc(int64_t unix_millis) {
  std::time_t secs = static_cast<std::time_t>(unix_millis / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string Seconds(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%gs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

BackupInfo BackupInfoOf(const BackupRecord& b, const std::string& addon) {
  BackupInfo info;
  info.id = b.id;
  info.addon = addon;
  info.status = b.status;
  info.trigger = b.trigger;
  info.path = b.path;
  info.bytes = b.bytes;
  info.sha256 = b.sha256;
  info.error = b.error;
  info.started_at = b.started_at;
  info.finished_at = b.finished_at;
  return info;
}

bool ValidTrigger(const std::string& t) {
  return t == "schedule" || t == "manual" || t == "before-restore" || t == "before-delete";
}

class AddonManagerImpl final : public AddonManager {
 public:
  AddonManagerImpl(Store& store, Supervisor& supervisor, Clock& clock, AddonOptions options)
      : store_(store),
        supervisor_(supervisor),
        clock_(clock),
        options_(std::move(options)),
        box_(options_.secrets),
        home_(AbsolutePath(options_.home)),
        isolate_(options_.isolate && SandboxSupported()),
        hide_dir_(isolate_ ? SandboxHideDir(home_) : "") {}

  ~AddonManagerImpl() override { Shutdown(false); }

  // ---- lifecycle -----------------------------------------------------------------

  Status Start() override {
    if (monitor_.joinable()) return FailedPrecondition("the add-on manager is started already");
    RETURN_IF_ERROR(MakeDirectories());
    FailInterruptedBackups();
    ASSIGN_OR_RETURN(std::vector<AddonRecord> all, store_.ListAddons(0));
    std::vector<int64_t> starting;
    for (AddonRecord& rec : all) {
      if (rec.state == kProvisioning) {
        spdlog::warn("{}: its provisioning was interrupted; removing what it left", Describe(rec));
        Discard(rec);
        continue;
      }
      auto rt = RuntimeOf(rec.id);
      std::lock_guard<std::mutex> server(rt->lock);
      rt->started_at = clock_.Monotonic();
      auto adopted = supervisor_.Adopt(rec.run_dir);
      if (adopted.ok() && supervisor_.Running(*adopted)) {
        rec.shim_pid = adopted->shim_pid;
        rec.shim_start_time = static_cast<int64_t>(adopted->shim_start_time);
        rec.app_pid = adopted->app_pid;
        spdlog::info("{}: adopted the running server (pid {}, port {})", Describe(rec), rec.app_pid,
                     rec.port);
        (void)store_.UpdateAddon(rec);
        starting.push_back(rec.id);
        continue;
      }
      Status st = StartServer(rec);
      if (!st.ok()) {
        ScheduleRestart(rec, *rt, st.message(), kFailed);
        continue;
      }
      rec.state = kRestarting;
      rec.error = "";
      (void)store_.UpdateAddon(rec);
      spdlog::info("{}: server started (pid {}, port {})", Describe(rec), rec.app_pid, rec.port);
      starting.push_back(rec.id);
    }
    // The apps the engine recovers next need their databases: wait for them (bounded).
    const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
    while (!starting.empty() && std::chrono::steady_clock::now() < deadline) {
      for (auto it = starting.begin(); it != starting.end();) {
        auto rec = store_.GetAddon(*it);
        if (!rec.ok() || !supervisor_.Running(HandleOf(*rec))) {
          it = starting.erase(it);  // the monitor takes over
          continue;
        }
        if (Probe(*rec).ok()) {
          auto rt = RuntimeOf(rec->id);
          std::lock_guard<std::mutex> server(rt->lock);
          MarkReady(*rec, *rt);
          it = starting.erase(it);
          continue;
        }
        ++it;
      }
      if (!starting.empty()) std::this_thread::sleep_for(kReadyPoll);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = false;
    }
    monitor_ = std::thread([this] { MonitorLoop(); });
    scheduler_ = std::thread([this] { ScheduleLoop(); });
    return Status::Ok();
  }

  void Shutdown(bool stop_servers) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (monitor_.joinable()) monitor_.join();
    if (scheduler_.joinable()) scheduler_.join();
    if (!stop_servers) return;
    std::lock_guard<std::mutex> ops(ops_mu_);
    auto all = store_.ListAddons(0);
    if (!all.ok()) return;
    for (AddonRecord& rec : *all) {
      if (rec.state == kProvisioning) continue;
      auto rt = RuntimeOf(rec.id);
      std::lock_guard<std::mutex> server(rt->lock);
      if (Status st = StopServer(rec); !st.ok()) {
        spdlog::error("{}: {}", Describe(rec), st.message());
        continue;
      }
      rec.state = kStopped;
      rec.error = "";
      (void)store_.UpdateAddon(rec);
      spdlog::info("{}: server stopped", Describe(rec));
    }
  }

  // ---- provisioning --------------------------------------------------------------

  Result<AddonInfo> Ensure(const AddonRequest& request) override {
    AddonRequest req = request;
    if (req.environment.empty()) req.environment = "production";
    if (req.name.empty()) req.name = req.kind;
    RETURN_IF_ERROR(Validate(req));
    std::lock_guard<std::mutex> ops(ops_mu_);

    // An add-on of that name is returned as it is.
    if (auto env = FindEnvironment(req.project, req.environment); env.ok()) {
      auto existing = store_.FindAddon(env->id, req.name);
      if (existing.ok()) {
        if (existing->kind != req.kind) {
          return AlreadyExists(Where(req.project, req.environment) + " has an add-on named \"" +
                               req.name + "\" already (" + existing->kind +
                               "); choose another name with --name");
        }
        // Backup settings follow the config that declares the add-on.
        Settings settings = ParseSettings(*existing);
        const std::string schedule =
            req.backup_schedule.empty() ? settings.schedule : req.backup_schedule;
        const int retention = req.backup_retention > 0 ? req.backup_retention : settings.retention;
        if (existing->kind == kPostgres &&
            (schedule != settings.schedule || retention != settings.retention)) {
          settings.schedule = schedule;
          settings.retention = retention;
          existing->settings_json = SettingsJson(settings);
          RETURN_IF_ERROR(store_.UpdateAddon(*existing));
          spdlog::info("add-on \"{}\" of {}: backups now {} (UTC), {} kept", req.name,
                       Where(req.project, req.environment), schedule, retention);
        }
        return InfoOf(*existing, req.project, req.environment);
      }
      if (existing.status().code() != StatusCode::kNotFound) return existing.status();
    }

    // What the server needs, before anything is created.
    Settings settings;
    if (req.kind == kPostgres) {
      ASSIGN_OR_RETURN(PostgresTools tools, FindPostgresTools(options_.postgres_bindir));
      ASSIGN_OR_RETURN(settings.version, PostgresVersion(tools));
      settings.database = DatabaseName(req.project, req.environment);
      settings.user = settings.database;
      settings.schedule = req.backup_schedule.empty() ? kDefaultSchedule : req.backup_schedule;
      settings.retention = req.backup_retention > 0 ? req.backup_retention : kDefaultRetention;
    } else {
      ASSIGN_OR_RETURN(std::string redis, FindRedisServer(options_.redis_server));
      ASSIGN_OR_RETURN(settings.version, RedisVersion(redis));
      settings.user = "default";
    }
    ASSIGN_OR_RETURN(int port, ChoosePort(req.port));
    ASSIGN_OR_RETURN(std::string password, GenerateSecret(kPasswordLength));
    RETURN_IF_ERROR(MakeDirectories());
    ASSIGN_OR_RETURN(EnvironmentRecord env, EnsureEnvironment(req.project, req.environment));

    AddonRecord rec;
    rec.environment_id = env.id;
    rec.name = req.name;
    rec.kind = req.kind;
    rec.port = port;
    rec.sealed_password = box_->Seal(password);
    rec.state = kProvisioning;
    rec.settings_json = SettingsJson(settings);
    ASSIGN_OR_RETURN(rec, store_.CreateAddon(rec));
    rec.data_dir = AddonDir(rec.id);
    rec.run_dir = RunDir(rec.id);
    rec.log_path = LogPath(rec.id);
    Status st = store_.UpdateAddon(rec);
    if (st.ok()) {
      st = req.kind == kPostgres ? ProvisionPostgres(rec, settings, password)
                                 : ProvisionRedis(rec, password);
    }
    if (st.ok()) {
      rec.state = kRunning;
      rec.error = "";
      st = store_.UpdateAddon(rec);
    }
    if (!st.ok()) {
      Discard(rec);
      return st;
    }
    {
      auto rt = RuntimeOf(rec.id);
      std::lock_guard<std::mutex> server(rt->lock);
      rt->ready = true;
      rt->started_at = clock_.Monotonic();
    }
    spdlog::info("{}: provisioned {} on 127.0.0.1:{} (data in {})", Describe(rec), settings.version,
                 rec.port, rec.data_dir);
    return InfoOf(rec, req.project, req.environment);
  }

  Result<std::vector<AddonInfo>> List(const std::string& project,
                                      const std::string& environment) override {
    ASSIGN_OR_RETURN(EnvironmentRecord env, FindEnvironment(project, environment));
    ASSIGN_OR_RETURN(std::vector<AddonRecord> all, store_.ListAddons(env.id));
    std::vector<AddonInfo> out;
    for (const auto& rec : all) {
      if (rec.state == kProvisioning) continue;
      out.push_back(InfoOf(rec, project, environment));
    }
    return out;
  }

  std::optional<std::map<std::string, std::string>> Variables(const std::string& project,
                                                              const std::string& environment,
                                                              const std::string& name) override {
    auto env = FindEnvironment(project, environment);
    if (!env.ok()) return std::nullopt;
    auto rec = store_.FindAddon(env->id, name);
    if (!rec.ok() || rec->state == kProvisioning) return std::nullopt;
    return InfoOf(*rec, project, environment).variables;
  }

  Result<std::string> Remove(const std::string& project, const std::string& environment,
                             const std::string& name, bool keep_backup) override {
    std::lock_guard<std::mutex> ops(ops_mu_);
    ASSIGN_OR_RETURN(AddonRecord rec, FindAddon(project, environment, name));
    auto rt = RuntimeOf(rec.id);
    std::lock_guard<std::mutex> backups(rt->backup_lock);
    std::string kept;
    if (rec.kind == kPostgres && keep_backup) {
      auto backup = RunBackupLocked(rec, "before-delete");
      if (!backup.ok()) {
        return Status(backup.status().code(),
                      backup.status().message() +
                          "; nothing was removed. To remove it without a backup: slipway addons "
                          "remove " +
                          name + " --no-backup");
      }
      kept = backup->path;
    }
    std::lock_guard<std::mutex> server(rt->lock);
    ASSIGN_OR_RETURN(rec, store_.GetAddon(rec.id));  // the monitor may have restarted it
    RETURN_IF_ERROR(StopServer(rec));
    rt->removed = true;
    for (const std::string& path : {rec.data_dir, SocketDir(rec.id), rec.run_dir, rec.log_path}) {
      if (!path.empty()) RETURN_IF_ERROR(RemoveTree(path));
    }
    RETURN_IF_ERROR(store_.DeleteAddon(rec.id));
    {
      std::lock_guard<std::mutex> lock(mu_);
      runtimes_.erase(rec.id);
    }
    spdlog::info("{}: removed{}", Describe(rec, project, environment),
                 kept.empty() ? "" : " (its last backup is " + kept + ")");
    return kept;
  }

  // ---- backups -------------------------------------------------------------------

  Result<BackupInfo> CreateBackup(const std::string& project, const std::string& environment,
                                  const std::string& name, const std::string& trigger) override {
    const std::string why = trigger.empty() ? "manual" : trigger;
    if (!ValidTrigger(why)) {
      return InvalidArgument("unknown backup trigger \"" + why +
                             "\" (schedule, manual, before-restore or before-delete)");
    }
    ASSIGN_OR_RETURN(AddonRecord rec, FindAddon(project, environment, name));
    RETURN_IF_ERROR(RequirePostgres(rec));
    auto rt = RuntimeOf(rec.id);
    std::lock_guard<std::mutex> backups(rt->backup_lock);
    return RunBackupLocked(rec, why);
  }

  Result<std::vector<BackupInfo>> ListBackups(const std::string& project,
                                              const std::string& environment,
                                              const std::string& name) override {
    std::vector<AddonRecord> addons;
    if (name.empty()) {
      ASSIGN_OR_RETURN(EnvironmentRecord env, FindEnvironment(project, environment));
      ASSIGN_OR_RETURN(addons, store_.ListAddons(env.id));
    } else {
      ASSIGN_OR_RETURN(AddonRecord rec, FindAddon(project, environment, name));
      addons.push_back(rec);
    }
    std::vector<BackupInfo> out;
    for (const auto& rec : addons) {
      ASSIGN_OR_RETURN(std::vector<BackupRecord> backups, store_.ListBackups(rec.id));
      for (const auto& b : backups) out.push_back(BackupInfoOf(b, rec.name));
    }
    std::sort(out.begin(), out.end(),
              [](const BackupInfo& a, const BackupInfo& b) { return a.id > b.id; });
    return out;
  }

  Status Restore(const std::string& project, const std::string& environment,
                 const std::string& name, int64_t backup_id, const std::string& database) override {
    ASSIGN_OR_RETURN(AddonRecord rec, FindAddon(project, environment, name));
    RETURN_IF_ERROR(RequirePostgres(rec));
    const std::string id = std::to_string(backup_id);
    auto backup = store_.GetBackup(backup_id);
    if (!backup.ok() || backup->addon_id != rec.id) {
      if (backup.ok() || backup.status().code() == StatusCode::kNotFound) {
        return NotFound("add-on \"" + name + "\" has no backup " + id +
                        "; see its backups with `slipway backups list --addon " + name + "`");
      }
      return backup.status();
    }
    if (backup->status != kBackupCompleted) {
      return FailedPrecondition(
          "backup " + id + " is " + backup->status +
          (backup->error.empty() ? "" : " (" + backup->error + ")") +
          ", not COMPLETED; restore a COMPLETED one (slipway backups list --addon " + name + ")");
    }
    const Settings settings = ParseSettings(rec);
    const bool replace = database.empty();
    const std::string target = replace ? settings.database : database;
    if (!replace && !ValidDatabaseName(database)) {
      return InvalidArgument("\"" + database +
                             "\" is not a database name Slipway creates: use lowercase letters, "
                             "digits and _, starting with a letter, at most 63 characters");
    }
    auto rt = RuntimeOf(rec.id);
    std::lock_guard<std::mutex> backups(rt->backup_lock);
    ASSIGN_OR_RETURN(PgServer pg, PgOf(rec));
    const Masker none;
    if (!replace) {
      ASSIGN_OR_RETURN(
          std::string found,
          Psql(pg, "postgres",
               "SELECT 1 FROM pg_database WHERE datname = " + QuoteLiteral(database) + ";\n",
               none));
      if (!found.empty()) {
        return AlreadyExists("database \"" + database + "\" exists already in add-on \"" + name +
                             "\"; restore into a new name with --to, or leave --to out to "
                             "replace " +
                             settings.database);
      }
    }

    // The file must be the one that was written: whole and unchanged.
    const std::string unchanged = "; the database is unchanged";
    const std::string corrupt = "backup " + id + " is corrupt: ";
    if (!PathExists(backup->path)) {
      return FailedPrecondition(corrupt + "its file " + backup->path + " is missing" + unchanged);
    }
    auto digest = DigestFile(backup->path);
    if (!digest.ok()) return FailedPrecondition(corrupt + digest.status().message() + unchanged);
    if (digest->sha256 != backup->sha256 || digest->bytes != backup->bytes) {
      return FailedPrecondition(corrupt + "its file " + backup->path + " has SHA-256 " +
                                digest->sha256.substr(0, 12) + "… (" +
                                std::to_string(digest->bytes) + " bytes), not the recorded " +
                                backup->sha256.substr(0, 12) + "… (" +
                                std::to_string(backup->bytes) + " bytes)" + unchanged);
    }

    if (replace) {
      auto before = RunBackupLocked(rec, "before-restore");
      if (!before.ok()) {
        return Status(before.status().code(), "cannot take the before-restore backup: " +
                                                  before.status().message() + unchanged);
      }
    }

    // Restored into a scratch database first: the target changes only once it worked.
    const std::string scratch = "slipway_restore_" + id;
    const std::string role = QuoteIdent(settings.user);
    RETURN_IF_ERROR(Psql(pg, "postgres",
                         "DROP DATABASE IF EXISTS " + QuoteIdent(scratch) + " WITH (FORCE);\n" +
                             "CREATE DATABASE " + QuoteIdent(scratch) + " OWNER " + role + ";\n" +
                             "REVOKE CONNECT ON DATABASE " + QuoteIdent(scratch) +
                             " FROM PUBLIC;\n",
                         none)
                        .status()
                        .WithContext("cannot prepare the restore of backup " + id));
    auto drop_scratch = [&] {
      (void)Psql(pg, "postgres",
                 "DROP DATABASE IF EXISTS " + QuoteIdent(scratch) + " WITH (FORCE);\n", none);
    };
    if (Status st = PgRestore(pg, backup->path, scratch); !st.ok()) {
      drop_scratch();
      if (st.code() != StatusCode::kFailedPrecondition)
        return st.WithContext("restore of backup " + id);
      return FailedPrecondition(corrupt + "pg_restore: " + st.message() + unchanged);
    }

    // Replacing: no new sessions, the open ones ended, then both renames in one
    // transaction; the replaced database is dropped once the switch is committed.
    const std::string old = "slipway_replaced_" + id;
    std::string swap =
        "ALTER DATABASE " + QuoteIdent(scratch) + " RENAME TO " + QuoteIdent(target) + ";\n";
    if (replace) {
      swap = "DROP DATABASE IF EXISTS " + QuoteIdent(old) + " WITH (FORCE);\n" + "ALTER DATABASE " +
             QuoteIdent(target) + " ALLOW_CONNECTIONS false;\n" +
             "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity WHERE " +
             "datname = " + QuoteLiteral(target) + " AND pid <> pg_backend_pid();\n" + "BEGIN;\n" +
             "ALTER DATABASE " + QuoteIdent(target) + " RENAME TO " + QuoteIdent(old) + ";\n" +
             swap + "COMMIT;\n";
    }
    if (auto swapped = Psql(pg, "postgres", swap, none); !swapped.ok()) {
      if (replace) {
        (void)Psql(pg, "postgres",
                   "ALTER DATABASE " + QuoteIdent(target) + " ALLOW_CONNECTIONS true;\n", none);
      }
      drop_scratch();
      return Status(swapped.status().code(),
                    "restore of backup " + id + " into " + target +
                        " failed at the switch: " + swapped.status().message() + unchanged);
    }
    if (replace) {
      if (auto dropped =
              Psql(pg, "postgres", "DROP DATABASE " + QuoteIdent(old) + " WITH (FORCE);\n", none);
          !dropped.ok()) {
        spdlog::warn("{}: the replaced database is left as {}: {}", Describe(rec), old,
                     dropped.status().message());
      }
    }
    spdlog::info("{}: backup {} restored into database {}", Describe(rec), id, target);
    return Status::Ok();
  }

 private:
  // What the manager knows of a server besides its record: not durable.
  struct Runtime {
    // Held by whoever starts, stops or supervises the server.
    std::mutex lock;
    // Held while a backup or a restore of the add-on runs (and by Remove).
    std::mutex backup_lock;
    // Set by Remove holding both locks: read under either.
    bool removed = false;
    // Guarded by `lock`:
    bool ready = false;  // answered a probe since its last start
    std::chrono::milliseconds backoff{0};
    std::optional<std::chrono::steady_clock::time_point> next_attempt;  // Clock::Monotonic
    std::chrono::steady_clock::time_point started_at{};
    // The schedule thread's own:
    std::optional<std::chrono::system_clock::time_point> next_backup;
  };

  std::shared_ptr<Runtime> RuntimeOf(int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& rt = runtimes_[id];
    if (!rt) rt = std::make_shared<Runtime>();
    return rt;
  }

  bool Stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  // ---- paths and names -----------------------------------------------------------

  std::string AddonDir(int64_t id) const { return home_ + "/addons/" + std::to_string(id); }
  std::string RunDir(int64_t id) const { return home_ + "/run/addon-" + std::to_string(id); }
  // Short: a Unix socket's path holds at most 107 bytes.
  std::string SocketDir(int64_t id) const { return home_ + "/run/pg" + std::to_string(id); }
  std::string LogPath(int64_t id) const {
    return home_ + "/logs/addons/" + std::to_string(id) + ".log";
  }
  std::string BackupDir(int64_t id) const { return home_ + "/backups/" + std::to_string(id); }
  static std::string DataDir(const AddonRecord& rec) { return rec.data_dir + "/data"; }
  static std::string RedisConfigPath(const AddonRecord& rec) {
    return rec.data_dir + "/redis.conf";
  }

  Status MakeDirectories() {
    for (const char* dir : {"addons", "run", "logs/addons", "backups"}) {
      RETURN_IF_ERROR(MakeDirs(home_ + "/" + dir, 0700));
    }
    return Status::Ok();
  }

  static std::string Where(const std::string& project, const std::string& environment) {
    return "project " + project + " (" + environment + ")";
  }

  std::string Describe(const AddonRecord& rec, const std::string& project,
                       const std::string& environment) const {
    return "add-on \"" + rec.name + "\" (" + rec.kind + ") of " + project + " (" + environment +
           ")";
  }

  std::string Describe(const AddonRecord& rec) {
    std::string project = "?", environment = "?";
    if (auto env = store_.GetEnvironmentById(rec.environment_id); env.ok()) {
      environment = env->name;
      if (auto p = store_.GetProjectById(env->project_id); p.ok()) project = p->name;
    }
    return Describe(rec, project, environment);
  }

  Result<EnvironmentRecord> FindEnvironment(const std::string& project,
                                            const std::string& environment) {
    auto p = store_.GetProject(project);
    if (!p.ok()) {
      if (p.status().code() != StatusCode::kNotFound) return p.status();
      return NotFound("there is no project \"" + project +
                      "\"; add an add-on to it with `slipway add postgres --project " + project +
                      "`, or deploy it with `slipway up`");
    }
    auto env = store_.GetEnvironment(p->id, environment);
    if (!env.ok() && env.status().code() == StatusCode::kNotFound) {
      return NotFound("project " + project + " has no environment \"" + environment +
                      "\"; create it with `slipway env create " + environment + "`");
    }
    return env;
  }

  // The environment, creating it and its project when missing (as `slipway up` does).
  Result<EnvironmentRecord> EnsureEnvironment(const std::string& project,
                                              const std::string& environment) {
    ASSIGN_OR_RETURN(ProjectRecord p, store_.EnsureProject(project));
    return store_.EnsureEnvironment(p.id, environment);
  }

  Result<AddonRecord> FindAddon(const std::string& project, const std::string& environment,
                                const std::string& name) {
    ASSIGN_OR_RETURN(EnvironmentRecord env, FindEnvironment(project, environment));
    auto rec = store_.FindAddon(env.id, name);
    if ((!rec.ok() && rec.status().code() == StatusCode::kNotFound) ||
        (rec.ok() && rec->state == kProvisioning)) {
      return NotFound(Where(project, environment) + " has no add-on named \"" + name +
                      "\"; see its add-ons with `slipway addons`");
    }
    return rec;
  }

  static Status RequirePostgres(const AddonRecord& rec) {
    if (rec.kind == kPostgres) return Status::Ok();
    return FailedPrecondition(
        "redis add-ons are kept by append-only persistence; backups are for postgres add-ons");
  }

  Status Validate(const AddonRequest& req) const {
    if (req.kind != kPostgres && req.kind != kRedis) {
      return InvalidArgument("unknown add-on kind \"" + req.kind + "\": choose postgres or redis");
    }
    RETURN_IF_ERROR(ValidateName(req.project, "project name"));
    RETURN_IF_ERROR(ValidateName(req.environment, "environment name"));
    RETURN_IF_ERROR(ValidateName(req.name, "add-on name"));
    if (req.port != 0 && (req.port < 1024 || req.port > 65535)) {
      return InvalidArgument("port " + std::to_string(req.port) +
                             " is out of range: choose one from 1024 to 65535, or leave --port "
                             "out for a free one");
    }
    if (req.kind == kRedis && (!req.backup_schedule.empty() || req.backup_retention != 0)) {
      return InvalidArgument(
          "redis add-ons are kept by append-only persistence; a backup schedule and retention "
          "are for postgres add-ons");
    }
    if (!req.backup_schedule.empty())
      RETURN_IF_ERROR(CronSchedule::Parse(req.backup_schedule).status());
    if (req.backup_retention < 0) {
      return InvalidArgument("backup retention " + std::to_string(req.backup_retention) +
                             " is negative: give how many scheduled backups to keep (0: 7)");
    }
    return Status::Ok();
  }

  Result<int> ChoosePort(int requested) {
    ASSIGN_OR_RETURN(std::vector<AddonRecord> all, store_.ListAddons(0));
    auto kept_by = [&](int port) -> const AddonRecord* {
      for (const auto& rec : all) {
        if (rec.port == port) return &rec;
      }
      return nullptr;
    };
    if (requested != 0) {
      if (const AddonRecord* other = kept_by(requested)) {
        return FailedPrecondition("port " + std::to_string(requested) +
                                  " on 127.0.0.1 is kept by " + Describe(*other) +
                                  "; choose another with --port, or leave --port out for a free "
                                  "one");
      }
      if (PortInUse(requested)) {
        return FailedPrecondition("port " + std::to_string(requested) +
                                  " on 127.0.0.1 is in use by another process; choose another "
                                  "with --port, or leave --port out for a free one");
      }
      return requested;
    }
    for (int attempt = 0; attempt < 20; ++attempt) {
      ASSIGN_OR_RETURN(int port, PickFreePort());
      if (kept_by(port) == nullptr) return port;
    }
    return Internal("no free port on 127.0.0.1 that no other add-on keeps; give one with --port");
  }

  // ---- identity and isolation ----------------------------------------------------

  uid_t UidOf(const AddonRecord& rec) const {
    return isolate_ ? static_cast<uid_t>(kAddonIdBase + rec.id) : geteuid();
  }
  gid_t GidOf(const AddonRecord& rec) const {
    return isolate_ ? static_cast<gid_t>(kAddonIdBase + rec.id) : getegid();
  }

  // The server's own user, and a mount namespace in which the data dir is hidden but for
  // the add-on's directory (and its socket's).
  SandboxSpec SandboxOf(const AddonRecord& rec) const {
    SandboxSpec spec;
    if (!isolate_) return spec;
    spec.uid = UidOf(rec);
    spec.gid = GidOf(rec);
    spec.hide = hide_dir_;
    spec.binds.push_back({rec.data_dir, rec.data_dir, false, ""});
    if (rec.kind == kPostgres)
      spec.binds.push_back({SocketDir(rec.id), SocketDir(rec.id), false, ""});
    return spec;
  }

  // A directory of the server's: its user's, nobody else's.
  Status GiveDirectory(const AddonRecord& rec, const std::string& dir) {
    RETURN_IF_ERROR(MakeDirs(dir, 0700));
    if (chmod(dir.c_str(), 0700) != 0) return ErrnoStatus("cannot chmod " + dir, errno);
    if (isolate_ && chown(dir.c_str(), UidOf(rec), GidOf(rec)) != 0) {
      return ErrnoStatus("cannot give " + dir + " to the add-on's user", errno);
    }
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) return ErrnoStatus("cannot stat " + dir, errno);
    if (st.st_uid != UidOf(rec) || (st.st_mode & 077) != 0) {
      return FailedPrecondition(dir + " is not owned by uid " + std::to_string(UidOf(rec)) +
                                " with mode 0700; check the file system it is on");
    }
    return Status::Ok();
  }

  EnvMap ServerEnv(const AddonRecord& rec, const std::string& bindir) const {
    EnvMap env;
    env["PATH"] = bindir.empty() ? kBasePath : bindir + ":" + kBasePath;
    env["LANG"] = "C.UTF-8";
    env["HOME"] = rec.data_dir;
    return env;
  }

  Result<PgServer> PgOf(const AddonRecord& rec) {
    ASSIGN_OR_RETURN(PostgresTools tools, FindPostgresTools(options_.postgres_bindir));
    PgServer pg;
    pg.tools = tools;
    pg.data_dir = DataDir(rec);
    pg.socket_dir = SocketDir(rec.id);
    pg.port = rec.port;
    pg.env = ServerEnv(rec, tools.bindir);
    const std::string socket = pg.socket_dir + "/.s.PGSQL." + std::to_string(pg.port);
    if (socket.size() > kMaxSocketPath) {
      return FailedPrecondition("the add-on's socket path " + socket + " is longer than " +
                                std::to_string(kMaxSocketPath) +
                                " bytes; use a shorter data dir (SLIPWAY_HOME)");
    }
    return pg;
  }

  Result<std::string> PasswordOf(const AddonRecord& rec) const {
    auto password = box_->Open(rec.sealed_password);
    if (!password.ok()) {
      return FailedPrecondition("the password of add-on \"" + rec.name +
                                "\" does not open: " + password.status().message());
    }
    return password;
  }

  // ---- servers -------------------------------------------------------------------

  static ReplicaHandle HandleOf(const AddonRecord& rec) {
    ReplicaHandle h;
    h.shim_pid = static_cast<pid_t>(rec.shim_pid);
    h.shim_start_time = static_cast<unsigned long long>(rec.shim_start_time);
    h.app_pid = static_cast<pid_t>(rec.app_pid);
    h.run_dir = rec.run_dir;
    return h;
  }

  static int StopSignalOf(const AddonRecord& rec) {
    // PostgreSQL: SIGINT is the fast shutdown (SIGTERM would wait for every client).
    return rec.kind == kPostgres ? SIGINT : SIGTERM;
  }

  // Starts the server of `rec` under a shim of its own, recording the handle in `rec`
  // (the caller saves it). The port must be free and nothing of an earlier run left.
  Status StartServer(AddonRecord& rec) {
    // Leftovers of a server whose shim is gone (a postmaster, its backends) hold the data
    // dir and the port; a stale postmaster.pid could name a pid reused by another process.
    if (int killed = KillProcessesIn(DataDir(rec)); killed > 0) {
      spdlog::warn("{}: killed {} leftover process(es) of an earlier run", Describe(rec), killed);
    }
    if (PortInUse(rec.port)) {
      return FailedPrecondition("port " + std::to_string(rec.port) +
                                " on 127.0.0.1, which the add-on's URLs hold, is in use by another "
                                "process; stop that process");
    }
    ReplicaSpec spec;
    spec.cwd = rec.data_dir;
    spec.log_path = rec.log_path;
    spec.run_dir = rec.run_dir;
    spec.sandbox = SandboxOf(rec);
    if (rec.kind == kPostgres) {
      ASSIGN_OR_RETURN(PgServer pg, PgOf(rec));
      RETURN_IF_ERROR(GiveDirectory(rec, pg.socket_dir));
      for (const std::string& stale :
           {pg.data_dir + "/postmaster.pid",
            pg.socket_dir + "/.s.PGSQL." + std::to_string(rec.port) + ".lock",
            pg.socket_dir + "/.s.PGSQL." + std::to_string(rec.port)}) {
        unlink(stale.c_str());
      }
      spec.command = PostgresCommand(pg);
      spec.env = pg.env;
    } else {
      ASSIGN_OR_RETURN(std::string redis, FindRedisServer(options_.redis_server));
      ASSIGN_OR_RETURN(std::string password, PasswordOf(rec));
      RETURN_IF_ERROR(WriteRedisConfig(rec, password));
      spec.command = RedisCommand(redis, RedisConfigPath(rec));
      spec.env = ServerEnv(rec, "");
    }
    ASSIGN_OR_RETURN(ReplicaHandle handle, supervisor_.Start(spec));
    rec.shim_pid = handle.shim_pid;
    rec.shim_start_time = static_cast<int64_t>(handle.shim_start_time);
    rec.app_pid = handle.app_pid;
    return Status::Ok();
  }

  // Stops the server if it runs: fast shutdown, SIGKILL after the grace. A server whose
  // shim is gone is killed outright (nothing else would stop it).
  Status StopServer(const AddonRecord& rec) {
    ReplicaHandle handle = HandleOf(rec);
    if (handle.shim_pid == 0) {
      if (auto adopted = supervisor_.Adopt(rec.run_dir); adopted.ok()) handle = *adopted;
    }
    if (handle.shim_pid != 0 && ProcessAlive(handle.shim_pid, handle.shim_start_time)) {
      RETURN_IF_ERROR(supervisor_.Stop(handle, options_.stop_grace, StopSignalOf(rec)));
    }
    if (!rec.data_dir.empty()) KillProcessesIn(DataDir(rec));
    return Status::Ok();
  }

  Status WriteRedisConfig(const AddonRecord& rec, const std::string& password) {
    const std::string path = RedisConfigPath(rec);
    RETURN_IF_ERROR(WriteFileAtomic(path, RedisConfig(rec.port, password, DataDir(rec)), 0600));
    if (isolate_ && chown(path.c_str(), UidOf(rec), GidOf(rec)) != 0) {
      return ErrnoStatus("cannot give " + path + " to the add-on's user", errno);
    }
    return Status::Ok();
  }

  // OK once the server accepts the environment's credentials.
  Status Probe(const AddonRecord& rec) {
    ASSIGN_OR_RETURN(std::string password, PasswordOf(rec));
    if (rec.kind == kRedis) return ProbeRedis(rec.port, password);
    ASSIGN_OR_RETURN(PgServer pg, PgOf(rec));
    const Settings settings = ParseSettings(rec);
    return ProbePostgres(pg, settings.user, password, settings.database);
  }

  std::string LogTail(const AddonRecord& rec) {
    auto lines = TailLines(rec.log_path, kLogTailLines);
    if (!lines.ok() || lines->empty()) return "";
    std::string out = "\nlast lines of " + rec.log_path + ":";
    for (const auto& l : *lines) out += "\n  " + l;
    return out;
  }

  // Polls `ready` until it holds, the server exits or ready_timeout passes.
  Status WaitReady(const AddonRecord& rec, const std::function<Status()>& ready,
                   const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
    Status last = Unavailable("not tried");
    while (true) {
      last = ready();
      if (last.ok()) return last;
      if (!supervisor_.Running(HandleOf(rec))) {
        auto code = supervisor_.ExitCode(HandleOf(rec));
        return Unavailable(what + ": the server exited" +
                           (code ? " with code " + std::to_string(*code) : "") +
                           " before it accepted connections" + LogTail(rec));
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return DeadlineExceeded(what + ": the server did not accept connections within " +
                                std::to_string(options_.ready_timeout.count()) +
                                "s (last: " + last.message() + ")" + LogTail(rec));
      }
      std::this_thread::sleep_for(kReadyPoll);
    }
  }

  Status ProvisionPostgres(AddonRecord& rec, const Settings& settings,
                           const std::string& password) {
    ASSIGN_OR_RETURN(PgServer pg, PgOf(rec));
    RETURN_IF_ERROR(GiveDirectory(rec, rec.data_dir));
    RETURN_IF_ERROR(GiveDirectory(rec, pg.socket_dir));
    RETURN_IF_ERROR(MakeDirs(rec.run_dir, 0700));
    SandboxSpec sandbox = SandboxOf(rec);
    if (sandbox.enabled()) {
      // initdb looks its user up by uid: a passwd naming it, seen in its namespace only.
      ASSIGN_OR_RETURN(std::string passwd, ReadFile("/etc/passwd"));
      if (!passwd.empty() && passwd.back() != '\n') passwd += "\n";
      passwd += "slipway-addon-" + std::to_string(rec.id) + ":x:" + std::to_string(sandbox.uid) +
                ":" + std::to_string(sandbox.gid) + ":Slipway add-on:" + rec.data_dir +
                ":/usr/sbin/nologin\n";
      const std::string passwd_path = rec.run_dir + "/passwd";
      RETURN_IF_ERROR(WriteFileAtomic(passwd_path, passwd, 0644));
      sandbox.binds.push_back({passwd_path, "/etc/passwd", true, ""});
    }
    const std::string what = "provisioning " + Describe(rec);
    Status initdb = InitDb(pg, sandbox, rec.log_path).WithContext(what);
    if (sandbox.enabled()) unlink((rec.run_dir + "/passwd").c_str());
    RETURN_IF_ERROR(initdb);
    RETURN_IF_ERROR(StartServer(rec).WithContext(what));
    RETURN_IF_ERROR(store_.UpdateAddon(rec));
    const Masker masker({password});
    RETURN_IF_ERROR(WaitReady(
        rec, [&] { return Psql(pg, "postgres", "SELECT 1;\n", masker).status(); }, what));
    // A failed statement must not reach the server's log with the password in it.
    const std::string db = QuoteIdent(settings.database);
    const std::string role = QuoteIdent(settings.user);
    std::string sql = "SET log_min_error_statement = panic;\n";
    sql += "SELECT 'CREATE ROLE " + role + " LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles " +
           "WHERE rolname = " + QuoteLiteral(settings.user) + ") \\gexec\n";
    sql += "ALTER ROLE " + role + " WITH LOGIN PASSWORD " + QuoteLiteral(password) + ";\n";
    sql += "SELECT 'CREATE DATABASE " + db + " OWNER " + role +
           "' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = " +
           QuoteLiteral(settings.database) + ") \\gexec\n";
    sql += "REVOKE CONNECT ON DATABASE " + db + " FROM PUBLIC;\n";
    sql += "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;\n";
    RETURN_IF_ERROR(Psql(pg, "postgres", sql, masker).status().WithContext(what));
    return WaitReady(
        rec, [&] { return ProbePostgres(pg, settings.user, password, settings.database); }, what);
  }

  Status ProvisionRedis(AddonRecord& rec, const std::string& password) {
    RETURN_IF_ERROR(GiveDirectory(rec, rec.data_dir));
    RETURN_IF_ERROR(GiveDirectory(rec, DataDir(rec)));
    const std::string what = "provisioning " + Describe(rec);
    RETURN_IF_ERROR(StartServer(rec).WithContext(what));
    RETURN_IF_ERROR(store_.UpdateAddon(rec));
    return WaitReady(
        rec, [&] { return ProbeRedis(rec.port, password); }, what);
  }

  // Removes everything of an add-on that never became one (or whose provisioning a
  // crash interrupted): its server, its files, its record.
  void Discard(const AddonRecord& rec) {
    if (Status st = StopServer(rec); !st.ok()) spdlog::error("{}: {}", rec.name, st.message());
    for (const std::string& path : {AddonDir(rec.id), SocketDir(rec.id), RunDir(rec.id),
                                    LogPath(rec.id), BackupDir(rec.id)}) {
      (void)RemoveTree(path);
    }
    (void)store_.DeleteAddon(rec.id);
    std::lock_guard<std::mutex> lock(mu_);
    runtimes_.erase(rec.id);
  }

  // ---- supervision ---------------------------------------------------------------

  void MonitorLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      lock.unlock();
      SuperviseAll();
      lock.lock();
      cv_.wait_for(lock, kMonitorInterval, [this] { return stopping_; });
    }
  }

  void SuperviseAll() {
    auto all = store_.ListAddons(0);
    if (!all.ok()) return;
    for (const auto& listed : *all) {
      if (Stopping()) return;
      if (listed.state == kProvisioning) continue;
      auto rt = RuntimeOf(listed.id);
      // Busy (being removed, stopped, started by a request): its turn comes next time.
      std::unique_lock<std::mutex> server(rt->lock, std::try_to_lock);
      if (!server.owns_lock() || rt->removed) continue;
      auto rec = store_.GetAddon(listed.id);
      if (!rec.ok() || rec->state == kProvisioning) continue;
      Supervise(*rec, *rt);
    }
  }

  void Supervise(AddonRecord& rec, Runtime& rt) {
    const auto now = clock_.Monotonic();
    const ReplicaHandle handle = HandleOf(rec);
    if (rec.shim_pid != 0 && supervisor_.Running(handle)) {
      if (!rt.ready) {
        if (Probe(rec).ok()) MarkReady(rec, rt);
      } else if (now - rt.started_at >= kStableAfter) {
        rt.backoff = 0ms;
      }
      return;
    }
    if (!rt.next_attempt) {
      if (rec.state == kFailed) {
        ScheduleRestart(rec, rt, rec.error.substr(0, rec.error.find("; retrying")), kFailed);
      } else {
        ScheduleRestart(rec, rt, ExitReason(handle), kRestarting);
      }
      return;
    }
    if (now < *rt.next_attempt) return;
    rt.next_attempt.reset();
    if (Status st = StartServer(rec); !st.ok()) {
      ScheduleRestart(rec, rt, st.message(), kFailed);
      return;
    }
    rt.ready = false;
    rt.started_at = now;
    rec.state = kRestarting;
    (void)store_.UpdateAddon(rec);
    spdlog::info("{}: server restarted (pid {}, port {})", Describe(rec), rec.app_pid, rec.port);
  }

  std::string ExitReason(const ReplicaHandle& handle) const {
    auto code = supervisor_.ExitCode(handle);
    if (!code) return "the server stopped (its shim is gone)";
    if (*code > 128) return "the server was killed by signal " + std::to_string(*code - 128);
    return "the server exited with code " + std::to_string(*code);
  }

  void ScheduleRestart(AddonRecord& rec, Runtime& rt, const std::string& reason,
                       const char* state) {
    rt.backoff = rt.backoff.count() == 0 ? kFirstBackoff : std::min(rt.backoff * 2, kMaxBackoff);
    rt.next_attempt = clock_.Monotonic() + rt.backoff;
    rt.ready = false;
    rec.state = state;
    rec.error = reason + "; " + (state == std::string(kFailed) ? "retrying" : "restarting") +
                " in " + Seconds(rt.backoff) + " (log: " + rec.log_path + ")";
    (void)store_.UpdateAddon(rec);
    spdlog::warn("{}: {}", Describe(rec), rec.error);
  }

  void MarkReady(AddonRecord& rec, Runtime& rt) {
    rt.ready = true;
    if (rec.state == kRunning && rec.error.empty()) return;
    rec.state = kRunning;
    rec.error = "";
    (void)store_.UpdateAddon(rec);
    spdlog::info("{}: running and accepting connections on port {}", Describe(rec), rec.port);
  }

  // ---- backups -------------------------------------------------------------------

  // Backups a crash interrupted are FAILED, their partial files removed.
  void FailInterruptedBackups() {
    auto all = store_.ListBackups(0);
    if (!all.ok()) return;
    for (BackupRecord b : *all) {
      if (b.status != kBackupRunning) continue;
      if (!b.path.empty()) unlink((b.path + ".partial").c_str());
      b.status = kBackupFailed;
      b.error = "interrupted: the Slipway daemon stopped while the backup ran";
      b.path = "";
      b.finished_at = UnixMillis(clock_);
      (void)store_.UpdateBackup(b);
    }
  }

  // Takes a backup; the caller holds the add-on's backup_lock.
  Result<BackupInfo> RunBackupLocked(const AddonRecord& rec, const std::string& trigger) {
    const Settings settings = ParseSettings(rec);
    BackupRecord b;
    b.addon_id = rec.id;
    b.status = kBackupRunning;
    b.trigger = trigger;
    b.started_at = UnixMillis(clock_);
    ASSIGN_OR_RETURN(b, store_.CreateBackup(b));
    const std::string dir = BackupDir(rec.id);
    b.path = dir + "/" + rec.name + "-" + CompactUtc(b.started_at) + "-" + std::to_string(b.id) +
             ".dump";
    (void)store_.UpdateBackup(b);
    const std::string partial = b.path + ".partial";

    Status st = MakeDirs(dir, 0700);
    FileDigest digest;
    if (st.ok()) {
      auto pg = PgOf(rec);
      auto dumped = pg.ok() ? PgDump(*pg, settings.database, partial, rec.run_dir + "/dump.fifo")
                            : Result<FileDigest>(pg.status());
      st = dumped.status();
      if (dumped.ok()) digest = *dumped;
    }
    if (st.ok() && rename(partial.c_str(), b.path.c_str()) != 0) {
      st = ErrnoStatus("cannot rename " + partial, errno);
    }
    if (st.ok()) st = SyncDirectory(dir);
    if (!st.ok()) {
      unlink(partial.c_str());
      unlink(b.path.c_str());
      const std::string what = "backup " + std::to_string(b.id) + " of add-on \"" + rec.name + "\"";
      Status failed;
      if (st.code() == StatusCode::kResourceExhausted) {
        failed = ResourceExhausted(what + " failed: " + dir + " is full (" + st.message() +
                                   "); free space there, then take one with `slipway backups "
                                   "create --addon " +
                                   rec.name + "`");
      } else if (st.code() == StatusCode::kUnavailable) {
        failed = Unavailable(what + " failed: " + st.message() +
                             "; is the server running? see `slipway addons`");
      } else {
        failed = Status(st.code(), what + " failed: " + st.message());
      }
      b.status = kBackupFailed;
      b.error = failed.message();
      b.path = "";
      b.finished_at = UnixMillis(clock_);
      (void)store_.UpdateBackup(b);
      spdlog::error("{}: {}", Describe(rec), failed.message());
      return failed;
    }
    b.status = kBackupCompleted;
    b.bytes = digest.bytes;
    b.sha256 = digest.sha256;
    b.finished_at = UnixMillis(clock_);
    RETURN_IF_ERROR(store_.UpdateBackup(b));
    spdlog::info("{}: {} backup {} completed: {} ({} bytes)", Describe(rec), trigger, b.id, b.path,
                 b.bytes);
    if (trigger == "schedule") ApplyRetention(rec, settings.retention);
    return BackupInfoOf(b, rec.name);
  }

  // Keeps the newest `retention` completed scheduled backups; older scheduled ones go,
  // files and all. Manual and before-* backups stay until deleted.
  void ApplyRetention(const AddonRecord& rec, int retention) {
    auto backups = store_.ListBackups(rec.id);  // newest first
    if (!backups.ok()) return;
    int kept = 0;
    for (const auto& b : *backups) {
      if (b.trigger != "schedule" || b.status == kBackupRunning) continue;
      if (b.status == kBackupCompleted && ++kept <= retention) continue;
      if (b.status == kBackupFailed && kept < retention) continue;
      if (!b.path.empty() && unlink(b.path.c_str()) != 0 && errno != ENOENT) {
        spdlog::error("{}: cannot delete old backup {}: {}", Describe(rec), b.path,
                      std::strerror(errno));
        continue;
      }
      (void)store_.DeleteBackup(b.id);
      spdlog::info("{}: backup {} deleted (the newest {} scheduled backups are kept)",
                   Describe(rec), b.id, retention);
    }
  }

  void ScheduleLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      lock.unlock();
      RunDueBackups();
      lock.lock();
      cv_.wait_for(lock, kScheduleInterval, [this] { return stopping_; });
    }
  }

  void RunDueBackups() {
    auto all = store_.ListAddons(0);
    if (!all.ok()) return;
    const auto now = clock_.Now();
    for (const auto& rec : *all) {
      if (Stopping()) return;
      if (rec.kind != kPostgres || rec.state == kProvisioning) continue;
      const Settings settings = ParseSettings(rec);
      auto schedule = CronSchedule::Parse(settings.schedule);
      if (!schedule.ok()) continue;
      auto rt = RuntimeOf(rec.id);
      if (!rt->next_backup) {
        // The first slot after the last scheduled backup (or the add-on's creation): one
        // missed while the daemon was down is taken now, once.
        int64_t since = rec.created_at;
        if (auto backups = store_.ListBackups(rec.id); backups.ok()) {
          for (const auto& b : *backups) {
            if (b.trigger == "schedule") {
              since = std::max(since, b.started_at);
              break;
            }
          }
        }
        rt->next_backup =
            schedule->Next(std::chrono::system_clock::time_point(std::chrono::milliseconds(since)));
      }
      if (!rt->next_backup || *rt->next_backup > now) continue;
      {
        std::lock_guard<std::mutex> backups(rt->backup_lock);
        if (rt->removed) continue;
        auto current = store_.GetAddon(rec.id);
        if (current.ok()) (void)RunBackupLocked(*current, "schedule");
      }
      rt->next_backup = schedule->Next(now);
    }
  }

  // ---- answers -------------------------------------------------------------------

  AddonInfo InfoOf(const AddonRecord& rec, const std::string& project,
                   const std::string& environment) const {
    const Settings settings = ParseSettings(rec);
    AddonInfo info;
    info.id = rec.id;
    info.project = project;
    info.environment = environment;
    info.name = rec.name;
    info.kind = rec.kind;
    info.port = rec.port;
    info.state = rec.state;
    info.error = rec.error;
    info.version = settings.version;
    info.pid = rec.app_pid;
    auto password = PasswordOf(rec);
    const std::string pw = password.ok() ? *password : "";
    const std::string port = std::to_string(rec.port);
    if (rec.kind == kPostgres) {
      info.backup_schedule = settings.schedule;
      info.backup_retention = settings.retention;
      info.variables = {{"DATABASE_URL", "postgresql://" + settings.user + ":" + pw +
                                             "@127.0.0.1:" + port + "/" + settings.database},
                        {"PGHOST", "127.0.0.1"},
                        {"PGPORT", port},
                        {"PGUSER", settings.user},
                        {"PGPASSWORD", pw},
                        {"PGDATABASE", settings.database}};
      info.secret_variables = {"DATABASE_URL", "PGPASSWORD"};
    } else {
      info.variables = {{"REDIS_URL", "redis://default:" + pw + "@127.0.0.1:" + port},
                        {"REDISHOST", "127.0.0.1"},
                        {"REDISPORT", port},
                        {"REDISUSER", "default"},
                        {"REDISPASSWORD", pw}};
      info.secret_variables = {"REDIS_URL", "REDISPASSWORD"};
    }
    return info;
  }

  Store& store_;
  Supervisor& supervisor_;
  Clock& clock_;
  const AddonOptions options_;
  const std::shared_ptr<const SecretBox> box_;
  const std::string home_;
  const bool isolate_;
  const std::string hide_dir_;

  // Serialises provisioning, removal and stopping of servers.
  std::mutex ops_mu_;
  std::mutex mu_;  // guards runtimes_ and stopping_
  std::condition_variable cv_;
  std::map<int64_t, std::shared_ptr<Runtime>> runtimes_;
  bool stopping_ = false;
  std::thread monitor_;
  std::thread scheduler_;
};

// Servers run as kAddonIdBase + id: their ids must stay below the apps' (3'000'000 + id).
static_assert(kAddonIdBase + 1'000'000 <= 3'000'000);

}  // namespace

Result<std::unique_ptr<AddonManager>> AddonManager::Create(Store& store, Supervisor& supervisor,
                                                           Clock& clock, AddonOptions options) {
  if (options.home.empty()) return InvalidArgument("the add-on manager needs the data dir");
  if (!options.secrets) {
    return InvalidArgument("the add-on manager needs the SecretBox that seals the passwords");
  }
  return std::unique_ptr<AddonManager>(
      new AddonManagerImpl(store, supervisor, clock, std::move(options)));
}

}  // namespace slipway
