// The dependency cache with real builds: real venvs and npm installs (offline: Debian's
// packages, a wheel made here, npm's own cache), real apps started from the releases.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "build/builder.h"
#include "builder_fixture.h"
#include "common/fs.h"
#include "common/subprocess.h"

namespace slipway {
namespace {

namespace fs = std::filesystem;

constexpr char kFastApiMain[] =
    "from fastapi import FastAPI\n"
    "import hellodep\n"
    "app = FastAPI()\n"
    "@app.get('/')\n"
    "def root():\n"
    "    return {'hello': hellodep.greeting()}\n";

// node-hello's dependencies (its package.json and lockfile), with a server that binds
// loopback only and answers the same every time.
constexpr char kNodeServer[] = R"(const http = require('http');
const ms = require('ms');
http.createServer((req, res) => res.end(`one day is ${ms('1d')} ms`))
  .listen(Number(process.env.PORT), '127.0.0.1');
)";

// Every file, directory and link under `dir` with what would show a change to it.
std::string TreeSnapshot(const std::string& dir) {
  std::vector<std::string> lines;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    struct stat st {};
    lstat(it->path().c_str(), &st);
    std::string line = it->path().string() + " " + std::to_string(st.st_mode) + " " +
                       std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
                       std::to_string(st.st_mtim.tv_nsec) + " " + std::to_string(st.st_ino);
    if (it->is_symlink()) line += " -> " + fs::read_symlink(it->path()).string();
    lines.push_back(line);
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

class DependencyCacheTest : public BuilderTest {
 protected:
  void SetUp() override {
    BuilderTest::SetUp();
    cache_ = root_ + "/cache";
  }

  BuildRequest CachedRequest(const std::string& name) {
    BuildRequest request = Request(name);
    request.cache_dir = cache_;
    return request;
  }

  // What the cache directory holds, without its lock file and empty trash.
  std::set<std::string> CacheNames() {
    std::set<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(cache_, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name == ".lock" || (name == ".trash" && fs::is_empty(it->path()))) continue;
      names.insert(name);
    }
    return names;
  }

  // A Python app served by uvicorn whose greeting comes from `hellodep`, a distribution
  // only a local wheel provides: pip installs it into the cached venv, offline.
  void WriteFastApiApp(const std::string& greeting) {
    std::string pkg = root_ + "/hellodep-src";
    ASSERT_TRUE(MakeDirs(pkg + "/hellodep").ok());
    ASSERT_TRUE(WriteFileAtomic(pkg + "/pyproject.toml",
                                "[build-system]\n"
                                "requires = [\"setuptools\"]\n"
                                "build-backend = \"setuptools.build_meta\"\n"
                                "[project]\n"
                                "name = \"hellodep\"\n"
                                "version = \"1.0\"\n"
                                "[project.scripts]\n"
                                "hellodep-say = \"hellodep:say\"\n")
                    .ok());
    ASSERT_TRUE(WriteFileAtomic(pkg + "/hellodep/__init__.py",
                                "def greeting():\n"
                                "    return '" +
                                    greeting +
                                    "'\n"
                                    "def say():\n"
                                    "    print(greeting())\n")
                    .ok());
    SpawnOptions spawn = Cmd({"/usr/bin/python3", "-m", "pip", "wheel", "--no-deps",
                              "--no-build-isolation", "--no-index", "-w", src_ + "/wheels", pkg},
                             CurrentEnvironment());
    std::string output;
    RunOptions run;
    run.on_line = [&](std::string_view l) { output += std::string(l) + "\n"; };
    auto made = RunCommand(spawn, run);
    ASSERT_TRUE(made.ok() && made->exit_code == 0) << output;
    Write("requirements.txt",
          "--no-index\n--find-links ./wheels\nhellodep==1.0\nfastapi\nuvicorn\n");
    Write("Procfile", "web: uvicorn main:app --host 127.0.0.1 --port $PORT\n");
    Write("main.py", kFastApiMain);
  }

  void WriteNodeApp() {
    for (const char* name : {"package.json", "package-lock.json"}) {
      auto text = ReadFile(std::string(SLIPWAY_EXAMPLES_DIR) + "/node-hello/" + name);
      ASSERT_TRUE(text.ok()) << text.status().ToString();
      Write(name, *text);
    }
    Write("server.js", kNodeServer);
  }

  std::string cache_;
};

Result<ReleaseManifest> TimedBuild(const BuildRequest& request, double* seconds) {
  auto start = std::chrono::steady_clock::now();
  auto manifest = Build(request);
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return manifest;
}

TEST_F(DependencyCacheTest, PythonDependenciesAreReusedWhileRequirementsAreUnchanged) {
  WriteFastApiApp("from the cache");
  BuildRequest first = CachedRequest("r1");
  int first_steps = 0;
  first.on_step_started = [&](pid_t) { ++first_steps; };
  double first_seconds = 0;
  auto m1 = TimedBuild(first, &first_seconds);
  ASSERT_TRUE(m1.ok()) << m1.status().ToString() << "\n" << Log(first);
  ASSERT_EQ(m1->deps_key.size(), 64u);
  const std::string key = m1->deps_key;
  const std::string entry = cache_ + "/" + key;
  std::string log1 = Log(first);
  EXPECT_TRUE(Contains(log1, "==> pip install -r requirements.txt\n")) << log1;
  EXPECT_TRUE(Contains(log1, "Successfully installed hellodep-1.0")) << log1;
  EXPECT_TRUE(Contains(log1, "==> dependencies: saved to cache " + key.substr(0, 12) + "\n"))
      << log1;
  EXPECT_FALSE(Contains(log1, "reused cache")) << log1;
  EXPECT_EQ(CacheNames(), std::set<std::string>{key});
  // The venv in the cache names its own path, not the temp directory it was built in.
  auto pip_launcher = ReadFile(entry + "/venv/bin/pip");
  ASSERT_TRUE(pip_launcher.ok());
  EXPECT_TRUE(Contains(*pip_launcher, entry + "/venv/bin/python")) << *pip_launcher;
  EXPECT_FALSE(Contains(*pip_launcher, ".tmp-")) << *pip_launcher;
  auto pip_runs =
      RunCommand(Cmd({entry + "/venv/bin/pip", "--version"}, CurrentEnvironment()), RunOptions{});
  ASSERT_TRUE(pip_runs.ok());
  EXPECT_EQ(pip_runs->exit_code, 0);
  const std::string snapshot1 = TreeSnapshot(first.release_dir);
  const std::string entry_snapshot = TreeSnapshot(entry);

  BuildRequest second = CachedRequest("r2");
  int second_steps = 0;
  second.on_step_started = [&](pid_t) { ++second_steps; };
  double second_seconds = 0;
  auto m2 = TimedBuild(second, &second_seconds);
  ASSERT_TRUE(m2.ok()) << m2.status().ToString() << "\n" << Log(second);
  std::string log2 = Log(second);
  EXPECT_TRUE(Contains(log2, "==> dependencies: reused cache " + key.substr(0, 12) + "\n")) << log2;
  EXPECT_FALSE(Contains(log2, "pip install")) << log2;
  EXPECT_FALSE(Contains(log2, "saved to cache")) << log2;
  EXPECT_EQ(m2->deps_key, key);
  EXPECT_LT(second_steps, first_steps);
  std::printf("python build with the cache: first %.2fs (%d steps), second %.2fs (%d steps)\n",
              first_seconds, first_steps, second_seconds, second_steps);

  // The release has its own venv, as without the cache, with the entry's bin after it.
  std::string app = second.release_dir + "/app";
  EXPECT_EQ(m2->runtime_env.at("VIRTUAL_ENV"), app + "/.venv");
  EXPECT_EQ(m2->runtime_env.at("PATH").rfind(app + "/.venv/bin:" + entry + "/venv/bin:", 0), 0u)
      << m2->runtime_env.at("PATH");
  auto launcher = ReadFile(app + "/.venv/bin/hellodep-say");
  ASSERT_TRUE(launcher.ok()) << "console scripts of cached distributions are made runnable";
  EXPECT_EQ(launcher->rfind("#!" + app + "/.venv/bin/python\n", 0), 0u) << *launcher;

  // Both releases serve the cached distribution; the first is as it was (rollback).
  EXPECT_EQ(ServeOnce(second, *m2), "{\"hello\":\"from the cache\"}");
  EXPECT_EQ(ServeOnce(first, *m1), "{\"hello\":\"from the cache\"}");
  EXPECT_EQ(TreeSnapshot(first.release_dir), snapshot1);
  EXPECT_EQ(TreeSnapshot(entry), entry_snapshot);
  auto on_disk = ReadFile(second.release_dir + "/manifest.json");
  ASSERT_TRUE(on_disk.ok());
  auto parsed = ReleaseManifest::FromJson(*on_disk);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->deps_key, key);
}

TEST_F(DependencyCacheTest, ChangedRequirementsMakeANewEntry) {
  WriteFastApiApp("one");
  auto m1 = Build(CachedRequest("r1"));
  ASSERT_TRUE(m1.ok()) << m1.status().ToString() << "\n" << Log(CachedRequest("r1"));

  // Another wheel under the same name and version: the bytes pip would install changed.
  ASSERT_TRUE(RemoveTree(src_ + "/wheels").ok());
  WriteFastApiApp("two");
  BuildRequest second = CachedRequest("r2");
  auto m2 = Build(second);
  ASSERT_TRUE(m2.ok()) << m2.status().ToString() << "\n" << Log(second);
  EXPECT_NE(m2->deps_key, m1->deps_key);
  EXPECT_TRUE(Contains(Log(second), "==> pip install -r requirements.txt\n")) << Log(second);

  // A new requirement line.
  Write("requirements.txt",
        "--no-index\n--find-links ./wheels\nhellodep==1.0\nfastapi\nuvicorn\nanyio\n");
  BuildRequest third = CachedRequest("r3");
  auto m3 = Build(third);
  ASSERT_TRUE(m3.ok()) << m3.status().ToString() << "\n" << Log(third);
  EXPECT_NE(m3->deps_key, m2->deps_key);
  EXPECT_NE(m3->deps_key, m1->deps_key);
  EXPECT_EQ(CacheNames(), (std::set<std::string>{m1->deps_key, m2->deps_key, m3->deps_key}));

  EXPECT_EQ(ServeOnce(third, *m3), "{\"hello\":\"two\"}");
  EXPECT_EQ(ServeOnce(CachedRequest("r1"), *m1), "{\"hello\":\"one\"}");
}

// pyproject.toml: its dependencies come from the cache, the project itself is installed
// into each release's own venv (it is the app's code, not a dependency).
TEST_F(DependencyCacheTest, PyprojectProjectIsInstalledIntoTheReleaseNotTheCache) {
  Write("pyproject.toml",
        "[build-system]\n"
        "requires = [\"setuptools>=61\"]\n"
        "build-backend = \"setuptools.build_meta\"\n"
        "[project]\n"
        "name = \"hellopkg\"\n"
        "version = \"0.1.0\"\n"
        "dependencies = [\"fastapi>=0.90\"]\n"
        "[project.scripts]\n"
        "hello = \"hellopkg:main\"\n"
        "[tool.setuptools]\n"
        "packages = [\"hellopkg\"]\n");
  ServiceConfig service;
  service.start_command = "hello";
  std::vector<std::string> said;
  for (const char* name : {"r1", "r2"}) {
    Write("hellopkg/__init__.py",
          std::string("def main():\n    print('hello from ") + name + "')\n");
    BuildRequest request = CachedRequest(name);
    request.service = service;
    auto manifest = Build(request);
    ASSERT_TRUE(manifest.ok()) << manifest.status().ToString() << "\n" << Log(request);
    std::string log = Log(request);
    EXPECT_EQ(Contains(log, "==> dependencies: reused cache "), std::string(name) == "r2") << log;
    EXPECT_TRUE(Contains(log, "==> pip install .\n")) << log;
    EXPECT_TRUE(Contains(log, "Successfully installed hellopkg-0.1.0")) << log;
    SpawnOptions spawn = Cmd({"/bin/sh", "-c", manifest->start_command}, request.build_env);
    for (const auto& [k, v] : manifest->runtime_env) spawn.env[k] = v;
    spawn.cwd = "/";
    RunOptions run;
    run.on_line = [&](std::string_view l) { said.emplace_back(l); };
    auto out = RunCommand(spawn, run);
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->exit_code, 0);
  }
  // Each release runs its own code (the project is not part of the cache key).
  EXPECT_EQ(said, (std::vector<std::string>{"hello from r1", "hello from r2"}));
  EXPECT_EQ(CacheNames().size(), 1u);
  for (const auto& entry : fs::recursive_directory_iterator(cache_)) {
    EXPECT_FALSE(Contains(entry.path().filename().string(), "hellopkg")) << entry.path();
  }
}

TEST_F(DependencyCacheTest, FailingInstallLeavesNoEntry) {
  Write("requirements.txt", "--no-index\nslipway-no-such-distribution==1.0\n");
  Write("Procfile", "web: python -m http.server --bind 127.0.0.1 $PORT\n");
  BuildRequest request = CachedRequest("r1");
  auto manifest = Build(request);
  ASSERT_FALSE(manifest.ok());
  EXPECT_EQ(manifest.status().message(),
            "build step \"pip install -r requirements.txt\" failed with exit code 1");
  EXPECT_FALSE(PathExists(request.release_dir));
  EXPECT_EQ(CacheNames(), std::set<std::string>{});

  // Fixed, it builds and caches; nothing of the failure is reused.
  Write("requirements.txt", "fastapi\n");
  BuildRequest fixed = CachedRequest("r2");
  auto built = Build(fixed);
  ASSERT_TRUE(built.ok()) << built.status().ToString() << "\n" << Log(fixed);
  EXPECT_TRUE(Contains(Log(fixed), "==> pip install -r requirements.txt\n")) << Log(fixed);
  EXPECT_EQ(CacheNames(), std::set<std::string>{built->deps_key});
}

TEST_F(DependencyCacheTest, CancelledInstallLeavesNoEntryAndAKilledOnesLeftoversAreNotTrusted) {
  Write("requirements.txt", "fastapi\n");
  Write("Procfile", "web: python -m http.server --bind 127.0.0.1 $PORT\n");
  // Cancelled while the cached venv is being made.
  BuildRequest cancelled = CachedRequest("r1");
  cancelled.cancelled = [&] { return Contains(Log(cancelled), "==> create venv\n"); };
  ASSERT_FALSE(Build(cancelled).ok());
  EXPECT_EQ(CacheNames(), std::set<std::string>{});

  BuildRequest request = CachedRequest("r2");
  auto manifest = Build(request);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString() << "\n" << Log(request);
  const std::string key = manifest->deps_key;
  const std::string entry = cache_ + "/" + key;

  // What a build killed mid-install leaves: a temp entry of a process that is gone, and
  // (after a crash of the machine) an entry without its marker.
  auto dead = Process::Spawn(Cmd({"/bin/true"}, CurrentEnvironment()));
  ASSERT_TRUE(dead.ok());
  (*dead)->Wait();
  std::string leftover = entry + ".tmp-" + std::to_string((*dead)->pid()) + "-1";
  ASSERT_TRUE(MakeDirs(leftover + "/venv").ok());
  ASSERT_TRUE(RemoveTree(entry + "/slipway-cache-entry").ok());

  BuildRequest rebuilt = CachedRequest("r3");
  auto again = Build(rebuilt);
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << Log(rebuilt);
  EXPECT_EQ(again->deps_key, key);
  EXPECT_FALSE(Contains(Log(rebuilt), "reused cache")) << Log(rebuilt);
  EXPECT_TRUE(Contains(Log(rebuilt), "==> pip install -r requirements.txt\n")) << Log(rebuilt);
  EXPECT_TRUE(PathExists(entry + "/slipway-cache-entry"));
  EXPECT_EQ(ServeOnce(rebuilt, *again).rfind("<!DOCTYPE", 0), 0u);

  // Pruning removes the dead build's temp entry, not the entries in use.
  ASSERT_TRUE(PruneDependencyCache(cache_, {key}, std::chrono::hours(1)).ok());
  EXPECT_EQ(CacheNames(), std::set<std::string>{key});
}

TEST_F(DependencyCacheTest, NodeModulesAreReusedWhileTheLockfileIsUnchanged) {
  WriteNodeApp();
  BuildRequest first = CachedRequest("r1");
  double first_seconds = 0;
  auto m1 = TimedBuild(first, &first_seconds);
  ASSERT_TRUE(m1.ok()) << m1.status().ToString() << "\n" << Log(first);
  const std::string key = m1->deps_key;
  ASSERT_EQ(key.size(), 64u);
  EXPECT_TRUE(Contains(Log(first), "==> npm ci\n")) << Log(first);
  EXPECT_TRUE(Contains(Log(first), "==> dependencies: saved to cache " + key.substr(0, 12)))
      << Log(first);
  const std::string snapshot1 = TreeSnapshot(first.release_dir);

  BuildRequest second = CachedRequest("r2");
  double second_seconds = 0;
  auto m2 = TimedBuild(second, &second_seconds);
  ASSERT_TRUE(m2.ok()) << m2.status().ToString() << "\n" << Log(second);
  EXPECT_EQ(m2->deps_key, key);
  EXPECT_TRUE(Contains(Log(second), "==> dependencies: reused cache " + key.substr(0, 12) + "\n"))
      << Log(second);
  EXPECT_FALSE(Contains(Log(second), "npm ci")) << Log(second);
  std::printf("node build with the cache: first %.2fs, second %.2fs\n", first_seconds,
              second_seconds);

  // The release's node_modules is its own tree of links to the entry's files.
  std::string module = second.release_dir + "/app/node_modules/ms/index.js";
  struct stat in_release {
  }, in_cache{};
  ASSERT_EQ(stat(module.c_str(), &in_release), 0);
  ASSERT_EQ(stat((cache_ + "/" + key + "/node_modules/ms/index.js").c_str(), &in_cache), 0);
  EXPECT_EQ(in_release.st_ino, in_cache.st_ino);

  EXPECT_EQ(ServeOnce(second, *m2), "one day is 86400000 ms");
  EXPECT_EQ(ServeOnce(first, *m1), "one day is 86400000 ms");
  EXPECT_EQ(TreeSnapshot(first.release_dir), snapshot1);

  // A changed lockfile is a new key (and an npm ci that sees the change).
  auto lock = ReadFile(src_ + "/package-lock.json");
  ASSERT_TRUE(lock.ok());
  Write("package-lock.json", *lock + "\n");
  BuildRequest third = CachedRequest("r3");
  auto m3 = Build(third);
  ASSERT_TRUE(m3.ok()) << m3.status().ToString() << "\n" << Log(third);
  EXPECT_NE(m3->deps_key, key);
  EXPECT_TRUE(Contains(Log(third), "==> npm ci\n")) << Log(third);
}

TEST_F(DependencyCacheTest, NodeInstallScriptsAreNotCached) {
  Write("package.json", R"({"name": "x", "version": "1.0.0",
    "scripts": {"postinstall": "node -e \"require('fs').writeFileSync('made.txt', 'x')\"",
                "start": "node server.js"}})");
  Write("server.js", "");
  BuildRequest request = CachedRequest("r1");
  auto manifest = Build(request);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString() << "\n" << Log(request);
  EXPECT_EQ(manifest->deps_key, "");
  EXPECT_TRUE(Contains(Log(request),
                       "==> dependencies: not cached (package.json has a postinstall script, "
                       "which may depend on the app's other files)\n==> npm install\n"))
      << Log(request);
  EXPECT_TRUE(PathExists(request.release_dir + "/app/made.txt"));
  EXPECT_EQ(CacheNames(), std::set<std::string>{});
}

TEST_F(DependencyCacheTest, ConcurrentBuildsOfOneKeyShareOneEntry) {
  WriteNodeApp();
  BuildRequest a = CachedRequest("a");
  BuildRequest b = CachedRequest("b");
  Result<ReleaseManifest> ma = Internal("not run");
  Result<ReleaseManifest> mb = Internal("not run");
  std::thread other([&] { mb = Build(b); });
  ma = Build(a);
  other.join();
  ASSERT_TRUE(ma.ok()) << ma.status().ToString() << "\n" << Log(a);
  ASSERT_TRUE(mb.ok()) << mb.status().ToString() << "\n" << Log(b);
  EXPECT_EQ(ma->deps_key, mb->deps_key);
  EXPECT_EQ(CacheNames(), std::set<std::string>{ma->deps_key});
  EXPECT_TRUE(PathExists(a.release_dir + "/app/node_modules/ms/package.json"));
  EXPECT_TRUE(PathExists(b.release_dir + "/app/node_modules/ms/package.json"));
}

TEST_F(DependencyCacheTest, PruningKeepsEntriesInUseAndRecentlyUsed) {
  ASSERT_TRUE(PruneDependencyCache(cache_, {}, std::chrono::hours(1)).ok());  // no cache yet
  auto key = [](char c) { return std::string(64, c); };
  for (char c : {'a', 'b', 'c'}) {
    ASSERT_TRUE(MakeDirs(cache_ + "/" + key(c) + "/venv").ok());
  }
  // a and b were last used two days ago; c an hour ago.
  auto age = [&](const std::string& name, std::chrono::hours hours) {
    timespec times[2];
    times[0].tv_sec = times[1].tv_sec = time(nullptr) - hours.count() * 3600;
    times[0].tv_nsec = times[1].tv_nsec = 0;
    ASSERT_EQ(utimensat(AT_FDCWD, (cache_ + "/" + name).c_str(), times, 0), 0);
  };
  age(key('a'), std::chrono::hours(48));
  age(key('b'), std::chrono::hours(48));
  age(key('c'), std::chrono::hours(1));
  // A temp entry of this (live) process: a build in progress.
  std::string building = key('d') + ".tmp-" + std::to_string(getpid()) + "-7";
  ASSERT_TRUE(MakeDirs(cache_ + "/" + building).ok());
  ASSERT_TRUE(MakeDirs(cache_ + "/not-ours").ok());

  ASSERT_TRUE(PruneDependencyCache(cache_, {key('a')}, std::chrono::hours(24)).ok());
  EXPECT_EQ(CacheNames(), (std::set<std::string>{key('a'), key('c'), building, "not-ours"}));

  ASSERT_TRUE(PruneDependencyCache(cache_, {}, std::chrono::hours(0)).ok());
  EXPECT_EQ(CacheNames(), (std::set<std::string>{building, "not-ours"}));
}

TEST_F(DependencyCacheTest, PrunedEntryIsBuiltAgain) {
  Write("requirements.txt", "fastapi\n");
  Write("Procfile", "web: python -m http.server --bind 127.0.0.1 $PORT\n");
  auto m1 = Build(CachedRequest("r1"));
  ASSERT_TRUE(m1.ok()) << m1.status().ToString();
  // In use: kept even with no time to spare.
  ASSERT_TRUE(PruneDependencyCache(cache_, {m1->deps_key}, std::chrono::hours(0)).ok());
  EXPECT_EQ(CacheNames(), std::set<std::string>{m1->deps_key});
  // Recently used: kept.
  ASSERT_TRUE(PruneDependencyCache(cache_, {}, std::chrono::hours(1)).ok());
  EXPECT_EQ(CacheNames(), std::set<std::string>{m1->deps_key});
  ASSERT_TRUE(PruneDependencyCache(cache_, {}, std::chrono::hours(0)).ok());
  EXPECT_EQ(CacheNames(), std::set<std::string>{});
  BuildRequest again = CachedRequest("r2");
  auto m2 = Build(again);
  ASSERT_TRUE(m2.ok()) << m2.status().ToString();
  EXPECT_EQ(m2->deps_key, m1->deps_key);
  EXPECT_TRUE(Contains(Log(again), "==> pip install -r requirements.txt\n")) << Log(again);
}

// The examples, built twice each; prints the times for the record. (They listen on every
// interface, so they are not started here; the tests above serve the same kinds of app.)
TEST_F(DependencyCacheTest, ExamplesAreBuiltFromTheCacheTheSecondTime) {
  for (const char* example : {"node-hello", "fastapi-procfile"}) {
    std::string source = std::string(SLIPWAY_EXAMPLES_DIR) + "/" + example;
    double seconds[2] = {0, 0};
    std::string keys[2];
    for (int i = 0; i < 2; ++i) {
      BuildRequest request = CachedRequest(std::string(example) + "-" + std::to_string(i));
      request.source_dir = source;
      auto manifest = TimedBuild(request, &seconds[i]);
      ASSERT_TRUE(manifest.ok()) << manifest.status().ToString() << "\n" << Log(request);
      keys[i] = manifest->deps_key;
      EXPECT_EQ(Contains(Log(request), "==> dependencies: reused cache "), i == 1) << Log(request);
    }
    EXPECT_EQ(keys[0], keys[1]);
    std::printf("%s: first build %.2fs, second build %.2fs\n", example, seconds[0], seconds[1]);
  }
}

}  // namespace
}  // namespace slipway
