// Real builds: real venvs, real npm installs, real servers started from the manifest.

#include "build/builder.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "build/python_tools.h"
#include "builder_fixture.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/subprocess.h"

namespace slipway {
namespace {

TEST_F(BuilderTest, FastApiAppWithRequirementsBuildsAndServes) {
  Write("requirements.txt", "fastapi\nuvicorn\n");
  Write("Procfile", "web: uvicorn main:app --host 127.0.0.1 --port $PORT\n");
  Write("main.py",
        "from fastapi import FastAPI\n"
        "app = FastAPI()\n"
        "@app.get('/')\n"
        "def root():\n"
        "    return {'hello': 'slipway'}\n");
  Write(".git/HEAD", "ref: refs/heads/main\n");
  Write("__pycache__/main.cpython-311.pyc", "stale");
  BuildRequest request = Request();
  std::vector<pid_t> step_groups;
  request.on_step_started = [&](pid_t pgid) { step_groups.push_back(pgid); };

  auto manifest = Build(request);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString() << "\n" << Log(request);

  std::string app = request.release_dir + "/app";
  EXPECT_EQ(manifest->kind, "python");
  EXPECT_EQ(manifest->app_dir, app);
  EXPECT_EQ(manifest->start_command, "uvicorn main:app --host 127.0.0.1 --port $PORT");
  EXPECT_EQ(manifest->runtime_env.at("VIRTUAL_ENV"), app + "/.venv");
  EXPECT_EQ(manifest->runtime_env.at("PATH").rfind(app + "/.venv/bin:", 0), 0u);
  EXPECT_EQ(manifest->runtime_env.at("PYTHONUNBUFFERED"), "1");
  EXPECT_EQ(step_groups.size(), 3u);

  // The manifest on disk says the same.
  auto on_disk = ReadFile(request.release_dir + "/manifest.json");
  ASSERT_TRUE(on_disk.ok());
  auto parsed = ReleaseManifest::FromJson(*on_disk);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->start_command, manifest->start_command);
  EXPECT_EQ(parsed->runtime_env, manifest->runtime_env);

  // What a build recreates was not copied; nothing but the app and manifest is left.
  EXPECT_FALSE(PathExists(app + "/.git"));
  EXPECT_FALSE(PathExists(app + "/__pycache__"));
  EXPECT_FALSE(PathExists(request.release_dir + "/.build-tools"));

  // Debian's packages satisfied the requirements: pip never went to the network.
  std::string log = Log(request);
  EXPECT_TRUE(Contains(log, "detected python app (requirements.txt)\n")) << log;
  EXPECT_TRUE(Contains(log, "==> create venv\n")) << log;
  EXPECT_TRUE(Contains(log, "==> pip install -r requirements.txt\n")) << log;
  EXPECT_TRUE(Contains(log, "Requirement already satisfied: fastapi in ")) << log;
  EXPECT_FALSE(Contains(log, "Retrying")) << log;
  EXPECT_FALSE(Contains(log, "Collecting")) << log;
  EXPECT_TRUE(Contains(log, "==> console scripts\nuvicorn -> uvicorn.main:main")) << log;
  EXPECT_TRUE(log.ends_with("\n==> build succeeded\n")) << log;

  // The uvicorn launcher is the one pip would have written.
  auto launcher = ReadFile(app + "/.venv/bin/uvicorn");
  ASSERT_TRUE(launcher.ok());
  EXPECT_EQ(launcher->rfind("#!" + app + "/.venv/bin/python\n", 0), 0u) << *launcher;
  EXPECT_TRUE(Contains(*launcher, "from uvicorn.main import main\n")) << *launcher;
  EXPECT_TRUE(Contains(*launcher, "sys.exit(main())")) << *launcher;

  std::string body = ServeOnce(request, *manifest);
  EXPECT_EQ(body, "{\"hello\":\"slipway\"}");
}

TEST_F(BuilderTest, PyprojectAppIsInstalledWithoutTheNetwork) {
  Write("pyproject.toml",
        "[build-system]\n"
        "requires = [\"setuptools>=61\"]\n"
        "build-backend = \"setuptools.build_meta\"\n"
        "[project]\n"
        "name = \"hellopkg\"\n"
        "version = \"0.1.0\"\n"
        "dependencies = [\"fastapi>=0.90\", \"pywin32; sys_platform == 'win32'\"]\n"
        "[project.scripts]\n"
        "hello = \"hellopkg:main\"\n"
        "[tool.setuptools]\n"
        "packages = [\"hellopkg\"]\n");
  Write("hellopkg/__init__.py", "def main():\n    print('hello from the package')\n");
  ServiceConfig service;
  service.start_command = "hello";
  BuildRequest request = Request();
  request.service = service;
  auto manifest = Build(request);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString() << "\n" << Log(request);
  std::string log = Log(request);
  EXPECT_TRUE(Contains(log, "==> pip install .\n")) << log;
  EXPECT_TRUE(Contains(log, "Requirement already satisfied: fastapi>=0.90 in ")) << log;
  EXPECT_TRUE(Contains(log, "Ignoring pywin32; sys_platform == 'win32'")) << log;
  EXPECT_TRUE(Contains(log, "Successfully installed hellopkg-0.1.0")) << log;
  EXPECT_FALSE(Contains(log, "Retrying")) << log;

  // The start command resolves through the manifest's PATH to pip's launcher.
  SpawnOptions spawn = Cmd({"/bin/sh", "-c", manifest->start_command}, request.build_env);
  for (const auto& [k, v] : manifest->runtime_env) spawn.env[k] = v;
  spawn.cwd = "/";
  std::vector<std::string> lines;
  RunOptions run;
  run.on_line = [&](std::string_view l) { lines.emplace_back(l); };
  auto out = RunCommand(spawn, run);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->exit_code, 0);
  EXPECT_EQ(lines, std::vector<std::string>{"hello from the package"});
}

TEST_F(BuilderTest, NodeAppWithAnNpmDependencyBuildsAndServes) {
  Write("package.json", R"({
  "name": "slipway-node-test",
  "version": "1.0.0",
  "private": true,
  "dependencies": {"ms": "^2.1.3"},
  "scripts": {
    "build": "node -e \"require('fs').writeFileSync('built.txt', 'built by npm run build')\"",
    "start": "node server.js"
  }
})");
  Write("server.js", R"(const http = require('http');
const ms = require('ms');
http.createServer((req, res) => {
  res.end(`up ${ms(60000)} ${process.env.NODE_ENV}`);
}).listen(Number(process.env.PORT), '127.0.0.1');
)");
  Write("node_modules/stale/index.js", "garbage");
  BuildRequest request = Request();

  auto manifest = Build(request);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString() << "\n" << Log(request);

  std::string app = request.release_dir + "/app";
  EXPECT_EQ(manifest->kind, "node");
  EXPECT_EQ(manifest->start_command, "npm start");
  EXPECT_EQ(manifest->runtime_env.at("NODE_ENV"), "production");
  EXPECT_EQ(manifest->runtime_env.at("PATH").rfind(app + "/node_modules/.bin:", 0), 0u);
  EXPECT_TRUE(PathExists(app + "/node_modules/ms/package.json"));
  EXPECT_FALSE(PathExists(app + "/node_modules/stale"));
  auto built = ReadFile(app + "/built.txt");
  EXPECT_TRUE(built.ok() && *built == "built by npm run build");

  std::string log = Log(request);
  EXPECT_TRUE(Contains(log, "==> npm install\n")) << log;
  EXPECT_TRUE(Contains(log, "==> npm run build\n")) << log;
  EXPECT_TRUE(Contains(log, "==> build succeeded\n")) << log;

  EXPECT_EQ(ServeOnce(request, *manifest), "up 1m production");
}

TEST_F(BuilderTest, StaticSiteIsServedFromItsRoot) {
  Write("index.html", "<h1>hello</h1>");
  BuildRequest request = Request();
  auto manifest = Build(request);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  EXPECT_EQ(manifest->kind, "static");
  EXPECT_EQ(manifest->start_command, "");
  EXPECT_EQ(manifest->static_root, request.release_dir + "/app");
  EXPECT_TRUE(PathExists(manifest->static_root + "/index.html"));
}

TEST_F(BuilderTest, StaticSiteBuiltByItsBuildCommandIsFoundAfterTheBuild) {
  Write("site.md", "hello");
  ServiceConfig service;
  service.builder = "static";
  service.build_command = "mkdir -p dist && (echo '<p>'; cat site.md) > dist/index.html";
  BuildRequest request = Request();
  request.service = service;
  auto manifest = Build(request);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString() << "\n" << Log(request);
  EXPECT_EQ(manifest->static_root, request.release_dir + "/app/dist");
  auto index = ReadFile(manifest->static_root + "/index.html");
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(*index, "<p>\nhello");
}

TEST_F(BuilderTest, StaticDirectoryMissingAfterTheBuildFailsTheBuild) {
  Write("index.html", "x");
  ServiceConfig service;
  service.static_directory = "public";
  service.build_command = "echo not producing public";
  BuildRequest request = Request();
  request.service = service;
  auto manifest = Build(request);
  ASSERT_FALSE(manifest.ok());
  EXPECT_EQ(manifest.status().message(),
            "static directory \"public\" does not exist after the build; set staticDirectory in "
            "slipway.toml to the directory to serve");
  EXPECT_FALSE(PathExists(request.release_dir));
}

TEST_F(BuilderTest, NothingDeployableSaysWhatWasLookedFor) {
  Write("README.md", "just docs");
  BuildRequest request = Request();
  auto manifest = Build(request);
  ASSERT_FALSE(manifest.ok());
  EXPECT_EQ(manifest.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(manifest.status().message(),
            src_ +
                ": nothing to deploy: found no slipway.toml, Procfile, requirements.txt, "
                "pyproject.toml, package.json or index.html");
  EXPECT_FALSE(PathExists(request.release_dir));
  EXPECT_EQ(Log(request), "==> build failed: " + manifest.status().message() + "\n");
}

TEST_F(BuilderTest, FailingBuildCommandNamesTheStepAndRemovesTheRelease) {
  Write("Procfile", "web: ./server\n");
  ServiceConfig service;
  service.build_command = "echo compiling; echo 'error: boom' >&2; exit 3";
  BuildRequest request = Request();
  request.service = service;
  auto manifest = Build(request);
  ASSERT_FALSE(manifest.ok());
  EXPECT_EQ(manifest.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      manifest.status().message(),
      "build step \"echo compiling; echo 'error: boom' >&2; exit 3\" failed with exit code 3");
  EXPECT_FALSE(PathExists(request.release_dir));
  EXPECT_EQ(Log(request),
            "detected command app (Procfile)\n"
            "==> echo compiling; echo 'error: boom' >&2; exit 3\n"
            "compiling\n"
            "error: boom\n"
            "==> build failed: " +
                manifest.status().message() + "\n");
}

TEST_F(BuilderTest, DiskFullInAStepIsResourceExhausted) {
  Write("Procfile", "web: ./server\n");
  ServiceConfig service;
  service.build_command = "head -c 65536 /dev/zero > /dev/full";  // a real ENOSPC
  BuildRequest request = Request();
  request.service = service;
  auto manifest = Build(request);
  ASSERT_FALSE(manifest.ok());
  EXPECT_EQ(manifest.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(Contains(manifest.status().message(), "no space left on device"))
      << manifest.status().message();
  EXPECT_TRUE(Contains(manifest.status().message(), request.release_dir))
      << manifest.status().message();
  EXPECT_FALSE(PathExists(request.release_dir));
}

TEST_F(BuilderTest, ExistingReleaseDirectoryIsLeftAlone) {
  Write("index.html", "x");
  BuildRequest request = Request();
  ASSERT_TRUE(MakeDirs(request.release_dir).ok());
  ASSERT_TRUE(WriteFileAtomic(request.release_dir + "/keep", "mine").ok());
  auto manifest = Build(request);
  ASSERT_FALSE(manifest.ok());
  EXPECT_EQ(manifest.status().code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(PathExists(request.release_dir + "/keep"));
}

TEST_F(BuilderTest, StepTimeoutKillsTheStepsWholeGroup) {
  Write("Procfile", "web: ./server\n");
  ServiceConfig service;
  service.build_command = "sleep 60 & sleep 60";
  BuildRequest request = Request();
  request.service = service;
  request.step_timeout = std::chrono::seconds(1);
  pid_t group = 0;
  request.on_step_started = [&](pid_t pgid) { group = pgid; };
  auto manifest = Build(request);
  ASSERT_FALSE(manifest.ok());
  EXPECT_EQ(manifest.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(manifest.status().message(), "build step \"sleep 60 & sleep 60\" timed out after 1s");
  ASSERT_GT(group, 0);
  EXPECT_FALSE(ProcessGroupAlive(group));
  EXPECT_FALSE(PathExists(request.release_dir));
}

TEST_F(BuilderTest, CancellingStopsTheRunningStep) {
  Write("Procfile", "web: ./server\n");
  ServiceConfig service;
  service.build_command = "echo started; sleep 60";
  BuildRequest request = Request();
  request.service = service;
  std::atomic<bool> cancel{false};
  pid_t group = 0;
  request.on_step_started = [&](pid_t pgid) { group = pgid; };
  // Cancel once the step has shown it is running.
  request.cancelled = [&] {
    if (!cancel && Contains(Log(request), "started\n")) cancel = true;
    return cancel.load();
  };
  auto manifest = Build(request);
  ASSERT_FALSE(manifest.ok());
  EXPECT_EQ(manifest.status().message(), "build cancelled during step \"echo started; sleep 60\"");
  EXPECT_FALSE(ProcessGroupAlive(group));
  EXPECT_FALSE(PathExists(request.release_dir));
}

TEST_F(BuilderTest, SourceTreeIsCopiedWithoutWhatBuildsRecreate) {
  Write("index.html", "x");
  Write("assets/app.js", "js");
  Write("node_modules/x/index.js", "x");
  Write(".venv/bin/python", "x");
  Write("sub/__pycache__/a.pyc", "x");
  Write(".git/config", "x");
  Write("run.sh", "#!/bin/sh\n");
  ASSERT_EQ(chmod((src_ + "/run.sh").c_str(), 0755), 0);
  ASSERT_EQ(symlink("assets/app.js", (src_ + "/link.js").c_str()), 0);
  BuildRequest request = Request();
  auto manifest = Build(request);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  std::string app = request.release_dir + "/app";
  EXPECT_TRUE(PathExists(app + "/assets/app.js"));
  EXPECT_TRUE(PathExists(app + "/sub"));
  EXPECT_FALSE(PathExists(app + "/sub/__pycache__"));
  EXPECT_FALSE(PathExists(app + "/node_modules"));
  EXPECT_FALSE(PathExists(app + "/.venv"));
  EXPECT_FALSE(PathExists(app + "/.git"));
  struct stat st {};
  ASSERT_EQ(stat((app + "/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  char target[64] = {};
  ASSERT_GT(readlink((app + "/link.js").c_str(), target, sizeof(target) - 1), 0);
  EXPECT_STREQ(target, "assets/app.js");
  // The source is read only to the builder.
  EXPECT_TRUE(PathExists(src_ + "/node_modules/x/index.js"));
}

TEST(ReleaseManifestTest, JsonRoundTripAndErrors) {
  ReleaseManifest m;
  m.kind = "python";
  m.app_dir = "/r/app";
  m.start_command = "uvicorn main:app --port $PORT";
  m.runtime_env = {{"PATH", "/r/app/.venv/bin:/usr/bin"}, {"VIRTUAL_ENV", "/r/app/.venv"}};
  auto back = ReleaseManifest::FromJson(m.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->kind, m.kind);
  EXPECT_EQ(back->app_dir, m.app_dir);
  EXPECT_EQ(back->start_command, m.start_command);
  EXPECT_EQ(back->static_root, "");
  EXPECT_EQ(back->runtime_env, m.runtime_env);

  EXPECT_EQ(ReleaseManifest::FromJson("{").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReleaseManifest::FromJson(R"({"kind": "node"})").status().message(),
            "manifest.json: kind and app_dir are required");
  EXPECT_EQ(
      ReleaseManifest::FromJson(R"({"kind": "node", "app_dir": "/a", "runtime_env": {"A": 1}})")
          .status()
          .message(),
      "manifest.json: runtime_env.A must be a string");
}

// The console-scripts generator on an entry point of the `module:attr.sub` form, for a
// distribution visible to the venv that has no launcher in it (as Debian's packages).
TEST_F(BuilderTest, ConsoleScriptsHandleDottedAttributes) {
  std::string venv = root_ + "/venv";
  auto made = RunCommand(
      Cmd({"/usr/bin/python3", "-m", "venv", "--system-site-packages", "--without-pip", venv},
          CurrentEnvironment()),
      RunOptions{});
  ASSERT_TRUE(made.ok() && made->exit_code == 0);
  // A distribution installed without scripts, in a directory on the venv's sys.path.
  std::string site = root_ + "/site";
  ASSERT_TRUE(MakeDirs(site).ok());
  ASSERT_TRUE(WriteFileAtomic(site + "/hellomod.py",
                              "import sys\n"
                              "class Tool:\n"
                              "    @staticmethod\n"
                              "    def run():\n"
                              "        print('hello from', sys.prefix, sys.argv[1:])\n"
                              "        return 7\n"
                              "tool = Tool()\n")
                  .ok());
  ASSERT_TRUE(MakeDirs(site + "/hellomod-1.0.dist-info").ok());
  ASSERT_TRUE(WriteFileAtomic(site + "/hellomod-1.0.dist-info/METADATA",
                              "Metadata-Version: 2.1\nName: hellomod\nVersion: 1.0\n")
                  .ok());
  ASSERT_TRUE(WriteFileAtomic(site + "/hellomod-1.0.dist-info/entry_points.txt",
                              "[console_scripts]\nhello-tool = hellomod:tool.run\n")
                  .ok());
  ASSERT_TRUE(WriteFileAtomic(root_ + "/tools.py", build_internal::PythonToolsScript()).ok());
  EnvMap env = CurrentEnvironment();
  env["PYTHONPATH"] = site;
  std::vector<std::string> lines;
  RunOptions run;
  run.on_line = [&](std::string_view l) { lines.emplace_back(l); };
  auto out =
      RunCommand(Cmd({venv + "/bin/python", root_ + "/tools.py", "console-scripts"}, env), run);
  ASSERT_TRUE(out.ok() && out->exit_code == 0);
  EXPECT_NE(std::find(lines.begin(), lines.end(), "hello-tool -> hellomod:tool.run (hellomod 1.0)"),
            lines.end());

  lines.clear();
  auto ran = RunCommand(Cmd({venv + "/bin/hello-tool", "a"}, env), run);
  ASSERT_TRUE(ran.ok());
  EXPECT_EQ(ran->exit_code, 7);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "hello from " + venv + " ['a']");

  // Launchers already there are left alone: a second run makes none.
  lines.clear();
  out = RunCommand(Cmd({venv + "/bin/python", root_ + "/tools.py", "console-scripts"}, env), run);
  ASSERT_TRUE(out.ok() && out->exit_code == 0);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back(), "made 0 console script(s) runnable in " + venv + "/bin");
}

}  // namespace
}  // namespace slipway
