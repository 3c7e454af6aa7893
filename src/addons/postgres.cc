// PostgreSQL for the add-ons (addons_impl.h): finding the binaries, initdb, the
// postmaster's command line, and the clients (psql, pg_dump, pg_restore) the platform
// runs as the superuser over the server's Unix socket.

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <thread>

#include "addons/addons_impl.h"
#include "common/fs.h"

namespace slipway::addons_impl {

namespace {

constexpr const char* kPostgresRoot = "/usr/lib/postgresql";
constexpr auto kProbeTimeout = std::chrono::seconds(10);

bool Executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

// "15", "9.6", "16" -> comparable numbers; a name that is no version sorts first.
std::vector<int> VersionParts(const std::string& name) {
  std::vector<int> parts;
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    std::string part = name.substr(start, dot - start);
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos) return {};
    parts.push_back(std::atoi(part.c_str()));
    start = dot + 1;
  }
  return parts;
}

PostgresTools ToolsIn(const std::string& bindir) {
  PostgresTools tools;
  tools.bindir = bindir;
  tools.initdb = bindir + "/initdb";
  tools.postgres = bindir + "/postgres";
  tools.pg_dump = bindir + "/pg_dump";
  tools.pg_restore = bindir + "/pg_restore";
  tools.psql = bindir + "/psql";
  return tools;
}

bool Complete(const PostgresTools& t) {
  return Executable(t.initdb) && Executable(t.postgres) && Executable(t.pg_dump) &&
         Executable(t.pg_restore) && Executable(t.psql);
}

const Masker& NoSecrets() {
  static const Masker kNone;
  return kNone;
}

SpawnOptions Client(const PgServer& pg, std::vector<std::string> argv) {
  SpawnOptions spawn;
  spawn.argv = std::move(argv);
  spawn.env = pg.env;
  spawn.env["PGCONNECT_TIMEOUT"] = "5";
  return spawn;
}

std::vector<std::string> SocketArgs(const PgServer& pg) {
  return {"-h", pg.socket_dir, "-p", std::to_string(pg.port), "-U", kSuperuser};
}

}  // namespace

Result<PostgresTools> FindPostgresTools(const std::string& configured) {
  const std::string kInstall = "; install them: apt-get install postgresql";
  if (!configured.empty()) {
    PostgresTools tools = ToolsIn(configured);
    if (Complete(tools)) return tools;
    return FailedPrecondition(
        "PostgreSQL server binaries not found (initdb, postgres, pg_dump, pg_restore, psql in " +
        configured + ")" + kInstall);
  }
  std::vector<std::pair<std::vector<int>, std::string>> versions;
  if (DIR* dir = opendir(kPostgresRoot)) {
    while (dirent* entry = readdir(dir)) {
      auto parts = VersionParts(entry->d_name);
      if (!parts.empty()) versions.emplace_back(parts, entry->d_name);
    }
    closedir(dir);
  }
  std::sort(versions.rbegin(), versions.rend());
  for (const auto& [parts, name] : versions) {
    PostgresTools tools = ToolsIn(std::string(kPostgresRoot) + "/" + name + "/bin");
    if (Complete(tools)) return tools;
  }
  const char* path = std::getenv("PATH");
  std::string initdb = FindExecutable("initdb", path ? path : "/usr/bin:/bin");
  if (!initdb.empty()) {
    PostgresTools tools = ToolsIn(initdb.substr(0, initdb.rfind('/')));
    if (Complete(tools)) return tools;
  }
  return FailedPrecondition(
      "PostgreSQL server binaries not found (initdb, postgres in /usr/lib/postgresql/*/bin or "
      "PATH)" +
      kInstall);
}

Result<std::string> PostgresVersion(const PostgresTools& tools) {
  SpawnOptions spawn;
  spawn.argv = {tools.postgres, "--version"};
  spawn.env = {{"PATH", "/usr/bin:/bin"}, {"LANG", "C.UTF-8"}};
  ASSIGN_OR_RETURN(CommandResult r, RunCollecting(spawn, kProbeTimeout, NoSecrets()));
  // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
  const std::string text = r.lines.empty() ? "" : r.lines.front();
  const std::string marker = "(PostgreSQL) ";
  auto at = text.find(marker);
  if (r.exit_code != 0 || at == std::string::npos) {
    return FailedPrecondition(tools.postgres + " --version did not name a PostgreSQL version (" +
                              r.Tail() + "); reinstall it: apt-get install --reinstall postgresql");
  }
  std::string version = text.substr(at + marker.size());
  version = version.substr(0, version.find(' '));
  return "PostgreSQL " + version;
}

std::string PostgresCommand(const PgServer& pg) {
  std::string command = ShellQuote(pg.tools.postgres) + " -D " + ShellQuote(pg.data_dir) + " -p " +
                        std::to_string(pg.port) + " -k " + ShellQuote(pg.socket_dir);
  // Loopback only; modest memory, since a machine runs one server per environment.
  for (const char* setting :
       {"listen_addresses=127.0.0.1", "unix_socket_permissions=0700", "shared_buffers=32MB",
        "max_connections=50", "work_mem=4MB", "maintenance_work_mem=32MB", "max_wal_size=256MB",
        "huge_pages=off", "logging_collector=off", "log_destination=stderr"}) {
    command += std::string(" -c ") + setting;
  }
  return command;
}

Status InitDb(const PgServer& pg, const SandboxSpec& sandbox, const std::string& log_path) {
  SpawnOptions spawn;
  spawn.argv = {
      pg.tools.initdb,      "--pgdata=" + pg.data_dir,   "--username=" + std::string(kSuperuser),
      "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
      "--locale=C.UTF-8",   "--no-instructions"};
  spawn.env = pg.env;
  spawn.sandbox = sandbox;
  spawn.cwd = pg.data_dir.substr(0, pg.data_dir.rfind('/'));
  (void)AppendFile(log_path, "==> initdb " + pg.data_dir + "\n");
  ASSIGN_OR_RETURN(CommandResult r,
                   RunCollecting(spawn, std::chrono::minutes(5), NoSecrets(), log_path));
  if (r.timed_out) return DeadlineExceeded("initdb of " + pg.data_dir + " timed out after 5 min");
  if (r.exit_code != 0) {
    return FailedPrecondition("initdb of " + pg.data_dir + " failed with exit code " +
                              std::to_string(r.exit_code) + ": " + r.Tail() + " (see " + log_path +
                              ")");
  }
  return Status::Ok();
}

Result<std::string> Psql(const PgServer& pg, const std::string& database, const std::string& sql,
                         const Masker& masker, std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(std::unique_ptr<StdinText> input, StdinText::Create(sql));
  std::vector<std::string> argv = {pg.tools.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"};
  for (auto& a : SocketArgs(pg)) argv.push_back(a);
  argv.insert(argv.end(), {"-d", database, "-f", "-"});
  SpawnOptions spawn = Client(pg, std::move(argv));
  spawn.stdin_path = input->path();
  ASSIGN_OR_RETURN(CommandResult r, RunCollecting(spawn, timeout, masker));
  if (r.timed_out) {
    return DeadlineExceeded("psql in database " + database + " timed out after " +
                            std::to_string(timeout.count() / 1000) + " s");
  }
  if (r.exit_code != 0) {
    return Unavailable("psql in database " + database + " failed: " + r.Tail());
  }
  std::string out;
  for (const auto& line : r.lines) out += line + "\n";
  return out;
}

Status ProbePostgres(const PgServer& pg, const std::string& user, const std::string& password,
                     const std::string& database) {
  SpawnOptions spawn =
      Client(pg, {pg.tools.psql, "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p",
                  std::to_string(pg.port), "-U", user, "-d", database, "-c", "SELECT 1"});
  spawn.env["PGPASSWORD"] = password;
  spawn.env["PGSSLMODE"] = "disable";
  spawn.env["PGCONNECT_TIMEOUT"] = "2";
  ASSIGN_OR_RETURN(CommandResult r, RunCollecting(spawn, kProbeTimeout, Masker({password})));
  if (r.exit_code == 0 && !r.lines.empty() && r.lines.back() == "1") return Status::Ok();
  return Unavailable(r.timed_out ? "no answer within " + std::to_string(kProbeTimeout.count()) + "s"
                                 : r.Tail(2));
}

Result<FileDigest> PgDump(const PgServer& pg, const std::string& database,
                          const std::string& out_path, const std::string& fifo_path) {
  unlink(fifo_path.c_str());
  if (mkfifo(fifo_path.c_str(), 0600) != 0) {
    return ErrnoStatus("cannot make the FIFO " + fifo_path, errno);
  }
  struct RemoveFifo {
    std::string path;
    ~RemoveFifo() { unlink(path.c_str()); }
  } remove_fifo{fifo_path};
  // The read end, and a write end of ours so the reader sees no end of file before
  // pg_dump has even opened the FIFO; ours is closed once pg_dump has exited.
  int in = open(fifo_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (in < 0) return ErrnoStatus("cannot open the FIFO " + fifo_path, errno);
  int keep_open = open(fifo_path.c_str(), O_WRONLY | O_CLOEXEC);
  if (keep_open < 0) {
    int e = errno;
    close(in);
    return ErrnoStatus("cannot open the FIFO " + fifo_path, e);
  }
  fcntl(in, F_SETFL, fcntl(in, F_GETFL) & ~O_NONBLOCK);
  int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) {
    int e = errno;
    close(in);
    close(keep_open);
    return ErrnoStatus("cannot write " + out_path, e);
  }

  // Copies the FIFO into the file, hashing as it goes; on a write error it stops (and
  // the command is killed).
  std::atomic<bool> write_failed{false};
  Status write_status;
  FileDigest digest;
  std::thread copier([&] {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    std::vector<char> buf(1 << 16);
    while (true) {
      ssize_t n = read(in, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(n));
      digest.bytes += n;
      for (ssize_t done = 0; done < n;) {
        ssize_t w = write(out, buf.data() + done, static_cast<size_t>(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          write_status = ErrnoStatus("cannot write " + out_path, errno);
          write_failed = true;
          break;
        }
        done += w;
      }
      if (write_failed) break;
    }
    close(in);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);
    digest.sha256 = HexOf(md, md_len);
  });

  // --no-sync: a FIFO cannot be fsynced; the file it feeds is, below.
  std::vector<std::string> argv = {pg.tools.pg_dump, "--format=custom", "--no-password",
                                   "--no-sync"};
  for (auto& a : SocketArgs(pg)) argv.push_back(a);
  argv.insert(argv.end(), {"--dbname=" + database, "--file=" + fifo_path});
  auto ran = RunCollecting(Client(pg, std::move(argv)), std::chrono::hours(12), NoSecrets(), "",
                           [&] { return write_failed.load(); });
  close(keep_open);
  copier.join();
  Status synced = write_status.ok() && fsync(out) != 0
                      ? ErrnoStatus("cannot sync " + out_path + " to disk", errno)
                      : Status::Ok();
  close(out);
  RETURN_IF_ERROR(write_status);
  if (!ran.ok()) return ran.status();
  if (ran->exit_code != 0) {
    if (ran->timed_out) return DeadlineExceeded("pg_dump ran for 12 hours and was stopped");
    return Unavailable(ran->Tail());
  }
  RETURN_IF_ERROR(synced);
  return digest;
}

Status PgRestore(const PgServer& pg, const std::string& file, const std::string& database) {
  std::vector<std::string> argv = {pg.tools.pg_restore, "--exit-on-error", "--single-transaction",
                                   "--no-password"};
  for (auto& a : SocketArgs(pg)) argv.push_back(a);
  argv.insert(argv.end(), {"--dbname=" + database, file});
  ASSIGN_OR_RETURN(CommandResult r,
                   RunCollecting(Client(pg, std::move(argv)), std::chrono::hours(12), NoSecrets()));
  if (r.exit_code == 0) return Status::Ok();
  if (r.timed_out) return DeadlineExceeded("pg_restore ran for 12 hours and was stopped");
  return FailedPrecondition(r.Tail());
}

}  // namespace slipway::addons_impl
