#pragma once

// Builder: turns a service's source tree into a release — an immutable directory
// holding the built app plus `manifest.json` — streaming every step's output to a
// build log. Rollback reuses a release as it is; nothing in it is rebuilt.
//
// Detection, when the config does not name a builder (first match wins):
//   static_directory or builder "static"      -> static site served by the edge
//   requirements.txt or pyproject.toml         -> Python: venv (system site packages,
//                                                 /usr/bin/python3), deps installed,
//                                                 console scripts of every visible
//                                                 distribution made runnable
//   package.json                               -> Node: npm ci (lockfile) or npm install,
//                                                 npm run build if defined, npm start
//   Procfile with web:                         -> its command, no build step
//   index.html                                 -> static site
//   start_command alone                        -> "command": buildCommand, if any, then it
// A named builder "command" runs only the config's build_command. Every kind runs the
// config's build_command as its last step.
// The start command is, in order: the config's start_command, the Procfile's web:,
// the builder's default (Node: "npm start"; Python: none -> error).
//
// Thread-safety: DetectBuildPlan is pure; Build may run for several services at once
// (each in its own release directory), in one process or several, sharing one cache_dir;
// PruneDependencyCache may run at the same time as builds.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/subprocess.h"
#include "config/config.h"

namespace slipway {

struct BuildStep {
  std::string name;     // what the user sees: "npm ci", "pip install -r requirements.txt"
  std::string command;  // run with /bin/sh -c in the release's app directory
  // Part of the dependency install, which a build with a cache_dir may take from the
  // cache instead (Python: create venv, pip install, console scripts; Node: npm ci).
  bool installs_dependencies = false;
};

struct BuildPlan {
  std::string kind;           // "python", "node", "static", "command"
  std::string detected_from;  // "requirements.txt", "package.json", "Procfile", ...
  std::vector<BuildStep> steps;
  std::string start_command;  // "" for static
  std::string static_root;    // static: directory served, relative to the app dir
};

// Decides how to build `app_dir` (a service's root). kInvalidArgument when there is
// nothing deployable, naming what was looked for:
//   "<dir>: nothing to deploy: found no slipway.toml, Procfile, requirements.txt,
//    pyproject.toml, package.json or index.html"
// and when a Python app has no start command ("add a Procfile with a web: line or
// startCommand in slipway.toml"), or a Node app has neither a start command nor
// scripts.start / server.js for `npm start`. kNotFound when app_dir does not exist.
// Static sites without staticDirectory are served from "." when it has index.html;
// when there are build steps (npm, buildCommand) static_root is "" and Build looks
// for index.html in dist, build, out, public, then "." after the build.
Result<BuildPlan> DetectBuildPlan(const std::string& app_dir, const ServiceConfig& service);

struct BuildRequest {
  std::string source_dir;   // the service's root in the uploaded tree (read only)
  std::string release_dir;  // to create: the app goes to <release_dir>/app
  std::string log_path;     // build log, appended as plain lines (see Build); "" for none
  ServiceConfig service;
  EnvMap build_env;  // the environment every step sees (PATH, HOME, variables)
  // Applied to every line before it reaches the log (the engine masks secrets); null: none.
  std::function<std::string(std::string_view)> mask_line;
  std::function<bool()> cancelled;             // polled; true stops the build
  std::function<void(pid_t)> on_step_started;  // pgid of each step, for cleanup after a crash
  std::chrono::seconds step_timeout{std::chrono::minutes(20)};
  // Dependency cache shared by builds (see "Dependency cache" below); "" for none.
  std::string cache_dir;
};

struct ReleaseManifest {
  std::string kind;
  std::string app_dir;        // absolute path of <release_dir>/app
  std::string start_command;  // shell command, run in app_dir
  std::string static_root;    // absolute, static sites only
  EnvMap runtime_env;         // added to the app's env (PATH with the venv, VIRTUAL_ENV...)
  // The dependency cache entry the release uses (its key, 64 hex digits; "" for none).
  // The release works as long as <cache_dir>/<deps_key> exists: keep it from pruning.
  std::string deps_key;
  std::string ToJson() const;
  static Result<ReleaseManifest> FromJson(const std::string& json);
};

// Builds the release: copies source_dir to <release_dir>/app (without .git,
// node_modules, .venv, __pycache__), runs the plan's steps there (/bin/sh -c, env =
// build_env, plus the venv or node_modules/.bin PATH), checks a static site's root.
//
// The log gets plain lines: first `detected <kind> app (<detected_from>)`, then for
// each step `==> <step name>` followed by the step's output lines, and at the end
// `==> build succeeded` or `==> build failed: <reason>`.
//
// On success `<release_dir>/manifest.json` exists and the manifest is returned. On
// failure the release directory is removed (unless it existed before: kAlreadyExists)
// and the Status names the step:
//   kFailedPrecondition  `build step "npm ci" failed with exit code 1` (the caller adds
//                        the log's last lines), or `build cancelled during step "..."`
//   kDeadlineExceeded    `build step "..." timed out after 1200s`
//   kResourceExhausted   the disk is full (a step saw ENOSPC, or copying/writing did),
//                        naming the release directory
//   kInvalidArgument     DetectBuildPlan's errors; kNotFound: no source_dir
//
// Dependency cache. With request.cache_dir set, a Python or Node app's dependency
// install is taken from <cache_dir>/<key> when an earlier build made it with the same
// inputs, and made there (then used) otherwise. The key is a SHA-256 of everything the
// install depends on:
//   Python  /usr/bin/python3's version and platform, the system site packages (their
//           directories' mtimes), requirements.txt and the local files it includes with
//           -r/-c or finds wheels in (--find-links), or pyproject.toml's dependencies,
//           build requirements and requires-python (+ poetry.lock / uv.lock), PIP_* and
//           PYTHONPATH
//   Node    node -v, npm -v, the machine, the install command (npm ci / npm install),
//           package-lock.json, npm-shrinkwrap.json, package.json's dependency fields,
//           the app's and $HOME's .npmrc, NODE_ENV and NPM_CONFIG_*
// Python: the entry holds a venv with the dependencies; the release gets its own small
// venv (<app>/.venv, runtime_env as without the cache, plus the entry's bin on PATH)
// that sees the entry's packages through a .pth file, then the project itself
// (pyproject.toml with [build-system]) and the console scripts are installed into it.
// Node: npm ci / npm install runs on package.json and the lockfile alone in the entry;
// the release's node_modules is a tree of hard links to the entry's files (build steps
// must replace, not rewrite, files in node_modules).
// Not cached, with the reason in the log (`==> dependencies: not cached (...)`), are
// installs that depend on the app's other files: editable or local-path requirements,
// dynamic pyproject dependencies, file:/link: npm dependencies, npm workspaces, and
// package.json install scripts (preinstall, install, postinstall, prepare...).
// The log says `==> dependencies: reused cache <first 12 hex digits of the key>` when
// the cache was used, or shows the install steps (`==> pip install -r
// requirements.txt`, `==> npm ci`) followed by `==> dependencies: saved to cache
// <key12>`. manifest.deps_key is the key. An entry is complete or absent: a failed,
// cancelled or killed build leaves none that a later build uses.
Result<ReleaseManifest> Build(const BuildRequest& request);

// Precompression of a static site (a step of Build for static releases, logged as
// `==> precompress`): every file of a compressible type (common/media_types.h: HTML,
// CSS, JavaScript, JSON, SVG, source maps, fonts other than WOFF/WOFF2, ...) of at least
// kPrecompressMinBytes and at most kPrecompressMaxBytes gets "<file>.br" (brotli,
// quality 11 up to 4 MiB, 9 above) and "<file>.gz" (zlib, level 9), each kept only when
// smaller than the file, with the file's mtime. Variants the build wrote itself are kept
// as they are; node_modules and dot-directories are skipped. The edge serves them by
// Accept-Encoding (proxy/static_files.h). Errors: the first file that could not be read
// or written (disk full: kResourceExhausted); kFailedPrecondition when `cancelled`.
inline constexpr uint64_t kPrecompressMinBytes = 1024;
inline constexpr uint64_t kPrecompressMaxBytes = 64ull << 20;
struct PrecompressSummary {
  int files = 0;              // files considered
  int brotli = 0;             // .br written
  int gzip = 0;               // .gz written
  uint64_t bytes = 0;         // their total size
  uint64_t brotli_bytes = 0;  // what a brotli client downloads for them (variant or file)
  uint64_t gzip_bytes = 0;    // the same for gzip
};
Result<PrecompressSummary> PrecompressStaticSite(const std::string& root,
                                                 const std::function<bool()>& cancelled = nullptr);

// Removes the dependency cache entries that no kept release uses (`keys_in_use`: their
// manifests' deps_key) and that no build has used for longer than `keep_unused_for`
// (which must exceed the longest build plus the time until its release is recorded),
// and the temp entries of builds whose process is gone. OK when cache_dir does not
// exist. Safe while builds run. Errors: the first directory that could not be removed.
Status PruneDependencyCache(const std::string& cache_dir, const std::set<std::string>& keys_in_use,
                            std::chrono::hours keep_unused_for);

}  // namespace slipway
