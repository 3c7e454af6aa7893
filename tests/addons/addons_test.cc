// The add-on manager against real servers: PostgreSQL from /usr/lib/postgresql/*/bin
// and redis-server from PATH, each under a shim of this binary (main.cc).
//
// Provisioning a PostgreSQL server takes a second or two, so the tests share one data
// dir, one manager and one server of each kind (Shared below) where that does not
// weaken them; they run in the order written, the last ones stopping and restarting
// the servers.

#include "addons/addons.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "addons/addons_impl.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/sandbox.h"
#include "common/subprocess.h"
#include "store/store.h"
#include "supervisor/supervisor.h"

namespace slipway {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kProject = "shop";

std::string SelfExe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// Polls `done` until it holds or a generous deadline passes; `each` runs before every
// look (e.g. to move a ManualClock along).
bool PollUntil(const std::function<bool()>& done, const std::function<void()>& each = nullptr,
               std::chrono::milliseconds limit = 60s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    if (each) each();
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

struct Output {
  int exit_code = -1;
  std::string text;
};

// psql as an app would run it: with the URL the platform gave.
Output Psql(const std::string& url, const std::string& sql) {
  SpawnOptions spawn;
  spawn.argv = {"psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql};
  spawn.env = {{"PATH", "/usr/bin:/bin"}, {"LANG", "C.UTF-8"}, {"PGCONNECT_TIMEOUT", "5"}};
  Output out;
  RunOptions run;
  run.timeout = 60s;
  run.on_line = [&](std::string_view line) { out.text += std::string(line) + "\n"; };
  auto outcome = RunCommand(spawn, run);
  if (outcome.ok()) out.exit_code = outcome->exit_code;
  return out;
}

std::string WithDatabase(std::string url, const std::string& database) {
  return url.substr(0, url.rfind('/') + 1) + database;
}

std::string ReadAll(const std::string& path) {
  auto content = ReadFile(path);
  return content.ok() ? *content : "";
}

// The real uid of a process, from /proc.
long UidOfProcess(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Uid:", 0) == 0) return std::strtol(line.c_str() + 4, nullptr, 10);
  }
  return -1;
}

std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

struct Shared {
  std::string root;  // a temp dir; the data dir is <root>/home
  std::string home;
  ManualClock clock{std::chrono::sys_days(std::chrono::year(2030) / 1 / 1)};
  std::unique_ptr<Store> store;
  std::unique_ptr<Supervisor> supervisor;
  // One key for every manager: the next one opens the passwords the first sealed.
  std::shared_ptr<const SecretBox> secrets = SecretBox::Ephemeral();
  std::unique_ptr<AddonManager> manager;
  AddonInfo pg;
  AddonInfo redis;

  AddonOptions Options() const {
    AddonOptions options;
    options.home = home;
    options.secrets = secrets;
    options.stop_grace = 10s;
    options.ready_timeout = 60s;
    return options;
  }

  Status NewManager() {
    auto manager_or = AddonManager::Create(*store, *supervisor, clock, Options());
    if (!manager_or.ok()) return manager_or.status();
    manager = std::move(*manager_or);
    return manager->Start();
  }
};

Shared* g = nullptr;

class AddonsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g = new Shared;
    char tmpl[] = "/tmp/slipway-addons-XXXXXX";
    g->root = mkdtemp(tmpl);
    g->home = g->root + "/home";
    ASSERT_TRUE(MakeDirs(g->home, 0700).ok());
    auto store = Store::Open(g->home + "/state.db", g->clock);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    g->store = std::move(*store);
    g->supervisor = std::make_unique<Supervisor>(SelfExe(), g->clock);
    Status started = g->NewManager();
    ASSERT_TRUE(started.ok()) << started.ToString();

    AddonRequest pg;
    pg.project = kProject;
    pg.kind = "postgres";
    auto pg_info = g->manager->Ensure(pg);
    ASSERT_TRUE(pg_info.ok()) << pg_info.status().ToString();
    g->pg = *pg_info;
    AddonRequest redis;
    redis.project = kProject;
    redis.kind = "redis";
    auto redis_info = g->manager->Ensure(redis);
    ASSERT_TRUE(redis_info.ok()) << redis_info.status().ToString();
    g->redis = *redis_info;
  }

  static void TearDownTestSuite() {
    if (g->manager) g->manager->Shutdown(true);
    g->manager.reset();
    (void)RemoveTree(g->root);
    delete g;
    g = nullptr;
  }

  void SetUp() override {
    if (!g->manager || g->pg.id == 0 || g->redis.id == 0) GTEST_SKIP() << "no shared servers";
  }

  static std::string Url() { return g->pg.variables.at("DATABASE_URL"); }

  static AddonInfo Current(const std::string& environment, const std::string& name) {
    auto all = g->manager->List(kProject, environment);
    if (all.ok()) {
      for (const auto& a : *all) {
        if (a.name == name) return a;
      }
    }
    return {};
  }
};

// ---- provisioning ------------------------------------------------------------------

TEST_F(AddonsTest, PostgresIsProvisionedAndAppsReachItWithDatabaseUrl) {
  const AddonInfo& pg = g->pg;
  EXPECT_EQ(pg.kind, "postgres");
  EXPECT_EQ(pg.name, "postgres");
  EXPECT_EQ(pg.state, "running");
  EXPECT_EQ(pg.error, "");
  EXPECT_EQ(pg.version.rfind("PostgreSQL 15", 0), 0u) << pg.version;
  EXPECT_GT(pg.port, 0);
  EXPECT_GT(pg.pid, 0);
  EXPECT_EQ(pg.backup_schedule, "0 3 * * *");
  EXPECT_EQ(pg.backup_retention, 7);
  const auto& v = pg.variables;
  const std::string password = v.at("PGPASSWORD");
  EXPECT_GE(password.size(), 24u);
  EXPECT_EQ(v.at("PGHOST"), "127.0.0.1");
  EXPECT_EQ(v.at("PGPORT"), std::to_string(pg.port));
  EXPECT_EQ(v.at("PGUSER"), "shop");
  EXPECT_EQ(v.at("PGDATABASE"), "shop");
  EXPECT_EQ(v.at("DATABASE_URL"),
            "postgresql://shop:" + password + "@127.0.0.1:" + std::to_string(pg.port) + "/shop");
  EXPECT_EQ(pg.secret_variables, (std::vector<std::string>{"DATABASE_URL", "PGPASSWORD"}));

  Output made = Psql(Url(),
                     "CREATE TABLE items (id serial PRIMARY KEY, name text);"
                     "INSERT INTO items (name) VALUES ('anchor'), ('buoy'), ('chart');");
  ASSERT_EQ(made.exit_code, 0) << made.text;
  Output rows = Psql(Url(), "SELECT name FROM items ORDER BY id");
  EXPECT_EQ(rows.exit_code, 0);
  EXPECT_EQ(rows.text, "anchor\nbuoy\nchart\n");
  EXPECT_EQ(Psql(Url(), "SHOW server_encoding").text, "UTF8\n");

  auto vars = g->manager->Variables(kProject, "production", "postgres");
  ASSERT_TRUE(vars.has_value());
  EXPECT_EQ(vars->at("DATABASE_URL"), Url());
  EXPECT_FALSE(g->manager->Variables(kProject, "production", "nope").has_value());

  // The password is in no process's argv and in no log line.
  EXPECT_EQ(ReadAll("/proc/" + std::to_string(pg.pid) + "/cmdline").find(password),
            std::string::npos);
  const std::string log = ReadAll(g->home + "/logs/addons/" + std::to_string(pg.id) + ".log");
  EXPECT_NE(log.find("database system is ready to accept connections"), std::string::npos) << log;
  EXPECT_EQ(log.find(password), std::string::npos);
}

TEST_F(AddonsTest, PostgresRunsAsItsOwnUserWithItsFilesOnlyItsOwn) {
  if (!SandboxSupported()) GTEST_SKIP() << "servers run as the current user when not root";
  const uid_t uid = static_cast<uid_t>(kAddonIdBase + g->pg.id);
  EXPECT_EQ(UidOfProcess(g->pg.pid), static_cast<long>(uid));
  const std::string dir = g->home + "/addons/" + std::to_string(g->pg.id);
  for (const std::string& path :
       {dir, dir + "/data", g->home + "/run/pg" + std::to_string(g->pg.id)}) {
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_uid, uid) << path;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << path;
  }
  // Its view of the data dir holds its own directory and nothing else of the platform.
  const std::string root = "/proc/" + std::to_string(g->pg.pid) + "/root";
  EXPECT_TRUE(PathExists(root + dir + "/data/PG_VERSION"));
  EXPECT_FALSE(PathExists(root + g->home + "/state.db"));
  EXPECT_FALSE(PathExists(root + g->home + "/addons/" + std::to_string(g->redis.id)));
}

TEST_F(AddonsTest, WrongPasswordAndOtherDatabasesAreRefused) {
  std::string url = Url();
  const std::string password = g->pg.variables.at("PGPASSWORD");
  url.replace(url.find(password), password.size(), "not-the-password");
  Output wrong = Psql(url, "SELECT 1");
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.text.find("password authentication failed"), std::string::npos) << wrong.text;

  // The environment's role reaches its own database only.
  Output other = Psql(WithDatabase(Url(), "postgres"), "SELECT 1");
  EXPECT_NE(other.exit_code, 0);
  EXPECT_NE(other.text.find("permission denied"), std::string::npos) << other.text;

  // The platform's superuser has no password: not reachable over TCP.
  Output super = Psql("postgresql://slipway@127.0.0.1:" + std::to_string(g->pg.port) + "/postgres",
                      "SELECT 1");
  EXPECT_NE(super.exit_code, 0) << super.text;
}

TEST_F(AddonsTest, RedisIsProvisionedWithAPassword) {
  const AddonInfo& redis = g->redis;
  EXPECT_EQ(redis.kind, "redis");
  EXPECT_EQ(redis.state, "running");
  EXPECT_EQ(redis.version.rfind("Redis 7", 0), 0u) << redis.version;
  EXPECT_EQ(redis.backup_schedule, "");
  const std::string password = redis.variables.at("REDISPASSWORD");
  EXPECT_EQ(redis.variables.at("REDIS_URL"),
            "redis://default:" + password + "@127.0.0.1:" + std::to_string(redis.port));
  EXPECT_EQ(redis.variables.at("REDISHOST"), "127.0.0.1");
  EXPECT_EQ(redis.variables.at("REDISPORT"), std::to_string(redis.port));
  EXPECT_EQ(redis.variables.at("REDISUSER"), "default");
  EXPECT_EQ(redis.secret_variables, (std::vector<std::string>{"REDIS_URL", "REDISPASSWORD"}));

  auto replies = addons_impl::RedisExchange(
      redis.port, {{"AUTH", "default", password}, {"SET", "greeting", "ahoy"}, {"GET", "greeting"}},
      5s);
  ASSERT_TRUE(replies.ok()) << replies.status().ToString();
  EXPECT_EQ(*replies, (std::vector<std::string>{"+OK", "+OK", "ahoy"}));

  auto anonymous = addons_impl::RedisExchange(redis.port, {{"GET", "greeting"}}, 5s);
  ASSERT_TRUE(anonymous.ok());
  EXPECT_EQ(anonymous->front().rfind("-NOAUTH", 0), 0u) << anonymous->front();
  auto wrong = addons_impl::RedisExchange(redis.port, {{"AUTH", "default", "nope"}}, 5s);
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->front().rfind("-WRONGPASS", 0), 0u) << wrong->front();

  // The password lives in a config file only its server reads, not in argv.
  const std::string conf = g->home + "/addons/" + std::to_string(redis.id) + "/redis.conf";
  struct stat st {};
  ASSERT_EQ(stat(conf.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  if (SandboxSupported()) {
    EXPECT_EQ(st.st_uid, static_cast<uid_t>(kAddonIdBase + redis.id));
    EXPECT_EQ(UidOfProcess(redis.pid), static_cast<long>(kAddonIdBase + redis.id));
  }
  EXPECT_EQ(ReadAll("/proc/" + std::to_string(redis.pid) + "/cmdline").find(password),
            std::string::npos);
}

TEST_F(AddonsTest, EnsureIsIdempotentAndNamesAreOneKindEach) {
  AddonRequest again;
  again.project = kProject;
  again.kind = "postgres";
  auto same = g->manager->Ensure(again);
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_EQ(same->id, g->pg.id);
  EXPECT_EQ(same->port, g->pg.port);
  EXPECT_EQ(same->variables, g->pg.variables);
  EXPECT_EQ(same->pid, g->pg.pid);

  AddonRequest clash;
  clash.project = kProject;
  clash.kind = "redis";
  clash.name = "postgres";
  auto refused = g->manager->Ensure(clash);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(refused.status().message().find("has an add-on named \"postgres\" already (postgres)"),
            std::string::npos)
      << refused.status().message();

  AddonRequest bad;
  bad.project = kProject;
  bad.kind = "mysql";
  EXPECT_EQ(g->manager->Ensure(bad).status().code(), StatusCode::kInvalidArgument);
  bad.kind = "postgres";
  bad.name = "Not_A_Label";
  EXPECT_EQ(g->manager->Ensure(bad).status().code(), StatusCode::kInvalidArgument);
  bad.name = "db2";
  bad.backup_schedule = "61 * * * *";
  EXPECT_EQ(g->manager->Ensure(bad).status().code(), StatusCode::kInvalidArgument);

  // The backup settings of an existing add-on follow what the config now says; the
  // server is left as it is.
  AddonRequest nightly = again;
  nightly.backup_schedule = "30 4 * * *";
  nightly.backup_retention = 14;
  auto changed = g->manager->Ensure(nightly);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_EQ(changed->backup_schedule, "30 4 * * *");
  EXPECT_EQ(changed->backup_retention, 14);
  EXPECT_EQ(changed->pid, g->pg.pid);
  auto kept = g->manager->Ensure(again);  // a config without the keys keeps them
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->backup_schedule, "30 4 * * *");
  nightly.backup_schedule = "0 3 * * *";
  nightly.backup_retention = 7;
  ASSERT_TRUE(g->manager->Ensure(nightly).ok());

  auto listed = g->manager->List(kProject, "production");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].name, "postgres");
  EXPECT_EQ((*listed)[1].name, "redis");
  EXPECT_EQ(g->manager->List("no-such-project", "production").status().code(),
            StatusCode::kNotFound);
}

// What is left in the data dir and the store, to check a failed Ensure left nothing.
struct Footprint {
  size_t records = 0;
  std::vector<std::string> addon_dirs, run_entries, logs;
  bool operator==(const Footprint&) const = default;
};

Footprint Measure() {
  Footprint f;
  auto all = g->store->ListAddons(0);
  f.records = all.ok() ? all->size() : 999;
  f.addon_dirs = DirEntries(g->home + "/addons");
  f.run_entries = DirEntries(g->home + "/run");
  f.logs = DirEntries(g->home + "/logs/addons");
  return f;
}

TEST_F(AddonsTest, MissingServerBinariesNameThePackageAndLeaveNothing) {
  const std::string empty = g->root + "/empty-bin";
  ASSERT_TRUE(MakeDirs(empty).ok());
  AddonOptions options = g->Options();
  options.postgres_bindir = empty;
  options.redis_server = empty + "/redis-server";
  auto other = AddonManager::Create(*g->store, *g->supervisor, g->clock, options);
  ASSERT_TRUE(other.ok());
  const Footprint before = Measure();

  AddonRequest pg;
  pg.project = kProject;
  pg.kind = "postgres";
  pg.name = "db2";
  auto no_pg = (*other)->Ensure(pg);
  ASSERT_FALSE(no_pg.ok());
  EXPECT_EQ(no_pg.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(no_pg.status().message().find("PostgreSQL server binaries not found"),
            std::string::npos)
      << no_pg.status().message();
  EXPECT_NE(no_pg.status().message().find("apt-get install postgresql"), std::string::npos);
  EXPECT_EQ(no_pg.status().message().find('\n'), std::string::npos);

  AddonRequest redis;
  redis.project = kProject;
  redis.kind = "redis";
  redis.name = "cache2";
  auto no_redis = (*other)->Ensure(redis);
  ASSERT_FALSE(no_redis.ok());
  EXPECT_EQ(no_redis.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(no_redis.status().message().find("apt-get install redis-server"), std::string::npos)
      << no_redis.status().message();

  EXPECT_EQ(Measure(), before);
  EXPECT_FALSE(g->manager->Variables(kProject, "production", "db2").has_value());
}

TEST_F(AddonsTest, ExplicitPortTakenIsRefusedAndLeavesNothing) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  const Footprint before = Measure();

  AddonRequest req;
  req.project = kProject;
  req.kind = "redis";
  req.name = "cache2";
  req.port = port;
  auto taken = g->manager->Ensure(req);
  close(fd);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(taken.status().message(),
            "port " + std::to_string(port) +
                " on 127.0.0.1 is in use by another process; choose another with --port, or leave "
                "--port out for a free one");

  req.port = g->pg.port;  // kept by an add-on, even when its server is down
  auto kept = g->manager->Ensure(req);
  ASSERT_FALSE(kept.ok());
  EXPECT_NE(kept.status().message().find("is kept by add-on \"postgres\""), std::string::npos)
      << kept.status().message();
  EXPECT_EQ(Measure(), before);
}

// ---- supervision ---------------------------------------------------------------------

TEST_F(AddonsTest, PostgresKilledIsRestartedOnItsPortWithItsData) {
  const pid_t old_pid = static_cast<pid_t>(g->pg.pid);
  ASSERT_EQ(kill(old_pid, SIGKILL), 0);
  // The restart waits for its backoff on the (manual) clock: the state says why first.
  AddonInfo seen;
  ASSERT_TRUE(PollUntil([&] {
    seen = Current("production", "postgres");
    return seen.state == "restarting";
  })) << seen.state;
  EXPECT_NE(seen.error.find("killed by signal 9; restarting in 0.5s"), std::string::npos)
      << seen.error;
  ASSERT_TRUE(PollUntil(
      [&] {
        seen = Current("production", "postgres");
        return seen.state == "running" && seen.pid != 0 && seen.pid != old_pid;
      },
      [] { g->clock.Advance(100ms); }))
      << seen.state << ": " << seen.error;
  EXPECT_EQ(seen.port, g->pg.port);
  EXPECT_EQ(seen.error, "");
  EXPECT_EQ(Psql(Url(), "SELECT name FROM items ORDER BY id").text, "anchor\nbuoy\nchart\n");
  g->pg = seen;
}

// The shim gone (killed with the daemon's process group, say) but the postmaster and its
// backends still running, holding the data dir and the port: they are cleared away and
// a server of Slipway's own takes over.
TEST_F(AddonsTest, PostgresLeftWithoutItsShimIsReplaced) {
  AddonInfo before = Current("production", "postgres");
  auto rec = g->store->GetAddon(before.id);
  ASSERT_TRUE(rec.ok());
  const pid_t old_pid = static_cast<pid_t>(before.pid);
  ASSERT_EQ(kill(static_cast<pid_t>(rec->shim_pid), SIGKILL), 0);
  AddonInfo seen;
  ASSERT_TRUE(
      PollUntil([&] { return (seen = Current("production", "postgres")).state == "restarting"; }));
  EXPECT_TRUE(ProcessAlive(old_pid));  // orphaned, still serving
  EXPECT_NE(seen.error.find("its shim is gone"), std::string::npos) << seen.error;
  ASSERT_TRUE(PollUntil(
      [&] {
        seen = Current("production", "postgres");
        return seen.state == "running" && seen.pid != old_pid;
      },
      [] { g->clock.Advance(100ms); }))
      << seen.state << ": " << seen.error;
  EXPECT_FALSE(ProcessAlive(old_pid));
  EXPECT_EQ(seen.port, before.port);
  EXPECT_EQ(Psql(Url(), "SELECT count(*) FROM items").text, "3\n");
  g->pg = seen;
}

// Another process took the port while the server was down: "failed", retried, and back
// once the port is free again.
TEST_F(AddonsTest, PortTakenOnRestartFailsUntilItIsFree) {
  const AddonInfo before = Current("production", "redis");
  ASSERT_EQ(kill(static_cast<pid_t>(before.pid), SIGKILL), 0);
  AddonInfo seen;
  ASSERT_TRUE(
      PollUntil([&] { return (seen = Current("production", "redis")).state == "restarting"; }));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(before.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
  ASSERT_EQ(listen(fd, 1), 0);
  ASSERT_TRUE(PollUntil([&] { return (seen = Current("production", "redis")).state == "failed"; },
                        [] { g->clock.Advance(100ms); }))
      << seen.state;
  EXPECT_NE(seen.error.find("port " + std::to_string(before.port) +
                            " on 127.0.0.1, which the add-on's URLs hold, is in use by another "
                            "process"),
            std::string::npos)
      << seen.error;
  EXPECT_NE(seen.error.find("retrying in"), std::string::npos) << seen.error;
  close(fd);
  ASSERT_TRUE(PollUntil([&] { return (seen = Current("production", "redis")).state == "running"; },
                        [] { g->clock.Advance(500ms); }))
      << seen.state << ": " << seen.error;
  EXPECT_EQ(seen.port, before.port);
  EXPECT_EQ(seen.error, "");
  g->redis = seen;
}

TEST_F(AddonsTest, ServersOutliveTheManagerAndAreAdoptedByTheNext) {
  const int64_t pg_pid = g->pg.pid, redis_pid = g->redis.pid;
  g->manager->Shutdown(false);
  g->manager.reset();
  EXPECT_TRUE(ProcessAlive(static_cast<pid_t>(pg_pid)));
  EXPECT_TRUE(ProcessAlive(static_cast<pid_t>(redis_pid)));
  ASSERT_TRUE(g->NewManager().ok());
  AddonInfo pg = Current("production", "postgres");
  AddonInfo redis = Current("production", "redis");
  EXPECT_EQ(pg.pid, pg_pid);
  EXPECT_EQ(redis.pid, redis_pid);
  EXPECT_EQ(pg.state, "running");
  EXPECT_EQ(redis.state, "running");
  EXPECT_EQ(Psql(Url(), "SELECT count(*) FROM items").text, "3\n");
}

// ---- backups -------------------------------------------------------------------------

TEST_F(AddonsTest, BackupThenRestoreBringsTheRowsBack) {
  ASSERT_EQ(Psql(Url(), "CREATE TABLE ledger (n int); INSERT INTO ledger VALUES (1), (2), (3);")
                .exit_code,
            0);
  auto backup = g->manager->CreateBackup(kProject, "production", "postgres", "manual");
  ASSERT_TRUE(backup.ok()) << backup.status().ToString();
  EXPECT_EQ(backup->status, "COMPLETED");
  EXPECT_EQ(backup->trigger, "manual");
  EXPECT_EQ(backup->addon, "postgres");
  EXPECT_EQ(fs::path(backup->path).parent_path().string(),
            g->home + "/backups/" + std::to_string(g->pg.id));
  auto digest = addons_impl::DigestFile(backup->path);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(digest->sha256, backup->sha256);
  EXPECT_EQ(digest->bytes, backup->bytes);
  EXPECT_EQ(ReadAll(backup->path).substr(0, 5), "PGDMP");  // pg_dump's custom format

  ASSERT_EQ(Psql(Url(), "DROP TABLE ledger; DELETE FROM items").exit_code, 0);
  // An app's session on the database is ended by the switch, not waited for.
  SpawnOptions session;
  session.argv = {"psql", Url(), "-X", "-c", "SELECT pg_sleep(120)"};
  session.env = {{"PATH", "/usr/bin:/bin"}};
  auto sleeper = Process::Spawn(session);
  ASSERT_TRUE(sleeper.ok());
  ASSERT_TRUE(PollUntil([] {
    return Psql(Url(), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")
               .text == "1\n";
  }));
  auto begin = std::chrono::steady_clock::now();
  Status restored = g->manager->Restore(kProject, "production", "postgres", backup->id, "");
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 30s);
  int code = 0;
  EXPECT_TRUE(PollUntil([&] { return (*sleeper)->TryWait(&code); }));
  EXPECT_NE(code, 0);
  EXPECT_EQ(Psql(Url(), "SELECT sum(n) FROM ledger").text, "6\n");
  EXPECT_EQ(Psql(Url(), "SELECT count(*) FROM items").text, "3\n");
  // Still the environment's own: its role writes to what was restored.
  Output write = Psql(Url(), "INSERT INTO ledger VALUES (4); SELECT count(*) FROM ledger");
  EXPECT_EQ(write.text, "4\n");

  auto listed = g->manager->ListBackups(kProject, "production", "");
  ASSERT_TRUE(listed.ok());
  ASSERT_GE(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].trigger, "before-restore");
  EXPECT_EQ((*listed)[0].status, "COMPLETED");
  EXPECT_EQ((*listed)[1].id, backup->id);
  // No scratch database is left.
  EXPECT_EQ(Psql(Url(), "SELECT count(*) FROM pg_database WHERE datname LIKE 'slipway_%'").text,
            "0\n");
}

TEST_F(AddonsTest, RestoreIntoANewDatabase) {
  // The manual backup of the test before: three items.
  auto backups = g->manager->ListBackups(kProject, "production", "postgres");
  ASSERT_TRUE(backups.ok());
  auto manual = std::find_if(backups->begin(), backups->end(),
                             [](const BackupInfo& b) { return b.trigger == "manual"; });
  ASSERT_NE(manual, backups->end());
  const int64_t id = manual->id;
  Status restored = g->manager->Restore(kProject, "production", "postgres", id, "ledger_copy");
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  EXPECT_EQ(Psql(WithDatabase(Url(), "ledger_copy"), "SELECT count(*) FROM items").text, "3\n");
  EXPECT_EQ(Psql(Url(), "SELECT count(*) FROM items").text, "3\n");

  Status again = g->manager->Restore(kProject, "production", "postgres", id, "ledger_copy");
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << again.ToString();
  EXPECT_EQ(g->manager->Restore(kProject, "production", "postgres", 999999, "").code(),
            StatusCode::kNotFound);
  EXPECT_EQ(g->manager->Restore(kProject, "production", "postgres", id, "Bad-Name").code(),
            StatusCode::kInvalidArgument);
}

TEST_F(AddonsTest, CorruptBackupIsRefusedAndTheDatabaseIsUnchanged) {
  ASSERT_EQ(Psql(Url(), "CREATE TABLE marker (n int); INSERT INTO marker VALUES (42)").exit_code,
            0);
  auto backup = g->manager->CreateBackup(kProject, "production", "postgres", "manual");
  ASSERT_TRUE(backup.ok()) << backup.status().ToString();
  ASSERT_EQ(Psql(Url(), "UPDATE marker SET n = 43").exit_code, 0);
  const std::string id = std::to_string(backup->id);
  const std::string original = ReadAll(backup->path);

  // Cut short.
  ASSERT_EQ(truncate(backup->path.c_str(), backup->bytes / 2), 0);
  Status truncated = g->manager->Restore(kProject, "production", "postgres", backup->id, "");
  EXPECT_EQ(truncated.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(truncated.message().rfind("backup " + id + " is corrupt: ", 0), 0u)
      << truncated.message();
  EXPECT_NE(truncated.message().find("; the database is unchanged"), std::string::npos);
  EXPECT_EQ(Psql(Url(), "SELECT n FROM marker").text, "43\n");

  // One byte altered.
  std::string altered = original;
  altered[altered.size() / 2] ^= 0x5a;
  ASSERT_TRUE(WriteFileAtomic(backup->path, altered, 0600).ok());
  Status flipped = g->manager->Restore(kProject, "production", "postgres", backup->id, "");
  EXPECT_EQ(flipped.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(flipped.message().find("has SHA-256"), std::string::npos) << flipped.message();

  // Garbage whose checksum was recorded (corrupt when written): pg_restore rejects it.
  const std::string garbage = "PGDMP" + std::string(4096, '\x07');
  ASSERT_TRUE(WriteFileAtomic(backup->path, garbage, 0600).ok());
  auto record = g->store->GetBackup(backup->id);
  ASSERT_TRUE(record.ok());
  auto digest = addons_impl::DigestFile(backup->path);
  ASSERT_TRUE(digest.ok());
  record->sha256 = digest->sha256;
  record->bytes = digest->bytes;
  ASSERT_TRUE(g->store->UpdateBackup(*record).ok());
  Status rejected = g->manager->Restore(kProject, "production", "postgres", backup->id, "");
  EXPECT_EQ(rejected.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(rejected.message().rfind("backup " + id + " is corrupt: pg_restore: ", 0), 0u)
      << rejected.message();
  EXPECT_EQ(Psql(Url(), "SELECT n FROM marker").text, "43\n");
  EXPECT_EQ(Psql(Url(), "SELECT count(*) FROM pg_database WHERE datname LIKE 'slipway_%'").text,
            "0\n");

  // A missing file.
  ASSERT_EQ(unlink(backup->path.c_str()), 0);
  Status missing = g->manager->Restore(kProject, "production", "postgres", backup->id, "");
  EXPECT_EQ(missing.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.message().find("is missing"), std::string::npos) << missing.message();
}

TEST_F(AddonsTest, DiskFullDuringBackupFailsItAndRemovesThePartialFile) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  // A small tmpfs over the add-on's backup dir (the backups so far are under it, hidden
  // until it is unmounted), filled up.
  const std::string dir = g->home + "/backups/" + std::to_string(g->pg.id);
  ASSERT_TRUE(MakeDirs(dir).ok());
  ASSERT_EQ(mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=64k,mode=0700"), 0)
      << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
  } unmount{dir};
  {
    std::ofstream filler(dir + "/filler", std::ios::binary);
    std::string block(4096, 'x');
    while (filler.write(block.data(), static_cast<std::streamsize>(block.size()))) filler.flush();
  }

  auto backup = g->manager->CreateBackup(kProject, "production", "postgres", "manual");
  ASSERT_FALSE(backup.ok());
  EXPECT_EQ(backup.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(backup.status().message().find(dir), std::string::npos) << backup.status().message();
  EXPECT_NE(backup.status().message().find("free space"), std::string::npos);
  EXPECT_EQ(DirEntries(dir), (std::vector<std::string>{dir + "/filler"}));

  auto listed = g->manager->ListBackups(kProject, "production", "postgres");
  ASSERT_TRUE(listed.ok() && !listed->empty());
  EXPECT_EQ(listed->front().status, "FAILED");
  EXPECT_EQ(listed->front().error, backup.status().message());
  EXPECT_EQ(listed->front().path, "");
}

TEST_F(AddonsTest, RedisHasNoBackups) {
  auto backup = g->manager->CreateBackup(kProject, "production", "redis", "manual");
  ASSERT_FALSE(backup.ok());
  EXPECT_EQ(backup.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(backup.status().message(),
            "redis add-ons are kept by append-only persistence; backups are for postgres add-ons");
}

TEST_F(AddonsTest, ScheduledBackupsRunAt0300UtcAndOnlyTheNewestAreKept) {
  AddonRequest req;  // staging does not exist yet: Ensure creates it
  req.project = kProject;
  req.environment = "staging";
  req.kind = "postgres";
  req.name = "db";
  req.backup_retention = 2;
  auto db = g->manager->Ensure(req);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  EXPECT_EQ(db->variables.at("PGDATABASE"), "shop_staging");
  EXPECT_EQ(db->backup_retention, 2);
  auto manual = g->manager->CreateBackup(kProject, "staging", "db", "");
  ASSERT_TRUE(manual.ok()) << manual.status().ToString();
  EXPECT_EQ(manual->trigger, "manual");

  auto scheduled = [&] {
    std::vector<BackupInfo> out;
    auto all = g->manager->ListBackups(kProject, "staging", "db");
    if (all.ok()) {
      for (const auto& b : *all) {
        if (b.trigger == "schedule" && b.status == "COMPLETED") out.push_back(b);
      }
    }
    return out;
  };
  // Nothing before 03:00 UTC.
  const auto now = g->clock.Now();
  const auto three = std::chrono::sys_days(std::chrono::year(2030) / 1 / 1) + 3h;
  ASSERT_LT(now, three - 1min);
  g->clock.Advance(std::chrono::duration_cast<std::chrono::milliseconds>(three - 1min - now));
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(scheduled().empty());

  std::vector<BackupInfo> seen;
  g->clock.Advance(90s);
  ASSERT_TRUE(PollUntil([&] { return (seen = scheduled()).size() == 1; }));
  EXPECT_EQ(FormatTimestamp(seen[0].started_at).substr(0, 16), "2030-01-01T03:00");
  const BackupInfo first = seen[0];

  g->clock.Advance(24h);
  ASSERT_TRUE(PollUntil([&] { return (seen = scheduled()).size() == 2; }));
  g->clock.Advance(24h);
  ASSERT_TRUE(PollUntil([&] {
    seen = scheduled();
    return seen.size() == 2 && seen.back().id != first.id;
  }));
  EXPECT_EQ(FormatTimestamp(seen[0].started_at).substr(0, 16), "2030-01-03T03:00");
  EXPECT_FALSE(PathExists(first.path));
  for (const auto& b : seen) EXPECT_TRUE(PathExists(b.path)) << b.path;
  // The manual backup is kept.
  auto all = g->manager->ListBackups(kProject, "staging", "db");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(std::any_of(all->begin(), all->end(),
                          [&](const BackupInfo& b) { return b.id == manual->id; }));
  EXPECT_TRUE(PathExists(manual->path));
}

TEST_F(AddonsTest, RemoveKeepsABeforeDeleteBackupAndLeavesNothingElse) {
  AddonInfo db = Current("staging", "db");
  ASSERT_NE(db.id, 0);
  auto kept = g->manager->Remove(kProject, "staging", "db", /*keep_backup=*/true);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_TRUE(PathExists(*kept));
  EXPECT_NE(kept->find("/backups/" + std::to_string(db.id) + "/"), std::string::npos) << *kept;
  EXPECT_FALSE(ProcessAlive(static_cast<pid_t>(db.pid)));
  EXPECT_FALSE(PathExists(g->home + "/addons/" + std::to_string(db.id)));
  EXPECT_FALSE(PathExists(g->home + "/run/pg" + std::to_string(db.id)));
  EXPECT_FALSE(g->manager->Variables(kProject, "staging", "db").has_value());
  EXPECT_EQ(g->manager->Remove(kProject, "staging", "db", true).status().code(),
            StatusCode::kNotFound);

  AddonRequest req;
  req.project = kProject;
  req.environment = "staging";
  req.kind = "redis";
  auto cache = g->manager->Ensure(req);
  ASSERT_TRUE(cache.ok()) << cache.status().ToString();
  auto removed = g->manager->Remove(kProject, "staging", "redis", /*keep_backup=*/false);
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(*removed, "");
  EXPECT_FALSE(ProcessAlive(static_cast<pid_t>(cache->pid)));
  EXPECT_FALSE(PathExists(g->home + "/addons/" + std::to_string(cache->id)));
}

// ---- stopping --------------------------------------------------------------------------

TEST_F(AddonsTest, ShutdownStoppingServersStopsThemAndTheNextStartBringsThemBack) {
  const pid_t pg_pid = static_cast<pid_t>(Current("production", "postgres").pid);
  const pid_t redis_pid = static_cast<pid_t>(Current("production", "redis").pid);
  auto begin = std::chrono::steady_clock::now();
  g->manager->Shutdown(true);
  // Fast shutdown: not the 10 s grace of a server waiting for its clients.
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 8s);
  EXPECT_FALSE(ProcessAlive(pg_pid));
  EXPECT_FALSE(ProcessAlive(redis_pid));
  EXPECT_EQ(Current("production", "postgres").state, "stopped");
  EXPECT_EQ(Current("production", "redis").state, "stopped");
  const std::string pg_log = ReadAll(g->home + "/logs/addons/" + std::to_string(g->pg.id) + ".log");
  EXPECT_NE(pg_log.find("fast shutdown request"), std::string::npos);

  g->manager.reset();
  ASSERT_TRUE(g->NewManager().ok());
  AddonInfo pg = Current("production", "postgres");
  EXPECT_EQ(pg.state, "running");
  EXPECT_EQ(pg.port, g->pg.port);
  EXPECT_NE(pg.pid, pg_pid);
  EXPECT_EQ(Psql(Url(), "SELECT count(*) FROM items").text, "3\n");
  auto replies = addons_impl::RedisExchange(
      g->redis.port,
      {{"AUTH", "default", g->redis.variables.at("REDISPASSWORD")}, {"GET", "greeting"}}, 5s);
  ASSERT_TRUE(replies.ok()) << replies.status().ToString();
  EXPECT_EQ(replies->back(), "ahoy");  // append-only persistence
}

}  // namespace
}  // namespace slipway
