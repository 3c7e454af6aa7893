#include "build/builder.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "build/dep_cache.h"
#include "build/python_tools.h"
#include "common/fs.h"
#include "common/shell.h"

namespace slipway {

namespace {

namespace fs = std::filesystem;
using build_internal::DependencyCache;
using build_internal::LinkTree;
using build_internal::Sha256Hex;
using nlohmann::json;

constexpr char kDefaultPath[] = "/usr/local/bin:/usr/bin:/bin";
constexpr char kStartCommandHint[] =
    "add a Procfile with a web: line or startCommand in slipway.toml";
// Where a static build usually writes its output, in the order they are tried.
constexpr const char* kStaticOutputDirs[] = {"dist", "build", "out", "public"};
constexpr const char* kSkippedDirs[] = {".git", "node_modules", ".venv", "__pycache__"};
// Beside the app, removed once the build is done: the Python steps' helper script.
constexpr char kToolsDir[] = ".build-tools";
constexpr char kToolsScript[] = "python_tools.py";

bool HasFile(const std::string& dir, const std::string& name) {
  struct stat st {};
  return stat((dir + "/" + name).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

// The Procfile's `web:` command, "" when there is none. Malformed lines are the config
// loader's to report; here they are skipped, so the builder stands on its own.
std::string ProcfileWebCommand(const std::string& app_dir) {
  auto text = ReadFile(app_dir + "/Procfile");
  if (!text.ok()) return "";
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    std::string trimmed = Trim(line);
    if (trimmed.empty() || trimmed[0] == '#') continue;
    size_t colon = trimmed.find(':');
    if (colon == std::string::npos) continue;
    if (Trim(std::string_view(trimmed).substr(0, colon)) == "web") {
      return Trim(std::string_view(trimmed).substr(colon + 1));
    }
  }
  return "";
}

Result<json> ReadPackageJson(const std::string& app_dir) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(app_dir + "/package.json"));
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return InvalidArgument(app_dir + "/package.json: not a JSON object; fix it so npm can read it");
  }
  return doc;
}

bool HasNpmScript(const json& package, const std::string& name) {
  auto scripts = package.find("scripts");
  if (scripts == package.end() || !scripts->is_object()) return false;
  auto script = scripts->find(name);
  return script != scripts->end() && script->is_string() && !script->get<std::string>().empty();
}

// npm install steps, then `npm run build` when the package defines one (and the
// config's buildCommand does not already say exactly that).
Result<std::vector<BuildStep>> NpmSteps(const std::string& app_dir, const ServiceConfig& service,
                                        json* package) {
  ASSIGN_OR_RETURN(*package, ReadPackageJson(app_dir));
  std::vector<BuildStep> steps;
  if (HasFile(app_dir, "package-lock.json") || HasFile(app_dir, "npm-shrinkwrap.json")) {
    steps.push_back({"npm ci", "npm ci --no-audit --no-fund", /*installs_dependencies=*/true});
  } else {
    steps.push_back({"npm install", "npm install --no-audit --no-fund", true});
  }
  if (HasNpmScript(*package, "build") && Trim(service.build_command) != "npm run build") {
    steps.push_back({"npm run build", "npm run build"});
  }
  return steps;
}

bool IsSafeRelativePath(const std::string& path) {
  if (path.empty() || path[0] == '/') return false;
  for (const auto& part : fs::path(path)) {
    if (part == "..") return false;
  }
  return true;
}

// A static site's root found without configuration: `after_build` prefers a build's
// usual output directories over the source's own index.html (a Vite-style template).
std::string FindStaticRoot(const std::string& app_dir, bool after_build) {
  if (!after_build && HasFile(app_dir, "index.html")) return ".";
  for (const char* dir : kStaticOutputDirs) {
    if (HasFile(app_dir + "/" + dir, "index.html")) return dir;
  }
  if (HasFile(app_dir, "index.html")) return ".";
  return "";
}

std::string PathOf(const EnvMap& env) {
  auto it = env.find("PATH");
  return it != env.end() && !it->second.empty() ? it->second : kDefaultPath;
}

// What a kind adds to the environment of its build steps and of the running app.
// `deps_bin`: the cached venv's bin directory, after the release's own on PATH.
EnvMap KindEnvironment(const std::string& kind, const std::string& app_dir, const EnvMap& base,
                       const std::string& deps_bin = "") {
  EnvMap env;
  if (kind == "python") {
    env["PATH"] = app_dir + "/.venv/bin:" + (deps_bin.empty() ? "" : deps_bin + ":") + PathOf(base);
    env["VIRTUAL_ENV"] = app_dir + "/.venv";
    env["PYTHONUNBUFFERED"] = "1";
  } else if (kind == "node") {
    env["PATH"] = app_dir + "/node_modules/.bin:" + PathOf(base);
  }
  return env;
}

bool MentionsDiskFull(std::string_view line) {
  return line.find("No space left on device") != std::string_view::npos ||
         line.find("ENOSPC") != std::string_view::npos;
}

bool DiskNearlyFull(const std::string& path) {
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0) return false;
  return static_cast<unsigned long long>(st.f_bavail) * st.f_frsize < (1ull << 20);
}

Status DiskFull(const std::string& release_dir, const std::string& what) {
  return ResourceExhausted(what + ": no space left on device for release " + release_dir +
                           "; free disk space and deploy again");
}

// Copies the source tree, leaving out what a build recreates or a release must not
// carry. Symlinks are copied as links; sockets and fifos are skipped.
Status CopySource(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::directory_iterator it(from, ec);
  if (ec) return ErrnoStatus("read " + from.string(), ec.value());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return ErrnoStatus("read " + from.string(), ec.value());
    const fs::path& src = it->path();
    std::string name = src.filename().string();
    bool skipped = false;
    for (const char* s : kSkippedDirs) skipped = skipped || name == s;
    if (skipped) continue;
    fs::path dst = to / name;
    fs::file_status st = it->symlink_status(ec);
    if (ec) return ErrnoStatus("stat " + src.string(), ec.value());
    if (fs::is_symlink(st)) {
      fs::copy_symlink(src, dst, ec);
    } else if (fs::is_directory(st)) {
      fs::create_directory(dst, src, ec);
      if (!ec) RETURN_IF_ERROR(CopySource(src, dst));
    } else if (fs::is_regular_file(st)) {
      fs::copy_file(src, dst, ec);
    }
    if (ec) return ErrnoStatus("copy " + src.string() + " to " + dst.string(), ec.value());
  }
  return Status::Ok();
}

// The build log: plain lines appended to one file. The first write error is kept and
// ends the build at the next check (a full disk shows up here first).
class BuildLog {
 public:
  explicit BuildLog(const std::string& path,
                    std::function<std::string(std::string_view)> mask = nullptr)
      : mask_(std::move(mask)) {
    if (path.empty()) return;
    std::string parent = fs::path(path).parent_path().string();
    if (!parent.empty()) status_ = MakeDirs(parent);
    if (!status_.ok()) return;
    fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) status_ = ErrnoStatus("build log " + path, errno);
    path_ = path;
  }
  ~BuildLog() {
    if (fd_ >= 0) close(fd_);
  }
  BuildLog(const BuildLog&) = delete;
  BuildLog& operator=(const BuildLog&) = delete;

  void Line(std::string_view line) {
    if (fd_ < 0 || !status_.ok()) return;
    std::string data = mask_ ? mask_(line) : std::string(line);
    data += '\n';
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = write(fd_, data.data() + off, data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status_ = ErrnoStatus("build log " + path_, errno);
        return;
      }
      off += static_cast<size_t>(n);
    }
  }
  const Status& status() const { return status_; }

 private:
  int fd_ = -1;
  std::string path_;
  Status status_;
  std::function<std::string(std::string_view)> mask_;
};

Status RunStep(const BuildRequest& request, const BuildStep& step, const std::string& app_dir,
               const EnvMap& env, BuildLog& log) {
  log.Line("==> " + step.name);
  SpawnOptions spawn;
  spawn.argv = {"/bin/sh", "-c", step.command};
  spawn.env = env;
  spawn.cwd = app_dir;
  bool saw_disk_full = false;
  RunOptions run;
  run.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(request.step_timeout);
  run.cancelled = request.cancelled;
  run.on_started = request.on_step_started;
  run.on_line = [&](std::string_view line) {
    saw_disk_full = saw_disk_full || MentionsDiskFull(line);
    log.Line(line);
  };
  auto outcome = RunCommand(spawn, run);
  std::string quoted = "\"" + step.name + "\"";
  if (!outcome.ok()) return outcome.status().WithContext("build step " + quoted);
  RETURN_IF_ERROR(log.status());
  if (outcome->cancelled) return FailedPrecondition("build cancelled during step " + quoted);
  if (outcome->timed_out) {
    return DeadlineExceeded("build step " + quoted + " timed out after " +
                            std::to_string(request.step_timeout.count()) + "s");
  }
  if (outcome->exit_code == 0) return Status::Ok();
  if (saw_disk_full || DiskNearlyFull(request.release_dir)) {
    return DiskFull(request.release_dir, "build step " + quoted + " failed");
  }
  return FailedPrecondition("build step " + quoted + " failed with exit code " +
                            std::to_string(outcome->exit_code));
}

Status WithDiskContext(Status st, const std::string& release_dir) {
  if (st.code() == StatusCode::kResourceExhausted) return DiskFull(release_dir, st.message());
  return st;
}

// ---- Dependency cache (see builder.h) ----

constexpr char kCacheKeyVersion[] = "slipway-deps-v1";
constexpr char kSystemPython[] = "/usr/bin/python3";
constexpr const char* kNpmInstallScripts[] = {"preinstall", "install", "postinstall", "prepublish",
                                              "preprepare", "prepare", "postprepare"};
constexpr const char* kNpmDependencyFields[] = {"dependencies", "devDependencies",
                                                "optionalDependencies", "peerDependencies"};
// What of package.json npm install reads besides the lockfile.
constexpr const char* kNpmInstallFields[] = {"dependencies",
                                             "devDependencies",
                                             "optionalDependencies",
                                             "peerDependencies",
                                             "peerDependenciesMeta",
                                             "bundleDependencies",
                                             "bundledDependencies",
                                             "overrides",
                                             "engines",
                                             "os",
                                             "cpu",
                                             "packageManager"};

// The dependency install a build used: `key` "" when it ran the plan's own steps.
struct Dependencies {
  std::string key;
  std::string entry;      // the cache entry's directory
  bool packaged = false;  // Python: the project itself is installed too (pip install .)
};

std::string Key12(const std::string& key) { return key.substr(0, 12); }

// Runs argv (no shell) and returns its merged output; for the cache key's inputs.
Result<std::string> CaptureOutput(const BuildRequest& request, std::vector<std::string> argv,
                                  const std::string& cwd, const EnvMap& env) {
  SpawnOptions spawn;
  spawn.argv = std::move(argv);
  spawn.env = env;
  spawn.cwd = cwd;
  std::string out;
  RunOptions run;
  run.timeout = std::chrono::minutes(1);
  run.cancelled = request.cancelled;
  run.on_line = [&](std::string_view line) {
    out += line;
    out += '\n';
  };
  std::string what = spawn.argv[0] + (spawn.argv.size() > 1 ? " " + spawn.argv.back() : "");
  ASSIGN_OR_RETURN(CommandOutcome outcome, RunCommand(spawn, run));
  if (outcome.cancelled) return FailedPrecondition("build cancelled during " + what);
  if (outcome.timed_out || outcome.exit_code != 0) {
    std::string last = Trim(out.substr(out.rfind('\n', out.size() >= 2 ? out.size() - 2 : 0) + 1));
    return FailedPrecondition(what + " failed" + (last.empty() ? "" : ": " + last));
  }
  return out;
}

// The variables of `env` whose names start with one of `prefixes` (case-insensitive) or
// are in `names`, as "NAME=value" lines.
std::string EnvInputs(const EnvMap& env, std::initializer_list<std::string_view> prefixes,
                      std::initializer_list<std::string_view> names) {
  std::string out;
  for (const auto& [k, v] : env) {
    std::string upper = k;
    for (char& c : upper) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
    bool wanted = false;
    for (auto p : prefixes) wanted = wanted || upper.starts_with(p);
    for (auto n : names) wanted = wanted || k == n;
    if (wanted) out += k + "=" + v + "\n";
  }
  return out;
}

std::string FileInput(const std::string& label, const std::string& path) {
  auto text = ReadFile(path);
  return label + (text.ok() ? ":" + Sha256Hex(*text) : ": none") + "\n";
}

// A venv's scripts and pyvenv.cfg name the venv's absolute path: moved from `from` to
// `to`, they are rewritten (before the move: the entry never changes once committed).
Status RelocateVenv(const std::string& venv, const std::string& from, const std::string& to) {
  std::vector<std::string> files = {venv + "/pyvenv.cfg"};
  std::error_code ec;
  for (fs::directory_iterator it(venv + "/bin", ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) files.push_back(it->path().string());
  }
  if (ec) return ErrnoStatus("read " + venv + "/bin", ec.value());
  for (const std::string& file : files) {
    auto text = ReadFile(file);
    if (!text.ok()) continue;  // pyvenv.cfg is optional
    if (file.ends_with("/bin") || (!text->starts_with("#!") && !file.ends_with("/pyvenv.cfg"))) {
      continue;  // binaries are left alone
    }
    std::string out;
    size_t pos = 0;
    for (size_t hit; (hit = text->find(from, pos)) != std::string::npos; pos = hit + from.size()) {
      out += text->substr(pos, hit - pos) + to;
    }
    if (pos == 0) continue;
    out += text->substr(pos);
    struct stat st {};
    if (stat(file.c_str(), &st) != 0) return ErrnoStatus(file, errno);
    RETURN_IF_ERROR(WriteFileAtomic(file, out, static_cast<int>(st.st_mode & 07777)));
  }
  return Status::Ok();
}

// Builds a missing entry in a temp directory with `install` (given the temp directory),
// then commits it; returns the committed entry.
Result<std::string> MakeEntry(DependencyCache& cache, const std::string& key,
                              const std::function<Status(const std::string&)>& install,
                              BuildLog& log) {
  ASSIGN_OR_RETURN(std::string temp, cache.StartEntry(key));
  Status st = install(temp);
  Result<std::string> entry = st.ok() ? cache.Commit(key, temp) : Result<std::string>(st);
  if (!entry.ok()) {
    (void)RemoveTree(temp);  // never committed: no later build can see it
    return entry.status();
  }
  log.Line("==> dependencies: saved to cache " + Key12(key));
  return entry;
}

// Python through the cache: the entry holds a venv with the dependencies; the release
// gets its own venv on top of it. `key` stays "" when the install is not cacheable.
Result<Dependencies> PythonDependencies(const BuildRequest& request, const std::string& app_dir,
                                        const EnvMap& env, BuildLog& log) {
  Dependencies deps;
  const std::string tools_dir = env.at("SLIPWAY_BUILD_TOOLS");
  auto fingerprint = CaptureOutput(
      request, {kSystemPython, tools_dir + "/" + kToolsScript, "fingerprint"}, app_dir, env);
  if (!fingerprint.ok()) {
    if (request.cancelled && request.cancelled()) return fingerprint.status();
    log.Line("==> dependencies: not cached (" + fingerprint.status().message() + ")");
    return deps;
  }
  json doc = json::parse(*fingerprint, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    log.Line("==> dependencies: not cached (unexpected fingerprint: " + Trim(*fingerprint) + ")");
    return deps;
  }
  if (!doc.value("cacheable", false)) {
    log.Line("==> dependencies: not cached (" + doc.value("reason", std::string("unknown")) + ")");
    return deps;
  }
  const bool from_requirements = doc.value("source", std::string()) == "requirements.txt";
  deps.packaged = !from_requirements && doc.value("packaged", false);
  std::string key = Sha256Hex(std::string(kCacheKeyVersion) + "\npython\n" + *fingerprint +
                              EnvInputs(env, {"PIP_"}, {"PYTHONPATH", "PYTHONHOME"}));
  DependencyCache cache(request.cache_dir);
  ASSIGN_OR_RETURN(deps.entry, cache.Lookup(key));
  if (!deps.entry.empty()) {
    log.Line("==> dependencies: reused cache " + Key12(key));
  } else {
    const std::string tools = "\"$SLIPWAY_BUILD_TOOLS/python_tools.py\"";
    auto install = [&](const std::string& temp) -> Status {
      const std::string venv = temp + "/venv";
      RETURN_IF_ERROR(RunStep(
          request,
          {"create venv",
           std::string(kSystemPython) + " -m venv --system-site-packages " + ShellQuote(venv)},
          app_dir, env, log));
      const std::string python = ShellQuote(venv + "/bin/python") + " " + tools;
      BuildStep pip =
          from_requirements
              ? BuildStep{"pip install -r requirements.txt",
                          python + " install-requirements requirements.txt"}
              : BuildStep{"pip install dependencies", python + " install-project-dependencies"};
      RETURN_IF_ERROR(RunStep(request, pip, app_dir, env, log));
      return RelocateVenv(venv, temp, cache.EntryPath(key));
    };
    ASSIGN_OR_RETURN(deps.entry, MakeEntry(cache, key, install, log));
  }
  deps.key = key;
  return deps;
}

// Why npm's install of this package.json cannot be cached; "" when it can.
std::string NpmUncacheableReason(const json& package) {
  if (package.contains("workspaces")) return "package.json declares workspaces";
  for (const char* script : kNpmInstallScripts) {
    if (HasNpmScript(package, script)) {
      return std::string("package.json has a ") + script +
             " script, which may depend on the app's other files";
    }
  }
  for (const char* field : kNpmDependencyFields) {
    auto deps = package.find(field);
    if (deps == package.end() || !deps->is_object()) continue;
    for (auto& [name, spec] : deps->items()) {
      if (!spec.is_string()) continue;
      std::string s = spec.get<std::string>();
      if (s.starts_with("file:") || s.starts_with("link:") || s.starts_with(".") ||
          s.starts_with("/") || s.starts_with("~")) {
        return "package.json depends on the local path " + s + " (" + name + ")";
      }
    }
  }
  return "";
}

// Node through the cache: `install` (npm ci / npm install) runs in the entry on
// package.json, the lockfile and .npmrc alone; the release links the entry's node_modules.
Result<Dependencies> NodeDependencies(const BuildRequest& request, const BuildStep& install,
                                      const std::string& app_dir, const EnvMap& env,
                                      BuildLog& log) {
  Dependencies deps;
  ASSIGN_OR_RETURN(json package, ReadPackageJson(app_dir));
  if (std::string reason = NpmUncacheableReason(package); !reason.empty()) {
    log.Line("==> dependencies: not cached (" + reason + ")");
    return deps;
  }
  auto node = CaptureOutput(request, {"node", "-v"}, app_dir, env);
  auto npm = node.ok() ? CaptureOutput(request, {"npm", "-v"}, app_dir, env) : node;
  if (!npm.ok()) {
    if (request.cancelled && request.cancelled()) return npm.status();
    log.Line("==> dependencies: not cached (" + npm.status().message() + ")");
    return deps;
  }
  utsname uts{};
  uname(&uts);
  json fields = json::object();
  for (const char* field : kNpmInstallFields) {
    if (auto it = package.find(field); it != package.end()) fields[field] = *it;
  }
  auto home = env.find("HOME");
  std::string key =
      Sha256Hex(std::string(kCacheKeyVersion) + "\nnode\n" + *node + *npm + uts.machine + "\n" +
                install.command + "\n" + fields.dump() + "\n" +
                FileInput("package-lock.json", app_dir + "/package-lock.json") +
                FileInput("npm-shrinkwrap.json", app_dir + "/npm-shrinkwrap.json") +
                FileInput(".npmrc", app_dir + "/.npmrc") +
                (home != env.end() ? FileInput("~/.npmrc", home->second + "/.npmrc") : "") +
                EnvInputs(env, {"NPM_CONFIG_"}, {"NODE_ENV"}));
  DependencyCache cache(request.cache_dir);
  ASSIGN_OR_RETURN(deps.entry, cache.Lookup(key));
  if (!deps.entry.empty()) {
    log.Line("==> dependencies: reused cache " + Key12(key));
  } else {
    auto run = [&](const std::string& temp) -> Status {
      for (const char* name :
           {"package.json", "package-lock.json", "npm-shrinkwrap.json", ".npmrc"}) {
        if (!HasFile(app_dir, name)) continue;
        ASSIGN_OR_RETURN(std::string text, ReadFile(app_dir + "/" + name));
        RETURN_IF_ERROR(WriteFileAtomic(temp + "/" + name, text));
      }
      return RunStep(request, install, temp, env, log);
    };
    ASSIGN_OR_RETURN(deps.entry, MakeEntry(cache, key, run, log));
  }
  deps.key = key;
  if (IsDirectory(deps.entry + "/node_modules")) {
    RETURN_IF_ERROR(LinkTree(deps.entry + "/node_modules", app_dir + "/node_modules"));
  }
  // npm install wrote a lockfile, as it would have in the app.
  if (!HasFile(app_dir, "package-lock.json") && !HasFile(app_dir, "npm-shrinkwrap.json") &&
      HasFile(deps.entry, "package-lock.json")) {
    ASSIGN_OR_RETURN(std::string lock, ReadFile(deps.entry + "/package-lock.json"));
    RETURN_IF_ERROR(WriteFileAtomic(app_dir + "/package-lock.json", lock));
  }
  return deps;
}

// Runs the plan's dependency steps through the cache where it can; returns the steps
// still to run in the app directory (the release's own part and the rest of the plan).
Result<std::vector<BuildStep>> InstallDependencies(const BuildRequest& request,
                                                   const BuildPlan& plan,
                                                   const std::string& app_dir, const EnvMap& env,
                                                   BuildLog& log, Dependencies* deps) {
  std::vector<BuildStep> rest;
  const BuildStep* npm_install = nullptr;
  for (const BuildStep& step : plan.steps) {
    if (!step.installs_dependencies) rest.push_back(step);
    if (step.installs_dependencies && plan.kind != "python") npm_install = &step;
  }
  const bool python = plan.kind == "python" &&
                      (HasFile(app_dir, "requirements.txt") || HasFile(app_dir, "pyproject.toml"));
  if (request.cache_dir.empty() || (!python && npm_install == nullptr)) return plan.steps;
  if (python) {
    ASSIGN_OR_RETURN(*deps, PythonDependencies(request, app_dir, env, log));
  } else {
    ASSIGN_OR_RETURN(*deps, NodeDependencies(request, *npm_install, app_dir, env, log));
  }
  if (deps->key.empty()) return plan.steps;
  if (!python) return rest;
  const std::string tools = ".venv/bin/python \"$SLIPWAY_BUILD_TOOLS/python_tools.py\"";
  std::vector<BuildStep> steps = {
      {"create venv", std::string(kSystemPython) +
                          " -m venv --system-site-packages --without-pip .venv && " + tools +
                          " link-dependencies " + ShellQuote(deps->entry + "/venv")}};
  if (deps->packaged) steps.push_back({"pip install .", tools + " install-project-only"});
  steps.push_back({"console scripts", tools + " console-scripts"});
  steps.insert(steps.end(), rest.begin(), rest.end());
  return steps;
}

Result<ReleaseManifest> BuildRelease(const BuildRequest& request, const std::string& release_dir,
                                     BuildLog& log) {
  const std::string app_dir = release_dir + "/app";
  ASSIGN_OR_RETURN(BuildPlan plan, DetectBuildPlan(request.source_dir, request.service));
  log.Line("detected " + plan.kind + " app (" + plan.detected_from + ")");
  RETURN_IF_ERROR(WithDiskContext(log.status(), release_dir));

  if (mkdir(app_dir.c_str(), 0755) != 0) {
    return WithDiskContext(ErrnoStatus(app_dir, errno), release_dir);
  }
  RETURN_IF_ERROR(WithDiskContext(CopySource(request.source_dir, app_dir), release_dir));

  EnvMap env = request.build_env;
  // A static site's steps are npm's, when it has any.
  const std::string env_kind = plan.kind == "static" ? "node" : plan.kind;
  for (auto& [k, v] : KindEnvironment(env_kind, app_dir, request.build_env)) env[k] = v;
  if (plan.kind == "python") {
    std::string tools = release_dir + "/" + kToolsDir;
    RETURN_IF_ERROR(WithDiskContext(MakeDirs(tools), release_dir));
    RETURN_IF_ERROR(WithDiskContext(
        WriteFileAtomic(tools + "/" + kToolsScript, build_internal::PythonToolsScript()),
        release_dir));
    env["SLIPWAY_BUILD_TOOLS"] = tools;
  } else if (plan.kind == "node" || plan.kind == "static") {
    env.emplace("NPM_CONFIG_UPDATE_NOTIFIER", "false");
  }

  Dependencies deps;
  ASSIGN_OR_RETURN(std::vector<BuildStep> steps,
                   InstallDependencies(request, plan, app_dir, env, log, &deps));
  if (plan.kind == "python" && !deps.key.empty()) {
    for (auto& [k, v] :
         KindEnvironment("python", app_dir, request.build_env, deps.entry + "/venv/bin")) {
      env[k] = v;
    }
  }
  for (const BuildStep& step : steps) {
    if (request.cancelled && request.cancelled()) {
      return FailedPrecondition("build cancelled before step \"" + step.name + "\"");
    }
    RETURN_IF_ERROR(RunStep(request, step, app_dir, env, log));
  }
  RETURN_IF_ERROR(RemoveTree(release_dir + "/" + kToolsDir));

  ReleaseManifest manifest;
  manifest.kind = plan.kind;
  manifest.app_dir = app_dir;
  manifest.start_command = plan.start_command;
  manifest.deps_key = deps.key;
  if (plan.kind == "static") {
    std::string root = plan.static_root;
    if (root.empty()) root = FindStaticRoot(app_dir, /*after_build=*/true);
    if (root.empty()) {
      return FailedPrecondition(
          "the build produced no index.html (looked in ., dist, build, out, "
          "public); set staticDirectory in slipway.toml to its output "
          "directory");
    }
    std::string abs = fs::path(app_dir + "/" + root).lexically_normal().string();
    if (abs.size() > 1 && abs.back() == '/') abs.pop_back();
    if (!IsDirectory(abs)) {
      return FailedPrecondition("static directory \"" + root + "\" does not exist" +
                                (plan.steps.empty() ? "" : " after the build") +
                                "; set staticDirectory in slipway.toml to the directory to serve");
    }
    manifest.static_root = abs;
    log.Line("==> precompress");
    auto precompressed = PrecompressStaticSite(abs, request.cancelled);
    if (!precompressed.ok()) return WithDiskContext(precompressed.status(), release_dir);
    const PrecompressSummary& summary = *precompressed;
    log.Line(fmt::format(
        "{} file(s) of {:.1f} KiB: {} brotli ({:.1f} KiB), {} gzip ({:.1f} KiB) variant(s)",
        summary.files, static_cast<double>(summary.bytes) / 1024, summary.brotli,
        static_cast<double>(summary.brotli_bytes) / 1024, summary.gzip,
        static_cast<double>(summary.gzip_bytes) / 1024));
  } else {
    manifest.runtime_env =
        KindEnvironment(plan.kind, app_dir, request.build_env,
                        plan.kind == "python" && !deps.key.empty() ? deps.entry + "/venv/bin" : "");
    if (plan.kind == "node") manifest.runtime_env["NODE_ENV"] = "production";
  }
  RETURN_IF_ERROR(WithDiskContext(
      WriteFileAtomic(release_dir + "/manifest.json", manifest.ToJson()), release_dir));
  return manifest;
}

}  // namespace

Result<BuildPlan> DetectBuildPlan(const std::string& app_dir, const ServiceConfig& service) {
  if (!IsDirectory(app_dir)) {
    return NotFound(app_dir + ": no such directory; check rootDirectory in slipway.toml");
  }
  const std::string procfile_web = ProcfileWebCommand(app_dir);
  BuildPlan plan;
  if (!service.builder.empty()) {
    if (service.builder != "python" && service.builder != "node" && service.builder != "static" &&
        service.builder != "command") {
      return InvalidArgument("builder \"" + service.builder +
                             "\" is not one of python, node, static, command; fix builder in "
                             "slipway.toml or remove it to detect the kind of app");
    }
    plan.kind = service.builder;
    plan.detected_from = "slipway.toml";
  } else if (!service.static_directory.empty()) {
    plan.kind = "static";
    plan.detected_from = "slipway.toml";
  } else if (HasFile(app_dir, "requirements.txt")) {
    plan.kind = "python";
    plan.detected_from = "requirements.txt";
  } else if (HasFile(app_dir, "pyproject.toml")) {
    plan.kind = "python";
    plan.detected_from = "pyproject.toml";
  } else if (HasFile(app_dir, "package.json")) {
    plan.kind = "node";
    plan.detected_from = "package.json";
  } else if (!procfile_web.empty()) {
    plan.kind = "command";
    plan.detected_from = "Procfile";
  } else if (HasFile(app_dir, "index.html")) {
    plan.kind = "static";
    plan.detected_from = "index.html";
  } else if (!service.start_command.empty()) {
    plan.kind = "command";
    plan.detected_from = "slipway.toml";
  } else if (HasFile(app_dir, "Procfile")) {
    return InvalidArgument(app_dir + ": nothing to deploy: the Procfile has no web: line and " +
                           "found no requirements.txt, pyproject.toml, package.json or " +
                           "index.html; add a web: line to the Procfile");
  } else {
    return InvalidArgument(app_dir +
                           ": nothing to deploy: found no slipway.toml, Procfile, "
                           "requirements.txt, pyproject.toml, package.json or index.html");
  }

  const bool has_package_json = HasFile(app_dir, "package.json");
  json package;
  if (plan.kind == "python") {
    plan.steps.push_back(
        {"create venv", "/usr/bin/python3 -m venv --system-site-packages .venv", true});
    const std::string tools = ".venv/bin/python \"$SLIPWAY_BUILD_TOOLS/python_tools.py\"";
    if (HasFile(app_dir, "requirements.txt")) {
      plan.steps.push_back({"pip install -r requirements.txt",
                            tools + " install-requirements requirements.txt", true});
    } else if (HasFile(app_dir, "pyproject.toml")) {
      plan.steps.push_back({"pip install .", tools + " install-project", true});
    }
    plan.steps.push_back({"console scripts", tools + " console-scripts", true});
  } else if (plan.kind == "node" || (plan.kind == "static" && has_package_json)) {
    ASSIGN_OR_RETURN(plan.steps, NpmSteps(app_dir, service, &package));
  }
  std::string build_command = Trim(service.build_command);
  if (!build_command.empty()) plan.steps.push_back({build_command, build_command});

  if (plan.kind == "static") {
    if (!service.static_directory.empty()) {
      if (!IsSafeRelativePath(service.static_directory)) {
        return InvalidArgument("staticDirectory \"" + service.static_directory +
                               "\" must be a path inside the service's directory");
      }
      plan.static_root = service.static_directory;
    } else if (plan.steps.empty()) {
      plan.static_root = FindStaticRoot(app_dir, /*after_build=*/false);
      if (plan.static_root.empty()) {
        return InvalidArgument(app_dir +
                               ": static site has no index.html; add one or set "
                               "staticDirectory in slipway.toml to the directory to serve");
      }
    }
    // With build steps and no staticDirectory the root is found after the build.
    return plan;
  }

  if (!service.start_command.empty()) {
    plan.start_command = service.start_command;
  } else if (!procfile_web.empty()) {
    plan.start_command = procfile_web;
  } else if (plan.kind == "node") {
    if (!HasNpmScript(package, "start") && !HasFile(app_dir, "server.js")) {
      return InvalidArgument(app_dir +
                             ": package.json has no scripts.start (and there is no server.js) "
                             "for npm start; add a start script, " +
                             kStartCommandHint);
    }
    plan.start_command = "npm start";
  } else {
    return InvalidArgument(app_dir + ": " + (plan.kind == "python" ? "Python app" : "app") +
                           " has no start command; " + kStartCommandHint);
  }
  return plan;
}

std::string ReleaseManifest::ToJson() const {
  json doc = {{"kind", kind},
              {"app_dir", app_dir},
              {"start_command", start_command},
              {"static_root", static_root},
              {"runtime_env", runtime_env}};
  if (!deps_key.empty()) doc["deps_key"] = deps_key;
  return doc.dump(2) + "\n";
}

Result<ReleaseManifest> ReleaseManifest::FromJson(const std::string& text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return InvalidArgument("manifest.json: not a JSON object");
  }
  ReleaseManifest manifest;
  for (auto [key, field] :
       {std::pair{"kind", &manifest.kind}, std::pair{"app_dir", &manifest.app_dir},
        std::pair{"start_command", &manifest.start_command},
        std::pair{"static_root", &manifest.static_root},
        std::pair{"deps_key", &manifest.deps_key}}) {
    auto it = doc.find(key);
    if (it == doc.end()) continue;
    if (!it->is_string())
      return InvalidArgument(std::string("manifest.json: ") + key + " must be a string");
    *field = it->get<std::string>();
  }
  if (manifest.kind.empty() || manifest.app_dir.empty()) {
    return InvalidArgument("manifest.json: kind and app_dir are required");
  }
  if (auto env = doc.find("runtime_env"); env != doc.end()) {
    if (!env->is_object()) return InvalidArgument("manifest.json: runtime_env must be an object");
    for (auto& [k, v] : env->items()) {
      if (!v.is_string()) {
        return InvalidArgument("manifest.json: runtime_env." + k + " must be a string");
      }
      manifest.runtime_env[k] = v.get<std::string>();
    }
  }
  return manifest;
}

Result<ReleaseManifest> Build(const BuildRequest& request) {
  BuildLog log(request.log_path, request.mask_line);
  if (!log.status().ok()) return log.status();
  auto fail = [&](const Status& st) {
    log.Line("==> build failed: " + st.message());
    return st;
  };
  if (!IsDirectory(request.source_dir)) {
    return fail(NotFound("source directory " + request.source_dir + " does not exist"));
  }
  const std::string release_dir = AbsolutePath(request.release_dir);
  std::string parent = fs::path(release_dir).parent_path().string();
  if (Status st = MakeDirs(parent); !st.ok()) return fail(WithDiskContext(st, release_dir));
  if (mkdir(release_dir.c_str(), 0755) != 0) {
    if (errno == EEXIST) {
      return fail(AlreadyExists("release directory " + release_dir +
                                " already exists; releases are never rebuilt in place"));
    }
    return fail(WithDiskContext(ErrnoStatus(release_dir, errno), release_dir));
  }
  auto manifest = BuildRelease(request, release_dir, log);
  if (!manifest.ok()) {
    Status removed = RemoveTree(release_dir);
    Status st = manifest.status();
    if (!removed.ok()) st = Status(st.code(), st.message() + " (and " + removed.message() + ")");
    return fail(st);
  }
  log.Line("==> build succeeded");
  if (!log.status().ok()) {
    (void)RemoveTree(release_dir);
    return WithDiskContext(log.status(), release_dir);
  }
  return manifest;
}

}  // namespace slipway
