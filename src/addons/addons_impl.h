#pragma once

// Internals of the add-ons subsystem: what addons.cc needs of PostgreSQL and Redis, of
// files and of processes. Not part of the subsystem's contract (addons/addons.h); the
// tests use a few of them (RedisExchange) to talk to the servers directly.
//
// Thread-safety: every function may be called from any thread; they share no state.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/sandbox.h"
#include "common/shell.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "secrets/secrets.h"

namespace slipway::addons_impl {

// The platform's own PostgreSQL superuser, reached only over the Unix socket.
inline constexpr const char* kSuperuser = "slipway";

// Unix socket paths are limited to 107 bytes (sun_path), the socket file name included.
inline constexpr size_t kMaxSocketPath = 107;

// ---- names and quoting -----------------------------------------------------------

// The environment's database (and role) name: "<project>" in production,
// "<project>_<environment>" elsewhere, lowercased, other than [a-z0-9_] as "_", at most
// 63 bytes; a name PostgreSQL or Slipway keeps for itself ("postgres", "template1",
// "slipway", "pg_*") gets "_app" appended.
std::string DatabaseName(std::string_view project, std::string_view environment);
// True for a name a caller may give a new database: [a-z_][a-z0-9_]*, at most 63 bytes.
bool ValidDatabaseName(std::string_view name);
// "x" -> "\"x\"" (an SQL identifier); 'x' -> "'x'" (an SQL string literal).
std::string QuoteIdent(std::string_view name);
std::string QuoteLiteral(std::string_view text);

// ---- processes -------------------------------------------------------------------

// True when something listens on (or is bound to) 127.0.0.1:port, or on every address.
bool PortInUse(int port);

// SIGKILLs every process whose working directory is `dir` (a server's leftovers: a
// postmaster whose shim is gone, its backends) and waits, at most 10 s, until none is
// left. Returns how many it signalled.
int KillProcessesIn(const std::string& dir);

// What a command printed (secrets masked, the last 200 lines) and how it ended.
struct CommandResult {
  int exit_code = -1;
  bool timed_out = false;
  std::vector<std::string> lines;
  // The last `n` lines joined with "; " (for a one-line error).
  std::string Tail(size_t n = 3) const;
};

// Runs a command to completion (RunCommand), keeping its output masked by `masker`.
// Each line is also appended to `log_path` when it is not empty. `cancelled` returning
// true kills the command (CommandResult::exit_code is then its death by SIGKILL).
Result<CommandResult> RunCollecting(const SpawnOptions& spawn, std::chrono::milliseconds timeout,
                                    const Masker& masker, const std::string& log_path = "",
                                    std::function<bool()> cancelled = nullptr);

// Text handed to a child as its stdin without touching the disk (a memfd): passwords in
// SQL never appear in argv or in a file.
class StdinText {
 public:
  static Result<std::unique_ptr<StdinText>> Create(std::string_view text);
  ~StdinText();
  StdinText(const StdinText&) = delete;
  StdinText& operator=(const StdinText&) = delete;
  // For SpawnOptions::stdin_path: opened by the child between fork and exec.
  std::string path() const;

 private:
  explicit StdinText(int fd) : fd_(fd) {}
  int fd_;
};

// ---- files -----------------------------------------------------------------------

struct FileDigest {
  int64_t bytes = 0;
  std::string sha256;  // hex
};
// "0a1b..." of `size` bytes.
std::string HexOf(const unsigned char* bytes, size_t size);
// Reads the file through SHA-256.
Result<FileDigest> DigestFile(const std::string& path);
Status SyncDirectory(const std::string& dir);

// ---- PostgreSQL ------------------------------------------------------------------

struct PostgresTools {
  std::string bindir;
  std::string initdb, postgres, pg_dump, pg_restore, psql;
};

// `configured` (AddonOptions::postgres_bindir), else the newest
// /usr/lib/postgresql/<version>/bin, else PATH. kFailedPrecondition naming the package:
// "PostgreSQL server binaries not found (initdb, postgres in ...); install them:
// apt-get install postgresql".
Result<PostgresTools> FindPostgresTools(const std::string& configured);
// "PostgreSQL 15.18", from `postgres --version`.
Result<std::string> PostgresVersion(const PostgresTools& tools);

// One PostgreSQL server as the platform reaches it.
struct PgServer {
  PostgresTools tools;
  std::string data_dir;    // PGDATA
  std::string socket_dir;  // its Unix socket's directory (0700, the server's user)
  int port = 0;
  EnvMap env;  // the base environment of its processes and of the clients run here
};

// The shell command the shim runs: the postmaster in the foreground, logging to stderr.
std::string PostgresCommand(const PgServer& pg);
// initdb (UTF8, scram-sha-256 for TCP, trust on the socket) as `sandbox`'s user; output
// appended to `log_path`.
Status InitDb(const PgServer& pg, const SandboxSpec& sandbox, const std::string& log_path);
// Runs `sql` (fed on stdin) in `database` as the superuser over the socket, stopping at
// the first error. Returns the rows printed (unaligned, tuples only). Errors carry
// psql's last lines, masked by `masker`.
Result<std::string> Psql(const PgServer& pg, const std::string& database, const std::string& sql,
                         const Masker& masker,
                         std::chrono::milliseconds timeout = std::chrono::minutes(5));
// OK when `user`/`password` can log in to `database` over TCP and run a query.
Status ProbePostgres(const PgServer& pg, const std::string& user, const std::string& password,
                     const std::string& database);
// pg_dump --format=custom of `database` into `out_path`, which this process writes from
// what pg_dump sends through the FIFO `fifo_path` (made and removed here): pg_dump 15
// exits 0 having ignored a full disk, this write does not. Returns the file's size and
// SHA-256 once it is written and fsynced. Errors: kResourceExhausted "cannot write
// <out_path>: No space left on device" for a full disk (or quota), kUnavailable with
// pg_dump's last lines when it failed; `out_path` may then hold part of a dump.
Result<FileDigest> PgDump(const PgServer& pg, const std::string& database,
                          const std::string& out_path, const std::string& fifo_path);
// pg_restore of `file` into the (empty) `database`, in one transaction, stopping at the
// first error: kFailedPrecondition with pg_restore's last lines.
Status PgRestore(const PgServer& pg, const std::string& file, const std::string& database);

// ---- Redis -----------------------------------------------------------------------

// `configured` (AddonOptions::redis_server), else redis-server on PATH.
// kFailedPrecondition "redis-server not found on PATH; install it: apt-get install
// redis-server" (naming `configured` when given).
Result<std::string> FindRedisServer(const std::string& configured);
// "Redis 7.0.15", from `redis-server --version`.
Result<std::string> RedisVersion(const std::string& redis_server);
// The server's config file: loopback only, protected mode, the password, append-only
// persistence in `data_dir`, in the foreground, logging to stdout.
std::string RedisConfig(int port, const std::string& password, const std::string& data_dir);
std::string RedisCommand(const std::string& redis_server, const std::string& config_path);

// Sends each command (RESP arrays of bulk strings) to 127.0.0.1:port in order on one
// connection and returns each reply's first line ("+PONG", "-NOAUTH ...", "$5" ...).
// Bulk replies are returned as their content. kUnavailable when the server cannot be
// reached or stops answering within `timeout`.
Result<std::vector<std::string>> RedisExchange(
    int port, const std::vector<std::vector<std::string>>& commands,
    std::chrono::milliseconds timeout);
// OK when AUTH default <password> and PING are answered +OK and +PONG.
Status ProbeRedis(int port, const std::string& password);

}  // namespace slipway::addons_impl
