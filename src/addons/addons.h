#pragma once

// Add-ons: the PostgreSQL and Redis servers Slipway runs for a project environment,
// from the host's packages (no containers), with their backups.
//
// Each add-on is one real server process of its own, under its own `slipway shim`
// (supervisor/supervisor.h) so it outlives a restart of the daemon and is re-adopted
// by the next one; its data dir is <home>/addons/<id>/, its log
// <home>/logs/addons/<id>.log. It listens on 127.0.0.1 on a port chosen once (free at
// the time, or the one asked for) and kept, since the URLs given to apps hold it.
//
//   postgres  initdb'd with scram-sha-256 for TCP; one database and one role (LOGIN,
//             generated password) for the project environment: "<project>" in
//             production, "<project>_<environment>" elsewhere (non [a-z0-9_] as "_").
//             The platform's own superuser connects only over a Unix socket in a
//             directory no app can enter. Variables: DATABASE_URL
//             (postgresql://USER:PASSWORD@127.0.0.1:PORT/DB), PGHOST, PGPORT, PGUSER,
//             PGPASSWORD, PGDATABASE.
//   redis     redis-server with a generated password (requirepass, in a 0600 config
//             file, never in argv), append-only persistence, protected mode. Variables:
//             REDIS_URL (redis://default:PASSWORD@127.0.0.1:PORT), REDISHOST, REDISPORT,
//             REDISUSER, REDISPASSWORD.
//
// When the daemon runs as root, each server runs as a user of its own (uid/gid
// kAddonIdBase + id) in a mount namespace that hides the data dir but its own
// directory (common/sandbox.h): apps cannot read its files, and it cannot read theirs.
//
// Supervision: a server that exits is restarted with backoff (0.5 s doubling to 30 s),
// with an event-like line in the daemon's log and the reason in the record's `error`.
// Its port taken by another process is such a reason; Slipway keeps retrying.
//
// Backups (postgres): `pg_dump --format=custom` of the environment's database into
// <home>/backups/<addon id>/<name>-<UTC time>-<backup id>.dump, written to a ".partial"
// file (by Slipway itself from what pg_dump sends: pg_dump 15 ignores a full disk),
// fsynced, checksummed (SHA-256) and renamed: only then is the backup COMPLETED and
// listed as good. A
// failed backup (the disk full, the server down) is FAILED with the reason, its partial
// file removed, the database untouched. Scheduled by the add-on's cron schedule
// (daily at 03:00 UTC unless set) with retention (the newest 7 completed scheduled
// backups unless set; manual ones are kept until deleted).
// Restore: the file's checksum is checked, it is restored into a new scratch database,
// and only when pg_restore succeeded does the scratch database replace the target (the
// environment's database, or a new one named by the caller). A corrupt file is refused
// with the reason and the database unchanged. Before a restore over the environment's
// database a "before-restore" backup is taken.
//
// Thread-safety: every method may be called from any thread.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "secrets/secrets.h"
#include "store/store.h"
#include "supervisor/supervisor.h"

namespace slipway {

// Add-on servers run as uid/gid kAddonIdBase + add-on id (apps use 3'000'000 + service id).
inline constexpr int64_t kAddonIdBase = 2'000'000;

struct AddonOptions {
  std::string home;  // the data dir
  // Servers run as their own user in a mount namespace when this process is root.
  bool isolate = true;
  // Where the PostgreSQL server binaries are (initdb, postgres, pg_dump, pg_restore,
  // psql); "": the newest /usr/lib/postgresql/<version>/bin, else PATH.
  std::string postgres_bindir;
  std::string redis_server;  // path of redis-server; "": PATH
  // Required: seals the passwords in the store (the same key at every start).
  std::shared_ptr<const SecretBox> secrets;
  std::chrono::milliseconds stop_grace{std::chrono::seconds(30)};
  // How long a new server may take to accept connections before provisioning fails.
  std::chrono::seconds ready_timeout{std::chrono::seconds(60)};
};

// What `slipway addons` shows of one add-on.
struct AddonInfo {
  int64_t id = 0;
  std::string project;
  std::string environment;
  std::string name;
  std::string kind;  // "postgres", "redis"
  int port = 0;
  std::string state;    // AddonRecord::state
  std::string error;    // why it is not running; "" when fine
  std::string version;  // "PostgreSQL 15.18", "Redis 7.0.15"
  // Its variables; the ones holding the password are secret (the caller masks them).
  std::map<std::string, std::string> variables;
  std::vector<std::string> secret_variables;  // names in `variables` that are secret
  std::string backup_schedule;                // postgres: cron expression; "" for redis
  int backup_retention = 0;
  int64_t pid = 0;  // the server's main process
};

struct AddonRequest {
  std::string project;
  std::string environment = "production";
  std::string kind;             // "postgres" or "redis"
  std::string name;             // "": the kind's name ("postgres", "redis")
  int port = 0;                 // 0: a free one
  std::string backup_schedule;  // "": daily at 03:00 UTC (postgres only)
  int backup_retention = 0;     // 0: 7
};

struct BackupInfo {
  int64_t id = 0;
  std::string addon;    // the add-on's name
  std::string status;   // kBackupRunning, kBackupCompleted, kBackupFailed
  std::string trigger;  // "schedule", "manual", "before-restore", "before-delete"
  std::string path;
  int64_t bytes = 0;
  std::string sha256;
  std::string error;
  int64_t started_at = 0;  // unix millis
  int64_t finished_at = 0;
};

class AddonManager {
 public:
  // Nothing starts here; Start() does. kInvalidArgument without a home or secrets.
  static Result<std::unique_ptr<AddonManager>> Create(Store& store, Supervisor& supervisor,
                                                      Clock& clock, AddonOptions options);
  virtual ~AddonManager() = default;

  // At daemon start: re-adopts the servers still running from the store, starts those
  // that are not (a port taken is recorded as the add-on's error and retried), removes
  // what a provisioning interrupted by a crash left, marks backups a crash interrupted
  // FAILED, and starts the supervision and backup-schedule threads. Returns once the
  // servers accept connections (at most ready_timeout), so the apps recovered next find
  // their databases up.
  virtual Status Start() = 0;

  // Provisions the add-on (idempotent: an existing one of that name and kind is left as
  // it is and returned) and returns once it accepts connections with its credentials.
  // A missing project or environment is created, as `slipway up` does.
  // Errors, one line each:
  //   kFailedPrecondition "PostgreSQL server binaries not found (initdb, postgres in
  //     /usr/lib/postgresql/*/bin or PATH); install them: apt-get install postgresql"
  //   kFailedPrecondition "redis-server not found on PATH; install it: apt-get install
  //     redis-server"
  //   kFailedPrecondition "port 5432 on 127.0.0.1 is in use by another process; choose
  //     another with --port, or leave --port out for a free one"
  //   kAlreadyExists "... has an add-on named "db" already (redis)" (another kind)
  //   kFailedPrecondition "port 5432 on 127.0.0.1 is kept by add-on ..." (another
  //     add-on's, running or not)
  //   kInvalidArgument for a bad name (a DNS label), kind, port, schedule or retention
  // A failed provisioning leaves nothing behind (no record, no data dir, no process).
  virtual Result<AddonInfo> Ensure(const AddonRequest& request) = 0;

  // The environment's add-ons, oldest first. kNotFound for an unknown project or
  // environment.
  virtual Result<std::vector<AddonInfo>> List(const std::string& project,
                                              const std::string& environment) = 0;

  // The variables of add-on `name` of the environment (see the top of this file), or
  // nullopt when the environment has no add-on of that name.
  virtual std::optional<std::map<std::string, std::string>> Variables(
      const std::string& project, const std::string& environment, const std::string& name) = 0;

  // Stops the add-on's server, deletes its data dir, its log and its record. A
  // "before-delete" backup of a postgres add-on is taken first and its file kept (its
  // path is returned; "" without one) unless `keep_backup` is false; when it fails,
  // nothing is removed and the error says so. The files of earlier backups stay in
  // <home>/backups/<addon id>/ too (their records go). kNotFound for an unknown add-on.
  virtual Result<std::string> Remove(const std::string& project, const std::string& environment,
                                     const std::string& name, bool keep_backup) = 0;

  // Backups of a postgres add-on. CreateBackup returns when it is COMPLETED, or the
  // error that made it FAILED (kResourceExhausted for a full disk, naming the directory).
  // kFailedPrecondition for a redis add-on ("redis add-ons are kept by append-only
  // persistence; backups are for postgres add-ons").
  virtual Result<BackupInfo> CreateBackup(const std::string& project,
                                          const std::string& environment, const std::string& name,
                                          const std::string& trigger) = 0;
  // Newest first; `name` "": of every add-on of the environment.
  virtual Result<std::vector<BackupInfo>> ListBackups(const std::string& project,
                                                      const std::string& environment,
                                                      const std::string& name) = 0;
  // Restores COMPLETED backup `backup_id` of the add-on into `database` ("": the
  // environment's own database, replaced; else a new database of that name, owned by
  // the environment's role, which must not exist yet). Errors: kNotFound for an unknown
  // backup or one of another add-on, kFailedPrecondition for a backup not COMPLETED,
  // whose file is missing, whose checksum does not match or that pg_restore rejects
  // ("backup 3 is corrupt: ...; the database is unchanged"), kAlreadyExists for an
  // existing `database`, kInvalidArgument for a `database` name that is not
  // [a-z_][a-z0-9_]* (at most 63). Connections to a replaced database are ended.
  virtual Status Restore(const std::string& project, const std::string& environment,
                         const std::string& name, int64_t backup_id,
                         const std::string& database) = 0;

  // Stops the threads. With `stop_servers`, the servers are stopped too (fast shutdown,
  // SIGKILL after stop_grace); without, they keep running for the next daemon to adopt.
  virtual void Shutdown(bool stop_servers) = 0;
};

}  // namespace slipway
