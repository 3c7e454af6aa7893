#include "deploy/engine.h"

#include <dirent.h>
#include <signal.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "build/builder.h"
#include "common/fs.h"
#include "common/names.h"
#include "config/config.h"
#include "deploy/cron_runner.h"
#include "deploy/static_routes.h"
#include "deploy/watch.h"

namespace slipway {

namespace {

constexpr int kLogTailLines = 15;
constexpr int kCronLogRuns = 50;  // runs whose logs `slipway logs` shows for a cron service

int64_t UnixMillisOf(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
constexpr const char* kBasePath = "/usr/local/bin:/usr/bin:/bin";
constexpr size_t kMaxVariableBytes = 64 * 1024;

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "\n" + l;
  return out;
}

// The last lines of a log, prefixed for display under an error line.
std::string LogTail(const std::string& path, const std::string& heading) {
  auto lines = TailLines(path, kLogTailLines);
  if (!lines.ok() || lines->empty()) return "";
  std::vector<std::string> shown;
  shown.push_back(heading);
  for (const auto& l : *lines) shown.push_back("  " + l);
  return JoinLines(shown);
}

// A per-upload directory, removed when the last deployment that reads it is done.
struct UploadDir {
  explicit UploadDir(std::string p) : path(std::move(p)) {}
  ~UploadDir() { (void)RemoveTree(path); }
  std::string path;
};

// Work for a service's worker, done in order, one at a time.
struct Job {
  enum class Kind { kDeploy, kScale };
  Kind kind = Kind::kDeploy;
  int64_t deployment_id = 0;  // kDeploy; a rollback's deployment has its release already
  std::shared_ptr<UploadDir> upload;
  std::string source_dir;    // the service's root inside the upload
  std::string watch_digest;  // of the service's watchPatterns files, kept in the release
  int replicas = 0;          // kScale
  std::shared_ptr<std::promise<Status>> done;  // kScale: its outcome
};

// Counters of a service's routes at one moment, for rates over a window.
struct TrafficSample {
  std::chrono::steady_clock::time_point at;
  uint64_t requests = 0;
  uint64_t errors = 0;                 // 5xx
  std::map<double, uint64_t> latency;  // bucket upper bound (ms) -> count
};

struct LiveReplica {
  int64_t record_id = 0;
  int index = 0;
  int port = 0;
  ReplicaHandle handle;
  ReplicaSpec spec;
  // "starting", "running", "restarting", "crashed" (gave up), "exited" (exit 0, not
  // restarted by the policy), "stopped"
  std::string state;
  int restarts = 0;
  std::chrono::steady_clock::time_point next_attempt{};
  int failed_probes = 0;  // consecutive, while the deployment is watched
};

// What the engine knows about a deployment whose replicas may be running.
struct LiveDeployment {
  int64_t id = 0;
  int64_t service_id = 0;
  std::string project;
  std::string environment;
  std::string service;
  std::string host;
  ServiceConfig config;
  ReleaseManifest manifest;
  // The user variables it runs with (the deployment's sealed snapshot); without a
  // snapshot (deployments of an older Slipway) the config's variables.
  ResolvedVariables env;
  bool has_env = false;
  std::vector<LiveReplica> replicas;
  bool crashed = false;
  // Automatic rollback: the deployment it replaced, and until when it is watched.
  int64_t previous_id = 0;
  std::chrono::steady_clock::time_point watch_until{};
  std::chrono::steady_clock::time_point next_probe{};
  std::deque<TrafficSample> samples;  // oldest first
  // Traffic counts only once the replaced deployment has no request left in flight:
  // its late answers (errors, slow ones) must not be blamed on this one.
  bool traffic_watched = false;
};

// Resident memory of every process in process group `pgid` (an app and its children).
uint64_t GroupResidentBytes(pid_t pgid) {
  if (pgid <= 0) return 0;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return 0;
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t total = 0;
  while (dirent* entry = readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    const std::string dir = std::string("/proc/") + entry->d_name;
    auto stat = ReadFile(dir + "/stat");
    if (!stat.ok()) continue;
    // pid (comm) state ppid pgrp ...: comm may hold spaces, so count from its ')'.
    auto close = stat->rfind(')');
    if (close == std::string::npos) continue;
    long ppid = 0, pgrp = 0;
    char state = 0;
    if (std::sscanf(stat->c_str() + close + 1, " %c %ld %ld", &state, &ppid, &pgrp) != 3) continue;
    if (pgrp != pgid || state == 'Z') continue;
    auto statm = ReadFile(dir + "/statm");
    unsigned long long size = 0, resident = 0;
    if (statm.ok() && std::sscanf(statm->c_str(), "%llu %llu", &size, &resident) == 2) {
      total += resident * page;
    }
  }
  closedir(proc);
  return total;
}

// Isolated apps run as uid and gid kAppIdBase + their service id: far above the ids
// distributions hand out (and above the usual subordinate-id ranges).
constexpr int64_t kAppIdBase = 3'000'000;

bool Terminal(const std::string& replica_state) {
  return replica_state == "crashed" || replica_state == "exited" || replica_state == "stopped";
}

}  // namespace

class DeployEngine::Impl {
 public:
  Impl(Store& store, Supervisor& supervisor, Clock& clock, RouteSink sink, EngineOptions options)
      : store_(store),
        supervisor_(supervisor),
        clock_(clock),
        sink_(std::move(sink)),
        options_(std::move(options)),
        box_(options_.secrets ? options_.secrets : SecretBox::Ephemeral()) {}

  ~Impl() { Shutdown(false); }

  Status Start() {
    for (const char* dir : {"releases", "logs/deployments", "run", "uploads", "cache/home"}) {
      RETURN_IF_ERROR(MakeDirs(options_.home + "/" + dir));
    }
    isolate_ = options_.isolate_apps && SandboxSupported();
    if (isolate_) {
      hide_dir_ = SandboxHideDir(AbsolutePath(options_.home));
      // Logs may hold what an app printed; only the platform reads them.
      (void)chmod((options_.home + "/logs").c_str(), 0700);
      spdlog::info("apps run isolated: a user id and a mount namespace each ({} hidden)",
                   hide_dir_);
    } else {
      spdlog::warn(
          "apps are not isolated from each other: {}",
          options_.isolate_apps ? "the server does not run as root" : "isolation is turned off");
    }
    cron_ = std::make_unique<CronRunner>(store_, supervisor_, clock_,
                                         [this](int64_t deployment_id, int64_t run_id) {
                                           return CronRunSpec(deployment_id, run_id);
                                         });
    monitor_ = std::thread([this] { MonitorLoop(); });
    watcher_ = std::thread([this] { WatchLoop(); });
    return Status::Ok();
  }

  // ---- naming ---------------------------------------------------------------

  std::string Host(const std::string& project, const std::string& environment,
                   const std::string& service) const {
    std::string p = environment == "production" ? project : project + "-" + environment;
    return service + "." + p + "." + options_.domain_suffix;
  }

  std::string Url(const std::string& project, const std::string& environment,
                  const std::string& service) const {
    std::string url = "http://" + Host(project, environment, service);
    if (options_.edge_port != 80) url += ":" + std::to_string(options_.edge_port);
    return url;
  }

  std::string DeploymentDir(int64_t id) const {
    return options_.home + "/logs/deployments/" + std::to_string(id);
  }
  std::string BuildLogPath(int64_t id) const { return DeploymentDir(id) + "/build.log"; }
  std::string ReplicaLogPath(int64_t id, int index) const {
    return DeploymentDir(id) + "/replica-" + std::to_string(index) + ".log";
  }

  std::vector<std::string> ReplicaLogPaths(int64_t id) {
    std::vector<std::string> out;
    auto replicas = store_.ListReplicas(id);
    if (replicas.ok()) {
      for (const auto& r : *replicas) {
        if (std::find(out.begin(), out.end(), r.log_path) == out.end()) out.push_back(r.log_path);
      }
    }
    // A cron deployment's output is its runs' logs, oldest first.
    if (auto dep = store_.GetDeployment(id); dep.ok()) {
      if (auto runs = store_.ListCronRuns(dep->service_id, kCronLogRuns); runs.ok()) {
        for (auto it = runs->rbegin(); it != runs->rend(); ++it) {
          if (it->deployment_id == id && !it->log_path.empty()) out.push_back(it->log_path);
        }
      }
    }
    return out;
  }

  struct Names {
    std::string project, environment, service;
  };

  Result<Names> NamesOf(const ServiceRecord& svc) {
    Names n;
    n.service = svc.name;
    ASSIGN_OR_RETURN(auto env, store_.GetEnvironmentById(svc.environment_id));
    n.environment = env.name;
    ASSIGN_OR_RETURN(ProjectRecord project, store_.GetProjectById(svc.project_id));
    n.project = project.name;
    return n;
  }

  // ---- accepting deploys ----------------------------------------------------

  Result<DeployAccepted> Deploy(const DeployRequest& request) {
    auto upload = std::make_shared<UploadDir>(request.source_dir);
    ASSIGN_OR_RETURN(ProjectConfig config, LoadProjectConfig(request.source_dir, request.project));
    RETURN_IF_ERROR(ValidateName(request.environment, "environment name"));

    std::vector<const ServiceConfig*> chosen;
    for (const auto& name : request.only_services) {
      auto it = std::find_if(config.services.begin(), config.services.end(),
                             [&](const ServiceConfig& s) { return s.name == name; });
      if (it == config.services.end()) {
        std::string names;
        for (const auto& s : config.services) names += (names.empty() ? "" : ", ") + s.name;
        return NotFound("no service named \"" + name + "\" in " + config.source +
                        " (services: " + names + ")");
      }
      chosen.push_back(&*it);
    }
    if (request.only_services.empty()) {
      for (const auto& s : config.services) chosen.push_back(&s);
    }

    // Monorepos: a service with watchPatterns whose watched files and config are what its
    // active deployment was made from is not redeployed, unless named with --service.
    std::vector<std::string> digests;
    for (const ServiceConfig* svc : chosen) {
      std::string digest;
      if (!svc->watch_patterns.empty()) {
        ASSIGN_OR_RETURN(digest, WatchDigest(request.source_dir, svc->watch_patterns,
                                             ServiceConfigToJson(*svc)));
      }
      digests.push_back(digest);
    }
    DeployAccepted accepted;
    if (request.only_services.empty() && config.services.size() > 1) {
      for (size_t i = 0; i < chosen.size();) {
        if (!digests[i].empty() &&
            ActiveWatchDigest(config.name, request.environment, chosen[i]->name) == digests[i]) {
          accepted.unchanged.push_back(chosen[i]->name);
          chosen.erase(chosen.begin() + static_cast<long>(i));
          digests.erase(digests.begin() + static_cast<long>(i));
        } else {
          ++i;
        }
      }
    }

    std::vector<std::string> source_dirs;
    for (const ServiceConfig* svc : chosen) {
      std::string dir = AbsolutePath(request.source_dir + "/" + svc->root_directory);
      if (!IsDirectory(dir)) {
        return InvalidArgument("service \"" + svc->name + "\": rootDirectory \"" +
                               svc->root_directory + "\" is not a directory of the project");
      }
      ASSIGN_OR_RETURN(BuildPlan plan, DetectBuildPlan(dir, *svc));
      (void)plan;
      source_dirs.push_back(dir);
    }

    // The add-ons the config declares exist (and run) before the variables that refer
    // to them are resolved; provisioning one takes a few seconds, once.
    std::vector<std::string> provisioned;
    RETURN_IF_ERROR(EnsureAddons(config, request.environment, provisioned));

    // Variables are resolved now, so a missing reference fails `slipway up` at once and
    // nothing deployed changes.
    std::vector<std::string> chosen_names;
    for (const ServiceConfig* svc : chosen) chosen_names.push_back(svc->name);
    ASSIGN_OR_RETURN(VariableScope scope, ScopeFor(config.name, request.environment, &config));
    ASSIGN_OR_RETURN(Resolution resolution, ResolveVariables(scope, chosen_names));
    WarnOfPublicSecrets(resolution, config.warnings);

    accepted.project = config.name;
    accepted.warnings = config.warnings;
    accepted.provisioned = std::move(provisioned);
    ASSIGN_OR_RETURN(ProjectRecord project, store_.EnsureProject(config.name));
    ASSIGN_OR_RETURN(EnvironmentRecord env,
                     store_.EnsureEnvironment(project.id, request.environment));
    RETURN_IF_ERROR(KeepGenerated(env.id, resolution));
    {
      std::vector<VariableRecord> shared;
      for (const auto& [name, value] : config.shared_variables) {
        VariableRecord v;
        v.name = name;
        v.sealed_value = box_->Seal(value);
        v.secret = false;
        shared.push_back(std::move(v));
      }
      RETURN_IF_ERROR(store_.ReplaceConfigVariables(env.id, "", shared));
    }
    for (size_t i = 0; i < chosen.size(); ++i) {
      ServiceConfig svc_config = *chosen[i];
      ASSIGN_OR_RETURN(ServiceRecord svc,
                       store_.EnsureService(project.id, env.id, svc_config.name));
      if (svc.scale > 0) svc_config.num_replicas = svc.scale;  // `slipway scale` wins
      // Secrets of the config file go to the variables table, sealed, not into the
      // stored config (which is kept in clear with every deployment).
      std::vector<VariableRecord> config_secrets;
      if (auto it = config.secret_variables.find(svc_config.name);
          it != config.secret_variables.end()) {
        for (const std::string& name : it->second) {
          auto value = svc_config.variables.find(name);
          if (value == svc_config.variables.end()) continue;
          VariableRecord v;
          v.environment_id = env.id;
          v.service = svc_config.name;
          v.name = name;
          v.sealed_value = box_->Seal(value->second);
          v.secret = true;
          v.source = "config";
          config_secrets.push_back(std::move(v));
          svc_config.variables.erase(value);
        }
      }
      RETURN_IF_ERROR(store_.ReplaceConfigVariables(env.id, svc_config.name, config_secrets));
      std::string config_json = ServiceConfigToJson(svc_config);
      RETURN_IF_ERROR(store_.SetServiceConfig(svc.id, config_json));
      ASSIGN_OR_RETURN(DeploymentRecord dep,
                       store_.CreateDeployment(svc.id, request.source_label, config_json));
      RETURN_IF_ERROR(
          store_.SetDeploymentEnv(dep.id, SealEnv(resolution.services[svc_config.name])));
      (void)store_.AddEvent(svc.id, dep.id, "deploy.queued",
                            "deployment " + std::to_string(dep.id) + " queued");
      accepted.deployments.push_back(dep);
      accepted.service_names.push_back(svc_config.name);
      Job job;
      job.deployment_id = dep.id;
      job.upload = upload;
      job.source_dir = source_dirs[i];
      job.watch_digest = digests[i];
      Enqueue(svc.id, std::move(job));
    }
    RefreshMasker();
    return accepted;
  }

  // Frontend build tools compile variables with these prefixes into the files they
  // output, which the edge serves to anyone: a secret there is no longer secret.
  static void WarnOfPublicSecrets(const Resolution& resolution,
                                  std::vector<std::string>& warnings) {
    static constexpr std::string_view kPublicPrefixes[] = {"VITE_",   "NEXT_PUBLIC_", "REACT_APP_",
                                                           "PUBLIC_", "NUXT_PUBLIC_", "GATSBY_"};
    for (const auto& [service, vars] : resolution.services) {
      for (const std::string& name : vars.secret) {
        for (std::string_view prefix : kPublicPrefixes) {
          if (name.rfind(prefix, 0) != 0) continue;
          warnings.push_back("service \"" + service + "\": " + name +
                             " is a secret, but frontend builds put " + std::string(prefix) +
                             "* variables into the files they serve to anyone; if it is meant "
                             "to be public, set it with `slipway variables set --plain`");
          break;
        }
      }
    }
  }

  // Provisions the add-ons the config declares (warnings go to `config`).
  Status EnsureAddons(ProjectConfig& config, const std::string& environment,
                      std::vector<std::string>& provisioned) {
    for (const AddonConfig& a : config.addons) {
      if (std::any_of(config.services.begin(), config.services.end(),
                      [&](const ServiceConfig& s) { return s.name == a.name; })) {
        return InvalidArgument(config.source + ": add-on \"" + a.name +
                               "\" has the name of a service; ${{ " + a.name +
                               ".KEY }} must name one of them: rename the add-on");
      }
      if (options_.addons == nullptr) {
        config.warnings.push_back("add-on \"" + a.name + "\" (" + a.kind +
                                  ") is not provisioned: this Slipway runs without add-ons");
        continue;
      }
      AddonRequest request;
      request.project = config.name;
      request.environment = environment;
      request.kind = a.kind;
      request.name = a.name;
      request.backup_schedule = a.backup_schedule;
      request.backup_retention = a.backup_retention;
      const bool existed = options_.addons->Variables(config.name, environment, a.name).has_value();
      auto ensured = options_.addons->Ensure(request);
      if (!ensured.ok()) {
        return ensured.status().WithContext("add-on \"" + a.name + "\" (" + a.kind + ") of " +
                                            config.source);
      }
      if (!existed) {
        provisioned.push_back("add-on " + a.name + ": " + ensured->version +
                              " on 127.0.0.1:" + std::to_string(ensured->port) + " (new)");
      }
    }
    return Status::Ok();
  }

  // The watch digest recorded with the release of the service's active deployment, ""
  // when there is none (never deployed, not serving, or deployed without patterns).
  std::string ActiveWatchDigest(const std::string& project, const std::string& environment,
                                const std::string& service) {
    auto svc = ResolveService(project, environment, service);
    if (!svc.ok() || svc->active_deployment_id == 0) return "";
    auto dep = store_.GetDeployment(svc->active_deployment_id);
    if (!dep.ok() || dep->status != kActive || dep->release_id == 0) return "";
    auto release = store_.GetRelease(dep->release_id);
    if (!release.ok()) return "";
    return RecordedWatchDigest(release->manifest_json).value_or("");
  }

  void Enqueue(int64_t service_id, Job job) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      if (job.done) job.done->set_value(Unavailable("Slipway is stopping"));
      return;
    }
    auto& queue = queues_[service_id];
    if (job.kind == Job::Kind::kDeploy) {
      // A newer deploy supersedes one still waiting: users want their latest code.
      std::erase_if(queue.jobs, [&](const Job& waiting) {
        if (waiting.kind != Job::Kind::kDeploy) return false;
        (void)store_.SetDeploymentStatus(
            waiting.deployment_id, kSkipped,
            "superseded by deployment " + std::to_string(job.deployment_id));
        return true;
      });
    }
    queue.jobs.push_back(std::move(job));
    if (!queue.worker_running) {
      queue.worker_running = true;
      workers_.emplace_back([this, service_id] { WorkerLoop(service_id); });
    }
  }

  void WorkerLoop(int64_t service_id) {
    while (true) {
      Job job;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto& queue = queues_[service_id];
        if (queue.jobs.empty() || stopping_) {
          queue.worker_running = false;
          return;
        }
        job = std::move(queue.jobs.front());
        queue.jobs.pop_front();
      }
      if (job.kind == Job::Kind::kScale) {
        job.done->set_value(RunScale(service_id, job.replicas));
      } else {
        RunDeployment(job);
      }
    }
  }

  // ---- one deployment -------------------------------------------------------

  void Fail(int64_t service_id, int64_t deployment_id, const char* status,
            const std::string& unmasked) {
    const std::string error = SecretMasker()->Mask(unmasked);
    spdlog::warn("deployment {} {}: {}", deployment_id, status, error.substr(0, error.find('\n')));
    (void)store_.SetDeploymentStatus(deployment_id, status, error);
    (void)store_.AddEvent(service_id, deployment_id, "deploy.failed",
                          error.substr(0, error.find('\n')));
  }

  // What a build and the pre-deploy command see: the user's variables and the platform's
  // names; PORT, SLIPWAY_REPLICA_INDEX and SLIPWAY_DEPLOYMENT_ID are the running app's only.
  EnvMap BuildEnv(const Names& names, const std::map<std::string, std::string>& variables) {
    EnvMap env;
    env["PATH"] = kBasePath;
    env["HOME"] = options_.home + "/cache/home";
    env["LANG"] = "C.UTF-8";
    env["npm_config_cache"] = options_.home + "/cache/npm";
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1";
    env["CI"] = "true";
    for (const auto& [k, v] : variables) env[k] = v;
    AddPlatformEnv(env, names);
    return env;
  }

  void AddPlatformEnv(EnvMap& env, const Names& names) {
    env["SLIPWAY_PROJECT"] = names.project;
    env["SLIPWAY_SERVICE"] = names.service;
    env["SLIPWAY_ENVIRONMENT"] = names.environment;
    for (const auto& [k, v] :
         ReferablePlatformEnv(names.project, names.environment, names.service)) {
      env[k] = v;
    }
  }

  // The five platform variables other services may reference too.
  std::map<std::string, std::string> ReferablePlatformEnv(const std::string& project,
                                                          const std::string& environment,
                                                          const std::string& service) const {
    std::string p = environment == "production" ? project : project + "-" + environment;
    const std::string private_domain = service + "." + p + ".localhost";
    return {{"SLIPWAY_PUBLIC_DOMAIN", Host(project, environment, service)},
            {"SLIPWAY_PUBLIC_URL", Url(project, environment, service)},
            {"SLIPWAY_PRIVATE_DOMAIN", private_domain},
            {"SLIPWAY_PRIVATE_PORT", std::to_string(options_.edge_port)},
            {"SLIPWAY_PRIVATE_URL",
             "http://" + private_domain + ":" + std::to_string(options_.edge_port)}};
  }

  static const std::map<std::string, std::string>& UserVariables(const LiveDeployment& ld) {
    return ld.has_env ? ld.env.values : ld.config.variables;
  }

  // ---- isolation -------------------------------------------------------------

  std::string AppDataDir(int64_t service_id) const {
    return AbsolutePath(options_.home) + "/appdata/" + std::to_string(service_id);
  }

  // The sandbox of the service's processes: its own uid/gid, the data dir hidden but for
  // its release (read-only) and its own writable data dir; /tmp private. Disabled when
  // the engine does not isolate.
  // `scratch`: where the process's writes to its release view go (thrown away).
  Result<SandboxSpec> SandboxFor(const LiveDeployment& ld, const std::string& scratch) {
    SandboxSpec spec;
    if (!isolate_) return spec;
    spec.uid = static_cast<uid_t>(kAppIdBase + ld.service_id);
    spec.gid = static_cast<gid_t>(kAppIdBase + ld.service_id);
    spec.hide = hide_dir_;
    const std::string data = AppDataDir(ld.service_id);
    for (const std::string& dir : {data, data + "/tmp"}) {
      RETURN_IF_ERROR(MakeDirs(dir));
      if (chown(dir.c_str(), spec.uid, spec.gid) != 0 || chmod(dir.c_str(), 0700) != 0) {
        return ErrnoStatus("cannot give " + dir + " to the app's user", errno);
      }
    }
    const std::string release = std::filesystem::path(ld.manifest.app_dir).parent_path().string();
    spec.binds.push_back({release, release, /*read_only=*/false, scratch});
    spec.binds.push_back({data, data, false, ""});
    // A private /tmp, unless the data dir itself lives under /tmp (tests): covering /tmp
    // would cover the release too. TMPDIR points at it either way.
    if (hide_dir_.rfind("/tmp/", 0) != 0) spec.binds.push_back({data + "/tmp", "/tmp", false, ""});
    return spec;
  }

  EnvMap AppEnv(const LiveDeployment& ld, int port, int index) {
    EnvMap env;
    env["PATH"] = kBasePath;
    // Isolated apps cannot write their release: their home is their data dir.
    env["HOME"] = isolate_ ? AppDataDir(ld.service_id) : ld.manifest.app_dir;
    if (isolate_) env["TMPDIR"] = AppDataDir(ld.service_id) + "/tmp";
    env["LANG"] = "C.UTF-8";
    for (const auto& [k, v] : ld.manifest.runtime_env) env[k] = v;
    for (const auto& [k, v] : UserVariables(ld)) env[k] = v;
    AddPlatformEnv(env, Names{ld.project, ld.environment, ld.service});
    env["SLIPWAY_DEPLOYMENT_ID"] = std::to_string(ld.id);
    if (port != 0) env["PORT"] = std::to_string(port);  // workers and cron runs have none
    env["SLIPWAY_REPLICA_INDEX"] = std::to_string(index);
    return env;
  }

  static bool IsWeb(const LiveDeployment& ld) { return ld.config.type == "web"; }

  // The process of a cron run: the deployment's start command in its release, with the
  // app's environment (no PORT), isolated like a replica; its log beside the deployment's.
  Result<ReplicaSpec> CronRunSpec(int64_t deployment_id, int64_t run_id) {
    std::optional<LiveDeployment> ld;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(deployment_id);
      if (it != live_.end()) ld = it->second;
    }
    if (!ld) {
      ASSIGN_OR_RETURN(DeploymentRecord dep, store_.GetDeployment(deployment_id));
      ld = Recorded(dep);
    }
    if (!ld || !IsDirectory(ld->manifest.app_dir)) {
      return FailedPrecondition("the release of deployment " + std::to_string(deployment_id) +
                                " is not on disk");
    }
    ReplicaSpec spec;
    spec.command = ld->manifest.start_command;
    spec.cwd = ld->manifest.app_dir;
    spec.env = AppEnv(*ld, 0, 0);
    spec.env.erase("SLIPWAY_REPLICA_INDEX");
    spec.env["SLIPWAY_CRON_RUN_ID"] = std::to_string(run_id);
    spec.mask_env.assign(ld->env.secret.begin(), ld->env.secret.end());
    spec.log_path = DeploymentDir(deployment_id) + "/cron-" + std::to_string(run_id) + ".log";
    spec.run_dir = options_.home + "/run/cron-" + std::to_string(run_id);
    RETURN_IF_ERROR(MakeDirs(DeploymentDir(deployment_id)));
    (void)RemoveTree(spec.run_dir);
    ASSIGN_OR_RETURN(spec.sandbox, SandboxFor(*ld, spec.run_dir + "/scratch"));
    return spec;
  }

  void RunDeployment(Job& job) {
    auto dep = store_.GetDeployment(job.deployment_id);
    if (!dep.ok() || dep->status != kQueued) return;
    auto svc = store_.GetService(dep->service_id);
    if (!svc.ok()) return Fail(dep->service_id, dep->id, kBuildFailed, svc.status().message());
    auto names = NamesOf(*svc);
    if (!names.ok()) return Fail(svc->id, dep->id, kBuildFailed, names.status().message());
    auto config = ServiceConfigFromJson(dep->config_json);
    if (!config.ok()) return Fail(svc->id, dep->id, kBuildFailed, config.status().message());
    auto env = LoadEnv(dep->id);
    if (!env.ok()) return Fail(svc->id, dep->id, kBuildFailed, env.status().message());
    if (Status st = MakeDirs(DeploymentDir(dep->id)); !st.ok()) {
      return Fail(svc->id, dep->id, kBuildFailed, st.message());
    }

    if (dep->release_id != 0) {
      // A rollback: the release exists; nothing is built.
      auto release = store_.GetRelease(dep->release_id);
      if (!release.ok()) return Fail(svc->id, dep->id, kDeployFailed, release.status().message());
      auto manifest = ReleaseManifest::FromJson(release->manifest_json);
      if (!manifest.ok() || !IsDirectory(release->path)) {
        return Fail(svc->id, dep->id, kDeployFailed,
                    "the release of deployment " + std::to_string(release->deployment_id) +
                        " is no longer kept (keepReleases); deploy the code again instead");
      }
      (void)AppendFile(BuildLogPath(dep->id), "==> reusing release " + std::to_string(release->id) +
                                                  " (built by deployment " +
                                                  std::to_string(release->deployment_id) +
                                                  "); nothing to build\n");
      return Activate(MakeLive(dep->id, svc->id, *names, *config, *manifest, *env),
                      /*pre_deploy=*/false);
    }

    (void)store_.SetDeploymentStatus(dep->id, kBuilding);
    (void)store_.AddEvent(svc->id, dep->id, "build.started", "build started");
    std::string log_path = BuildLogPath(dep->id);
    BuildRequest build;
    build.source_dir = job.source_dir;
    build.release_dir = options_.home + "/releases/" + std::to_string(dep->id);
    build.cache_dir = options_.home + "/cache/deps";
    build.log_path = log_path;
    build.service = *config;
    build.build_env = BuildEnv(*names, env->has_value() ? (*env)->values : config->variables);
    build.mask_line = LineMasker(*env);
    build.cancelled = [this] { return stopping_.load(); };
    int64_t dep_id = dep->id;
    build.on_step_started = [this, dep_id](pid_t pgid) {
      (void)store_.SetDeploymentBuildPgid(dep_id, pgid);
    };
    Result<ReleaseManifest> manifest = Build(build);
    (void)store_.SetDeploymentBuildPgid(dep->id, 0);
    job.upload.reset();
    if (!manifest.ok()) {
      return Fail(svc->id, dep->id, kBuildFailed,
                  manifest.status().message() + LogTail(log_path, "last lines of the build log:"));
    }
    std::string manifest_json = manifest->ToJson();
    if (!job.watch_digest.empty()) manifest_json = WithWatchDigest(manifest_json, job.watch_digest);
    auto release = store_.CreateRelease(svc->id, dep->id, build.release_dir, manifest_json);
    if (!release.ok()) return Fail(svc->id, dep->id, kBuildFailed, release.status().message());
    (void)store_.SetDeploymentRelease(dep->id, release->id);
    (void)store_.AddEvent(svc->id, dep->id, "build.succeeded",
                          "release " + std::to_string(release->id) + " built");

    Activate(MakeLive(dep->id, svc->id, *names, *config, *manifest, *env), /*pre_deploy=*/true);
  }

  // A deployment with its release, before any replica runs.
  LiveDeployment MakeLive(int64_t deployment_id, int64_t service_id, const Names& names,
                          const ServiceConfig& config, const ReleaseManifest& manifest,
                          const std::optional<ResolvedVariables>& env) const {
    LiveDeployment ld;
    ld.id = deployment_id;
    ld.service_id = service_id;
    ld.project = names.project;
    ld.environment = names.environment;
    ld.service = names.service;
    ld.host = Host(ld.project, ld.environment, ld.service);
    ld.config = config;
    ld.manifest = manifest;
    if (env) {
      ld.env = *env;
      ld.has_env = true;
    }
    return ld;
  }

  Result<LiveReplica> StartReplica(const LiveDeployment& ld, int index) {
    int port = 0;
    if (IsWeb(ld)) {
      ASSIGN_OR_RETURN(port, PickFreePort());
    }
    LiveReplica r;
    r.index = index;
    r.port = port;
    r.spec.command = ld.manifest.start_command;
    r.spec.cwd = ld.manifest.app_dir;
    r.spec.env = AppEnv(ld, port, index);
    r.spec.mask_env.assign(ld.env.secret.begin(), ld.env.secret.end());
    r.spec.log_path = ReplicaLogPath(ld.id, index);
    r.spec.run_dir =
        options_.home + "/run/d" + std::to_string(ld.id) + "-r" + std::to_string(index);
    (void)RemoveTree(r.spec.run_dir);  // files of an earlier attempt at this index
    ASSIGN_OR_RETURN(r.spec.sandbox, SandboxFor(ld, r.spec.run_dir + "/scratch"));
    ASSIGN_OR_RETURN(r.handle, supervisor_.Start(r.spec));
    r.state = "starting";
    ReplicaRecord rec;
    rec.deployment_id = ld.id;
    rec.index = index;
    rec.port = port;
    rec.shim_pid = r.handle.shim_pid;
    rec.shim_start_time = static_cast<int64_t>(r.handle.shim_start_time);
    rec.app_pid = r.handle.app_pid;
    rec.state = "starting";
    rec.run_dir = r.spec.run_dir;
    rec.log_path = r.spec.log_path;
    auto id = store_.UpsertReplica(rec);
    if (!id.ok()) {
      (void)supervisor_.Stop(r.handle, std::chrono::milliseconds(0));
      return id.status();
    }
    r.record_id = *id;
    return r;
  }

  void SaveReplicaState(const LiveDeployment& ld, const LiveReplica& r) {
    ReplicaRecord rec;
    rec.id = r.record_id;
    rec.deployment_id = ld.id;
    rec.index = r.index;
    rec.port = r.port;
    rec.shim_pid = r.handle.shim_pid;
    rec.shim_start_time = static_cast<int64_t>(r.handle.shim_start_time);
    rec.app_pid = r.handle.app_pid;
    rec.state = r.state == "restarting" ? "crashed" : r.state;
    rec.restarts = r.restarts;
    rec.run_dir = r.spec.run_dir;
    rec.log_path = r.spec.log_path;
    (void)store_.UpsertReplica(rec);
  }

  void StopReplica(const LiveDeployment& ld, LiveReplica& r, std::chrono::milliseconds grace) {
    if (r.handle.shim_pid != 0) (void)supervisor_.Stop(r.handle, grace);
    r.state = "stopped";
    SaveReplicaState(ld, r);
  }

  HealthCheckSpec HealthSpec(const LiveDeployment& ld, int port) const {
    HealthCheckSpec spec;
    spec.port = port;
    spec.path = ld.config.healthcheck_path;
    spec.host_header = ld.config.healthcheck_host.empty() ? ld.host : ld.config.healthcheck_host;
    spec.timeout = std::chrono::seconds(ld.config.healthcheck_timeout);
    return spec;
  }

  // Runs the release's pre-deploy command (preDeployCommand, else the Procfile's
  // release:) once, in the app directory with the app's variables; its output goes to
  // the build log, which `slipway up` shows.
  Status RunPreDeploy(const LiveDeployment& ld) {
    std::string command = ld.config.pre_deploy_command.empty() ? ld.config.procfile_release
                                                               : ld.config.pre_deploy_command;
    if (command.empty()) {
      // A slipway.toml beside a Procfile: the Procfile's release: still counts.
      if (auto text = ReadFile(ld.manifest.app_dir + "/Procfile"); text.ok()) {
        if (auto lines = ParseProcfile(*text); lines.ok()) {
          for (const auto& [type, line] : *lines) {
            if (type == "release") command = line;
          }
        }
      }
    }
    if (command.empty()) return Status::Ok();
    const std::string log_path = BuildLogPath(ld.id);
    (void)AppendFile(log_path, "==> pre-deploy command: " + command + "\n");
    (void)store_.AddEvent(ld.service_id, ld.id, "predeploy.started", command);
    SpawnOptions spawn;
    spawn.argv = {"/bin/sh", "-c", command};
    spawn.env = AppEnv(ld, 0, 0);
    spawn.env.erase("PORT");
    spawn.env.erase("SLIPWAY_REPLICA_INDEX");
    spawn.env.erase("SLIPWAY_DEPLOYMENT_ID");
    auto mask = LineMasker(ld.has_env ? std::optional<ResolvedVariables>(ld.env) : std::nullopt);
    spawn.cwd = ld.manifest.app_dir;
    const std::string scratch = options_.home + "/run/predeploy-" + std::to_string(ld.id);
    ASSIGN_OR_RETURN(spawn.sandbox, SandboxFor(ld, scratch));
    struct RemoveScratch {
      std::string dir;
      ~RemoveScratch() { (void)RemoveTree(dir); }
    } remove_scratch{scratch};
    RunOptions run;
    run.timeout = std::chrono::minutes(30);
    run.cancelled = [this] { return stopping_.load(); };
    run.on_line = [&](std::string_view line) { (void)AppendFile(log_path, mask(line) + "\n"); };
    ASSIGN_OR_RETURN(CommandOutcome outcome, RunCommand(spawn, run));
    const std::string what = "pre-deploy command `" + command + "`";
    if (outcome.cancelled) return Unavailable("interrupted: the daemon stopped during the " + what);
    if (outcome.timed_out) return DeadlineExceeded(what + " timed out after 30 minutes");
    if (outcome.exit_code != 0) {
      return FailedPrecondition(what + " failed with exit code " +
                                std::to_string(outcome.exit_code) +
                                "; the previous release keeps serving");
    }
    (void)AppendFile(log_path, "==> pre-deploy command succeeded\n");
    return Status::Ok();
  }

  // Starts replica `index` of `ld` and waits for its health check. On failure the
  // replica is stopped and the error says why, with the app's last log lines.
  Result<LiveReplica> StartHealthy(const LiveDeployment& ld, int index) {
    ASSIGN_OR_RETURN(LiveReplica r, StartReplica(ld, index));
    auto running = [&] { return supervisor_.Running(r.handle) && !stopping_.load(); };
    Status health = IsWeb(ld) ? WaitHealthy(HealthSpec(ld, r.port), clock_, running)
                              : WaitWorkerStarted(running);
    if (!health.ok()) {
      std::string reason = health.message();
      if (!supervisor_.Running(r.handle)) {
        // Give the shim a moment to record the exit code it saw.
        auto code = WaitForExitCode(r.handle);
        const std::string when =
            IsWeb(ld) ? " before its health check passed"
                      : " within its first " + std::to_string(kWorkerStartSeconds) + " seconds";
        reason =
            code ? "app exited with code " + std::to_string(*code) + when : "app exited" + when;
      }
      if (stopping_.load()) reason = "interrupted: the daemon stopped during this deploy";
      std::string tail = LogTail(r.spec.log_path, "last lines of the app's log:");
      StopReplica(ld, r, std::chrono::milliseconds(0));
      return Unavailable(reason + tail);
    }
    r.state = "running";
    SaveReplicaState(ld, r);
    return r;
  }

  // A worker has no health check: it counts as started once it kept running for
  // kWorkerStartSeconds, so a worker that fails at start fails its deploy.
  Status WaitWorkerStarted(const std::function<bool()>& running) {
    const auto until = clock_.Monotonic() + std::chrono::seconds(kWorkerStartSeconds);
    while (clock_.Monotonic() < until) {
      if (!running()) return Unavailable("app exited within its first seconds");
      clock_.SleepFor(std::chrono::milliseconds(50));
    }
    return running() ? Status::Ok() : Unavailable("app exited within its first seconds");
  }

  // Runs the pre-deploy command, starts the replicas, waits for their health, switches
  // traffic, then retires the deployment that served before. `pre_deploy` is false for a
  // rollback, which reuses a release that ran it already and is not watched afterwards.
  void Activate(LiveDeployment ld, bool pre_deploy) {
    (void)store_.SetDeploymentStatus(ld.id, kDeploying);
    if (pre_deploy) {
      if (Status st = RunPreDeploy(ld); !st.ok()) {
        return Fail(ld.service_id, ld.id, kDeployFailed,
                    st.message() + LogTail(BuildLogPath(ld.id), "last lines of its output:"));
      }
    }
    (void)store_.AddEvent(ld.service_id, ld.id, "deploy.started", "starting replicas");
    const bool cron = ld.config.type == "cron";
    if (cron) {
      if (Status st = CronSchedule::Parse(ld.config.cron_schedule).status(); !st.ok()) {
        return Fail(ld.service_id, ld.id, kDeployFailed, st.message());
      }
    } else if (ld.manifest.kind != "static") {
      for (int i = 0; i < std::max(1, ld.config.num_replicas); ++i) {
        auto r = StartHealthy(ld, i);
        if (!r.ok()) {
          StopAll(ld, std::chrono::milliseconds(0));
          return Fail(ld.service_id, ld.id, kDeployFailed,
                      (i > 0 ? "replica " + std::to_string(i) + ": " : "") + r.status().message());
        }
        ld.replicas.push_back(std::move(*r));
      }
      (void)store_.AddEvent(ld.service_id, ld.id, "health.passed",
                            std::to_string(ld.replicas.size()) +
                                (IsWeb(ld) ? " replica(s) healthy"
                                           : " replica(s) started (a worker: no health check)"));
    }

    int64_t previous = 0;
    const auto now = clock_.Monotonic();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = routed_.find(ld.service_id);
      if (it != routed_.end()) previous = it->second;
      routed_[ld.service_id] = ld.id;
      ld.previous_id = previous;
      const AutoRollbackConfig& ar = ld.config.auto_rollback;
      // A rollback is not watched: rolling it back would bring back what it replaced.
      // Workers and cron jobs take no traffic and have no health check to watch.
      if (pre_deploy && IsWeb(ld) && ar.enabled && ar.watch_seconds > 0 && previous != 0) {
        ld.watch_until = now + std::chrono::seconds(ar.watch_seconds);
        ld.next_probe = now + std::chrono::seconds(ld.config.healthcheck_interval);
      }
      live_[ld.id] = ld;
    }
    PublishRoutes();
    (void)store_.SetActiveDeployment(ld.service_id, ld.id);
    (void)store_.SetDeploymentStatus(ld.id, kActive);
    std::string live_message = "deployment " + std::to_string(ld.id);
    if (cron) {
      ScheduleCron(ld);
      live_message += " is scheduled (" + ld.config.cron_schedule + " UTC)";
    } else if (IsWeb(ld)) {
      live_message += " is live at " + Url(ld.project, ld.environment, ld.service);
    } else {
      live_message += " is running (a worker: no URL)";
    }
    (void)store_.AddEvent(ld.service_id, ld.id, "deploy.active", live_message);
    if (previous != 0 && previous != ld.id) RetireLater(previous, ld.config, ld.id);
    PruneReleases(ld.service_id, ld.config.keep_releases);
  }

  void ScheduleCron(const LiveDeployment& ld) {
    CronJob job;
    job.service_id = ld.service_id;
    job.deployment_id = ld.id;
    job.label = ld.project + "/" + ld.service;
    if (ld.environment != "production") job.label += " (" + ld.environment + ")";
    job.schedule = ld.config.cron_schedule;
    if (Status st = cron_->Schedule(job); !st.ok()) {
      spdlog::error("{}: {}", job.label, st.message());
    }
  }

  std::optional<int> WaitForExitCode(const ReplicaHandle& handle) {
    for (int i = 0; i < 40; ++i) {
      if (auto code = supervisor_.ExitCode(handle)) return code;
      if (!ProcessAlive(handle.shim_pid, handle.shim_start_time)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return supervisor_.ExitCode(handle);
  }

  void StopAll(LiveDeployment& ld, std::chrono::milliseconds grace) {
    for (auto& r : ld.replicas) StopReplica(ld, r, grace);
  }

  // Waits up to `d` unless the engine stops first; false when it stopped.
  bool SleepUnlessStopping(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(stop_mu_);
    return !stop_cv_.wait_for(lock, d, [this] { return stopping_.load(); });
  }

  // Requests the edge is still serving from these replicas.
  int InFlight(const std::vector<LiveReplica>& replicas) {
    if (!options_.edge_stats) return 0;
    auto stats = options_.edge_stats();
    if (!stats.ok()) return 0;
    int total = 0;
    for (const UpstreamLoad& load : stats->upstreams) {
      for (const auto& r : replicas) {
        if (load.port == r.port && load.address == "127.0.0.1") total += load.in_flight;
      }
    }
    return total;
  }

  // Lets the requests still in flight at these replicas finish (up to draining_seconds),
  // then stops them: SIGTERM, SIGKILL after the grace. Returns false when the engine
  // stopped meanwhile and the replicas were left to the next daemon.
  bool DrainAndStop(LiveDeployment& ld, const std::vector<size_t>& which, int overlap_seconds,
                    int draining_seconds, const std::function<void()>& drained = nullptr) {
    std::vector<LiveReplica> replicas;
    for (size_t i : which) replicas.push_back(ld.replicas[i]);
    if (overlap_seconds > 0 && !SleepUnlessStopping(std::chrono::seconds(overlap_seconds))) {
      if (!stop_apps_on_shutdown_.load()) return false;
    }
    const auto deadline = clock_.Monotonic() + std::chrono::seconds(draining_seconds);
    // A request routed just before the switch counts as in flight only once the edge has
    // picked its replica: give such stragglers a moment to show up first.
    if (draining_seconds > 0) SleepUnlessStopping(std::chrono::milliseconds(200));
    while (!stopping_.load() && clock_.Monotonic() < deadline && InFlight(replicas) > 0) {
      SleepUnlessStopping(std::chrono::milliseconds(100));
    }
    if (stopping_.load() && !stop_apps_on_shutdown_.load()) return false;
    if (drained) drained();
    for (size_t i : which) StopReplica(ld, ld.replicas[i], options_.stop_grace);
    return true;
  }

  // A deploy never stops a cron run: the deployment it runs in stays DRAINING until it
  // ends. False when the engine stopped first (the next daemon waits on).
  bool WaitForCronRuns(int64_t deployment_id) {
    while (cron_->Busy(deployment_id)) {
      if (!SleepUnlessStopping(std::chrono::milliseconds(250))) return false;
    }
    return true;
  }

  // Takes a deployment out of service on a thread of its own: DRAINING while its
  // replicas finish what they serve (overlapSeconds, then up to drainingSeconds of the
  // deployment that replaced it), then REMOVED. A ROLLED_BACK deployment keeps that status.
  void RetireLater(int64_t deployment_id, const ServiceConfig& successor,
                   int64_t successor_id = 0) {
    LiveDeployment old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(deployment_id);
      if (it != live_.end()) {
        old = std::move(it->second);
        live_.erase(it);
      }
    }
    auto dep = store_.GetDeployment(deployment_id);
    const bool was_serving =
        dep.ok() && (dep->status == kActive || dep->status == kCrashed || dep->status == kDraining);
    if (was_serving && dep->status != kDraining) {
      (void)store_.SetDeploymentStatus(deployment_id, kDraining);
    }
    const int overlap = successor.overlap_seconds;
    const int draining = successor.draining_seconds;
    const int keep = successor.keep_releases;
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard<std::mutex> lock(mu_);
    std::erase_if(retirers_, [](Retirer& r) {
      if (!r.done->load()) return false;
      r.thread.join();
      return true;
    });
    retirers_.push_back(
        Retirer{std::thread([this, old = std::move(old), deployment_id, successor_id, was_serving,
                             overlap, draining, keep, done]() mutable {
                  std::vector<size_t> all;
                  for (size_t i = 0; i < old.replicas.size(); ++i) all.push_back(i);
                  auto drained = [this, successor_id] { WatchTrafficOf(successor_id); };
                  if (DrainAndStop(old, all, overlap, draining, drained) &&
                      WaitForCronRuns(deployment_id) && was_serving) {
                    (void)store_.SetDeploymentStatus(deployment_id, kRemoved);
                    // Its release was spared while it drained; it may be one too many now.
                    if (old.service_id != 0) PruneReleases(old.service_id, keep);
                  }
                  done->store(true);
                }),
                done});
  }

  // Deletes the release directories of a service beyond the `keep` newest that went
  // live, sparing every release a deployment is using or about to use.
  void PruneReleases(int64_t service_id, int keep) {
    std::lock_guard<std::mutex> prune_lock(prune_mu_);  // deploys and retirements both prune
    auto releases = store_.ListReleases(service_id);    // newest first
    auto deployments = store_.ListDeployments(service_id, 100000);
    if (!releases.ok() || !deployments.ok()) return;
    std::set<int64_t> in_use;
    std::map<int64_t, std::string>
        built_status;  // release -> status of the deployment that built it
    for (const auto& d : *deployments) {
      if (d.release_id == 0) continue;
      if (d.status == kQueued || d.status == kBuilding || d.status == kDeploying ||
          d.status == kActive || d.status == kDraining || d.status == kCrashed) {
        in_use.insert(d.release_id);
      }
    }
    for (const auto& d : *deployments) built_status[d.id] = d.status;
    int kept = 0;
    for (const auto& rel : *releases) {
      if (!IsDirectory(rel.path)) continue;
      const std::string& status = built_status[rel.deployment_id];
      const bool went_live = status == kActive || status == kDraining || status == kRemoved ||
                             status == kCrashed || status == kRolledBack;
      // A release whose own deployment is still under way may not be recorded on that
      // deployment yet: spare it by who built it too.
      const bool being_deployed = status == kQueued || status == kBuilding || status == kDeploying;
      if (in_use.count(rel.id) || being_deployed) {
        if (went_live) kept++;
        continue;
      }
      if (went_live && kept < keep) {
        kept++;
        continue;
      }
      if (Status st = RemoveTree(rel.path); st.ok()) {
        (void)store_.AddEvent(service_id, rel.deployment_id, "release.deleted",
                              "release " + std::to_string(rel.id) +
                                  " deleted (keepReleases = " + std::to_string(keep) + ")");
      }
    }
    PruneCache();
  }

  // Removes cached dependency installs that no release on disk uses (of any service) and
  // no build used for a day, which also spares builds whose release is not written yet.
  void PruneCache() {
    std::set<std::string> in_use;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(options_.home + "/releases", ec)) {
      auto text = ReadFile(entry.path().string() + "/manifest.json");
      if (!text.ok()) continue;
      auto manifest = ReleaseManifest::FromJson(*text);
      if (manifest.ok() && !manifest->deps_key.empty()) in_use.insert(manifest->deps_key);
    }
    if (ec) return;  // unsure what is in use: keep everything
    if (Status st =
            PruneDependencyCache(options_.home + "/cache/deps", in_use, std::chrono::hours(24));
        !st.ok()) {
      spdlog::warn("pruning the dependency cache: {}", st.message());
    }
  }

  // ---- routes ---------------------------------------------------------------

  void PublishRoutes() {
    auto table = std::make_shared<RouteTable>();
    std::map<int64_t, std::vector<std::string>> domains;  // service id -> custom hosts
    if (auto listed = store_.ListDomains(0); listed.ok()) {
      for (const auto& d : *listed) domains[d.service_id].push_back(d.host);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [service_id, dep_id] : routed_) {
        auto it = live_.find(dep_id);
        if (it == live_.end()) continue;
        const LiveDeployment& ld = it->second;
        if (!IsWeb(ld)) continue;  // workers and cron jobs take no traffic
        Route route;
        route.host = ld.host;
        route.service_label = ld.project + "/" + ld.service;
        route.redirect_to_https = options_.redirect_to_https;
        const bool static_site = ld.manifest.kind == "static";
        if (static_site) route.static_root = ld.manifest.static_root;
        // The deployment's own config: a rollback brings its rules back with its files.
        ApplyServiceRouting(
            ld.config, static_site,
            [&](const std::string& service, const std::string& variable) {
              const auto env = ReferablePlatformEnv(ld.project, ld.environment, service);
              const auto found = env.find(variable);
              return found == env.end() ? std::string() : found->second;
            },
            route);
        for (const auto& r : ld.replicas) {
          if (r.state == "running") route.upstreams.push_back(Upstream{"127.0.0.1", r.port});
        }
        for (const auto& host : domains[service_id]) {
          Route custom = route;
          custom.host = host;
          table->routes.push_back(std::move(custom));
        }
        table->routes.push_back(std::move(route));
      }
    }
    if (!sink_) return;
    if (Status st = sink_(table); !st.ok()) {
      spdlog::error("the edge did not take the new routes: {}", st.message());
    }
  }

  // ---- supervision of running replicas --------------------------------------

  std::chrono::milliseconds Backoff(int restarts) const {
    long long ms = 500LL << std::min(restarts, 6);
    return std::chrono::milliseconds(std::min(ms, 30'000LL));
  }

  void MonitorLoop() {
    std::unique_lock<std::mutex> lock(monitor_mu_);
    while (!stopping_.load()) {
      monitor_cv_.wait_for(lock, std::chrono::milliseconds(250));
      if (stopping_.load()) break;
      lock.unlock();
      MonitorOnce();
      RemoveFinishedOneOffScratch();
      lock.lock();
    }
  }

  // The scratch layer of a `slipway run` goes once its command has exited.
  void RemoveFinishedOneOffScratch() {
    std::vector<std::string> done;
    {
      std::lock_guard<std::mutex> lock(oneoff_mu_);
      std::erase_if(oneoff_scratch_, [&](const auto& entry) {
        if (ProcessAlive(entry.first)) return false;
        done.push_back(entry.second);
        return true;
      });
    }
    for (const auto& dir : done) (void)RemoveTree(dir);
  }

  void MonitorOnce() {
    struct Action {
      int64_t deployment_id;
      int index;
      enum { kRestart, kProbe } what;
    };
    std::vector<Action> actions;
    bool changed = false;
    auto now = clock_.Monotonic();
    std::vector<std::pair<LiveDeployment*, LiveReplica*>> to_save;
    std::map<int64_t, std::string> last_exit;  // deployment -> its latest exit message
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [service_id, dep_id] : routed_) {
        auto it = live_.find(dep_id);
        if (it == live_.end()) continue;
        LiveDeployment& ld = it->second;
        for (auto& r : ld.replicas) {
          if ((r.state == "running" || r.state == "starting") && !supervisor_.Running(r.handle)) {
            auto code = WaitForExitCode(r.handle);
            const bool failed = !code || *code != 0;
            std::string msg = "replica " + std::to_string(r.index) + " exited" +
                              (code ? " with code " + std::to_string(*code) : "");
            changed = changed || r.state == "running";
            const std::string& policy = ld.config.restart_policy;
            if (policy == "NEVER" || (policy == "ON_FAILURE" && !failed)) {
              r.state = failed ? "crashed" : "exited";
              msg += "; not restarted (restartPolicyType " + policy + ")";
            } else if (policy != "ALWAYS" && r.restarts >= ld.config.restart_max_retries) {
              r.state = "crashed";
              msg += "; gave up after " + std::to_string(r.restarts) +
                     " restarts (restartPolicyMaxRetries)";
            } else {
              r.state = "restarting";
              r.next_attempt = now + Backoff(r.restarts);
              msg += "; restarting in " + std::to_string(Backoff(r.restarts).count()) + " ms";
            }
            spdlog::warn("{}/{}: {}", ld.project, ld.service, msg);
            (void)store_.AddEvent(ld.service_id, ld.id, "replica.exited", msg);
            last_exit[ld.id] = msg;
            to_save.emplace_back(&ld, &r);
          }
          if (r.state == "restarting" && now >= r.next_attempt) {
            actions.push_back({ld.id, r.index, Action::kRestart});
          } else if (r.state == "starting") {
            actions.push_back({ld.id, r.index, Action::kProbe});
          }
        }
        bool all_down = !ld.replicas.empty() &&
                        std::all_of(ld.replicas.begin(), ld.replicas.end(),
                                    [](const LiveReplica& r) { return Terminal(r.state); });
        if (all_down && !ld.crashed) {
          ld.crashed = true;
          std::string tail =
              LogTail(ld.replicas.front().spec.log_path, "last lines of the app's log:");
          std::string why = last_exit.count(ld.id) ? last_exit[ld.id] : "every replica exited";
          (void)store_.SetDeploymentStatus(ld.id, kCrashed, "no replica is running: " + why + tail);
          (void)store_.AddEvent(ld.service_id, ld.id, "deploy.crashed",
                                "no replica is running: " + why);
        }
      }
      for (auto& [ld, r] : to_save) SaveReplicaState(*ld, *r);
    }
    if (changed) PublishRoutes();

    for (const Action& a : actions) {
      if (stopping_.load()) return;
      LiveDeployment snapshot;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = live_.find(a.deployment_id);
        if (it == live_.end()) continue;
        snapshot = it->second;
      }
      LiveReplica& old = snapshot.replicas[static_cast<size_t>(a.index)];
      if (a.what == Action::kRestart) {
        auto fresh = StartReplica(snapshot, a.index);
        std::lock_guard<std::mutex> lock(mu_);
        auto it = live_.find(a.deployment_id);
        if (it == live_.end()) {
          if (fresh.ok()) (void)supervisor_.Stop(fresh->handle, std::chrono::milliseconds(0));
          continue;
        }
        LiveReplica& r = it->second.replicas[static_cast<size_t>(a.index)];
        if (!fresh.ok()) {
          r.restarts++;
          r.next_attempt = clock_.Monotonic() + Backoff(r.restarts);
          continue;
        }
        int restarts = r.restarts + 1;
        r = std::move(*fresh);
        r.restarts = restarts;
        r.state = "starting";
        SaveReplicaState(it->second, r);
      } else {
        if (IsWeb(snapshot)) {
          HealthCheckSpec spec = HealthSpec(snapshot, old.port);
          spec.timeout = std::chrono::seconds(1);
          Status health =
              WaitHealthy(spec, clock_, [&] { return supervisor_.Running(old.handle); });
          if (!health.ok()) continue;
        } else if (!supervisor_.Running(old.handle)) {
          continue;  // a worker that exited again: the next round restarts it
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          auto it = live_.find(a.deployment_id);
          if (it == live_.end()) continue;
          LiveReplica& r = it->second.replicas[static_cast<size_t>(a.index)];
          if (r.handle.shim_pid != old.handle.shim_pid || r.state != "starting") continue;
          r.state = "running";
          if (it->second.crashed) {
            it->second.crashed = false;
            (void)store_.SetDeploymentStatus(it->second.id, kActive);
          }
          SaveReplicaState(it->second, r);
        }
        PublishRoutes();
      }
    }
  }

  // ---- automatic rollback ---------------------------------------------------

  // The service's traffic counters now (all its routes: generated host and domains).
  // What the edge measures now; nullopt when there is no edge to ask or it did not answer.
  std::optional<EdgeStats> FetchEdgeStats() {
    if (!options_.edge_stats) return std::nullopt;
    auto stats = options_.edge_stats();
    if (!stats.ok()) return std::nullopt;
    return std::move(*stats);
  }

  TrafficSample SampleTraffic(const EdgeStats& stats, const std::string& service_label) {
    TrafficSample sample;
    sample.at = clock_.Monotonic();
    for (const RouteMetrics& m : stats.routes) {
      if (m.service_label != service_label) continue;
      sample.requests += m.requests;
      sample.errors += m.status_classes[4];
      for (const LatencyBucket& b : m.latency) sample.latency[b.upper_ms] += b.count;
    }
    return sample;
  }

  // The replaced deployment has nothing in flight any more: from now on the service's
  // traffic is this deployment's, and its error rate and latency are watched.
  void WatchTrafficOf(int64_t deployment_id) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(deployment_id);
      if (it == live_.end() || it->second.watch_until == std::chrono::steady_clock::time_point{}) {
        return;
      }
      it->second.samples.clear();
      it->second.traffic_watched = true;
    }
    if (auto stats = FetchEdgeStats()) TakeSample(deployment_id, *stats, /*evaluate=*/false);
  }

  // Records a traffic sample of a watched deployment; with `evaluate`, returns the
  // reason to roll back when the error rate or p95 latency over the window is too high.
  std::optional<std::string> TakeSample(int64_t deployment_id, const EdgeStats& stats,
                                        bool evaluate) {
    std::string label;
    AutoRollbackConfig ar;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(deployment_id);
      if (it == live_.end() || !it->second.traffic_watched) return std::nullopt;
      label = it->second.project + "/" + it->second.service;
      ar = it->second.config.auto_rollback;
    }
    const TrafficSample sample = SampleTraffic(stats, label);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(deployment_id);
    if (it == live_.end()) return std::nullopt;
    auto& samples = it->second.samples;
    if (!samples.empty() && sample.requests < samples.back().requests)
      samples.clear();  // edge restarted
    samples.push_back(sample);
    const auto window = std::chrono::seconds(ar.error_rate_window_seconds);
    while (samples.size() > 2 && samples[1].at <= sample.at - window) samples.pop_front();
    if (!evaluate || samples.size() < 2) return std::nullopt;
    const TrafficSample& base = samples.front();
    const uint64_t requests = sample.requests - base.requests;
    const uint64_t errors = sample.errors - base.errors;
    if (requests == 0 || requests < static_cast<uint64_t>(ar.error_rate_min_requests)) {
      return std::nullopt;
    }
    const long seconds = static_cast<long>(
        std::chrono::duration_cast<std::chrono::seconds>(sample.at - base.at).count());
    const double rate = 100.0 * static_cast<double>(errors) / static_cast<double>(requests);
    if (ar.error_rate_percent > 0 && rate > ar.error_rate_percent) {
      return fmt::format("5xx rate {:.0f}% ({} of {} requests in {}s) above {}%", rate, errors,
                         requests, std::max(1L, seconds), ar.error_rate_percent);
    }
    if (ar.p95_ms > 0) {
      uint64_t total = 0;
      std::map<double, uint64_t> delta;
      for (const auto& [upper, count] : sample.latency) {
        auto b = base.latency.find(upper);
        uint64_t d = count - (b == base.latency.end() ? 0 : std::min(count, b->second));
        if (d > 0) delta[upper] = d;
        total += d;
      }
      uint64_t seen = 0;
      for (const auto& [upper, count] : delta) {
        seen += count;
        if (static_cast<double>(seen) >= 0.95 * static_cast<double>(total)) {
          if (upper > ar.p95_ms) {
            return fmt::format("p95 latency {:.0f} ms over {} requests in {}s above {} ms", upper,
                               total, std::max(1L, seconds), ar.p95_ms);
          }
          break;
        }
      }
    }
    return std::nullopt;
  }

  // One round of checks of the deployments being watched after a deploy.
  void WatchOnce() {
    struct Probe {
      int64_t deployment_id;
      int index;
      HealthCheckSpec spec;
      pid_t app_pid;
      int memory_mb;
    };
    std::vector<Probe> probes;
    std::vector<int64_t> watched;
    std::vector<std::pair<int64_t, std::string>> verdicts;
    const auto now = clock_.Monotonic();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [service_id, dep_id] : routed_) {
        auto it = live_.find(dep_id);
        if (it == live_.end()) continue;
        LiveDeployment& ld = it->second;
        if (ld.watch_until <= now) continue;
        if (ld.crashed) {
          verdicts.emplace_back(ld.id, "no replica stays up (see `slipway logs`)");
          continue;
        }
        watched.push_back(ld.id);
        if (now < ld.next_probe) continue;
        ld.next_probe = now + std::chrono::seconds(ld.config.healthcheck_interval);
        for (const auto& r : ld.replicas) {
          if (r.state != "running") continue;
          HealthCheckSpec spec = HealthSpec(ld, r.port);
          // A probe passes within 2 s (a few quick attempts) or counts as failed.
          spec.timeout = std::chrono::seconds(std::min(ld.config.healthcheck_interval, 2));
          probes.push_back(Probe{ld.id, r.index, spec, static_cast<pid_t>(r.handle.app_pid),
                                 ld.config.auto_rollback.memory_mb});
        }
      }
    }
    for (const Probe& p : probes) {
      if (stopping_.load()) return;
      Status health = WaitHealthy(p.spec, clock_, [] { return true; });
      const uint64_t rss_mb = p.memory_mb > 0 ? GroupResidentBytes(p.app_pid) >> 20 : 0;
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(p.deployment_id);
      if (it == live_.end()) continue;
      LiveDeployment& ld = it->second;
      if (static_cast<size_t>(p.index) >= ld.replicas.size()) continue;
      LiveReplica& r = ld.replicas[static_cast<size_t>(p.index)];
      if (p.memory_mb > 0 && rss_mb > static_cast<uint64_t>(p.memory_mb)) {
        verdicts.emplace_back(ld.id, fmt::format("replica {} uses {} MiB of memory, above {} MiB",
                                                 p.index, rss_mb, p.memory_mb));
      }
      if (health.ok()) {
        r.failed_probes = 0;
        continue;
      }
      r.failed_probes++;
      const int limit = ld.config.auto_rollback.failed_health_checks;
      if (limit > 0 && r.failed_probes >= limit) {
        verdicts.emplace_back(ld.id, fmt::format("{} consecutive failed health checks on replica "
                                                 "{} (last: {})",
                                                 r.failed_probes, p.index, health.message()));
      }
    }
    // One answer from the edge serves every deployment watched this round.
    if (auto stats = watched.empty() ? std::nullopt : FetchEdgeStats()) {
      for (int64_t id : watched) {
        if (auto reason = TakeSample(id, *stats, /*evaluate=*/true)) {
          verdicts.emplace_back(id, *reason);
        }
      }
    }
    std::set<int64_t> done;
    for (const auto& [id, reason] : verdicts) {
      if (done.insert(id).second) RollBackAutomatically(id, reason);
    }
  }

  void WatchLoop() {
    while (SleepUnlessStopping(std::chrono::milliseconds(250))) WatchOnce();
  }

  // A watched deployment misbehaved: it is marked ROLLED_BACK with the reason and the
  // release it replaced is deployed again (it serves until that one is live).
  void RollBackAutomatically(int64_t deployment_id, const std::string& reason) {
    int64_t previous = 0, service_id = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(deployment_id);
      if (it == live_.end() || it->second.watch_until == std::chrono::steady_clock::time_point{}) {
        return;
      }
      it->second.watch_until = {};  // decided once
      previous = it->second.previous_id;
      service_id = it->second.service_id;
    }
    const std::string message = "automatic rollback: " + reason;
    auto prev = store_.GetDeployment(previous);
    auto release =
        prev.ok() ? store_.GetRelease(prev->release_id) : Result<ReleaseRecord>(prev.status());
    if (!release.ok() || !IsDirectory(release->path)) {
      (void)store_.AddEvent(service_id, deployment_id, "rollback.impossible",
                            message + "; but the release of deployment " +
                                std::to_string(previous) + " is no longer kept");
      return;
    }
    spdlog::warn("deployment {}: {}", deployment_id, message);
    (void)store_.SetDeploymentStatus(deployment_id, kRolledBack, message);
    (void)store_.AddEvent(service_id, deployment_id, "rollback.automatic", message);
    auto created = CreateRollback(service_id, *prev,
                                  "automatic rollback of #" + std::to_string(deployment_id) +
                                      " to #" + std::to_string(previous));
    if (!created.ok()) {
      (void)store_.AddEvent(service_id, deployment_id, "rollback.impossible",
                            created.status().message());
    }
  }

  // A deployment reusing `target`'s release, queued for the service's worker.
  Result<DeploymentRecord> CreateRollback(int64_t service_id, const DeploymentRecord& target,
                                          const std::string& source) {
    ASSIGN_OR_RETURN(ServiceRecord svc, store_.GetService(service_id));
    ASSIGN_OR_RETURN(ServiceConfig config, ServiceConfigFromJson(target.config_json));
    if (svc.scale > 0) config.num_replicas = svc.scale;
    const std::string config_json = ServiceConfigToJson(config);
    ASSIGN_OR_RETURN(DeploymentRecord dep,
                     store_.CreateDeployment(service_id, source, config_json));
    RETURN_IF_ERROR(store_.SetDeploymentRelease(dep.id, target.release_id));
    dep.release_id = target.release_id;
    // The variables it ran with come back with the code.
    ASSIGN_OR_RETURN(std::string sealed_env, store_.GetDeploymentEnv(target.id));
    RETURN_IF_ERROR(store_.SetDeploymentEnv(dep.id, sealed_env));
    (void)store_.AddEvent(service_id, dep.id, "deploy.queued", source);
    Job job;
    job.deployment_id = dep.id;
    Enqueue(service_id, std::move(job));
    return dep;
  }

  Result<ServiceRecord> ResolveService(const std::string& project, const std::string& environment,
                                       const std::string& service) {
    ASSIGN_OR_RETURN(ProjectRecord p, store_.GetProject(project));
    ASSIGN_OR_RETURN(EnvironmentRecord env, store_.GetEnvironment(p.id, environment));
    return store_.FindService(env.id, service);
  }

  Result<DeploymentRecord> Rollback(const std::string& project, const std::string& environment,
                                    const std::string& service, int64_t to) {
    ASSIGN_OR_RETURN(ServiceRecord svc, ResolveService(project, environment, service));
    int64_t current_release = 0;
    if (svc.active_deployment_id != 0) {
      auto active = store_.GetDeployment(svc.active_deployment_id);
      if (active.ok()) current_release = active->release_id;
    }
    DeploymentRecord target;
    if (to != 0) {
      ASSIGN_OR_RETURN(target, store_.GetDeployment(to));
      if (target.service_id != svc.id) {
        return NotFound("deployment " + std::to_string(to) + " is not a deployment of " + service +
                        "; `slipway deployments " + service + "` lists them");
      }
      if (target.release_id == 0) {
        return FailedPrecondition("deployment " + std::to_string(to) +
                                  " has no release to go back to (its build did not finish)");
      }
      // The same release with other variables (a `variables set --deploy` since) is a
      // rollback too: the variables come back with it.
      if (target.id == svc.active_deployment_id) {
        return FailedPrecondition("deployment " + std::to_string(to) + " is already live");
      }
    } else {
      ASSIGN_OR_RETURN(auto deployments, store_.ListDeployments(svc.id, 1000));
      bool found = false;
      for (const auto& d : deployments) {  // newest first
        if (d.release_id == 0 || d.release_id == current_release) continue;
        if (d.status != kRemoved && d.status != kDraining) continue;  // went live, then replaced
        auto release = store_.GetRelease(d.release_id);
        if (!release.ok() || !IsDirectory(release->path)) continue;
        target = d;
        found = true;
        break;
      }
      if (!found) {
        return FailedPrecondition("no earlier release of " + service +
                                  " to roll back to; `slipway deployments " + service +
                                  "` lists what was deployed");
      }
    }
    ASSIGN_OR_RETURN(ReleaseRecord release, store_.GetRelease(target.release_id));
    if (!IsDirectory(release.path)) {
      return FailedPrecondition("the release of deployment " + std::to_string(target.id) +
                                " is no longer kept (keepReleases); deploy that code again");
    }
    return CreateRollback(svc.id, target, "rollback to #" + std::to_string(target.id));
  }

  // ---- scaling --------------------------------------------------------------

  Status Scale(const std::string& project, const std::string& environment,
               const std::string& service, int replicas) {
    if (replicas < 1 || replicas > 32) {
      return InvalidArgument("replicas must be from 1 to 32 (got " + std::to_string(replicas) +
                             ")");
    }
    ASSIGN_OR_RETURN(ServiceRecord svc, ResolveService(project, environment, service));
    if (auto config = ServiceConfigFromJson(svc.config_json);
        config.ok() && config->type == "cron") {
      return FailedPrecondition(service +
                                " is a cron service: each scheduled run is one process, there "
                                "are no replicas to scale");
    }
    auto promise = std::make_shared<std::promise<Status>>();
    auto future = promise->get_future();
    Job job;
    job.kind = Job::Kind::kScale;
    job.replicas = replicas;
    job.done = promise;
    Enqueue(svc.id, std::move(job));
    if (future.wait_for(std::chrono::minutes(10)) != std::future_status::ready) {
      return DeadlineExceeded("scaling " + service + " is still in progress; see `slipway status`");
    }
    return future.get();
  }

  // On the service's worker: starts replicas up to `count` (each healthy before it is
  // routed) or takes the highest ones out of the routes, drains and stops them.
  Status RunScale(int64_t service_id, int count) {
    RETURN_IF_ERROR(store_.SetServiceScale(service_id, count));
    LiveDeployment snapshot;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto routed = routed_.find(service_id);
      if (routed == routed_.end() || !live_.count(routed->second)) return Status::Ok();
      snapshot = live_[routed->second];
    }
    if (snapshot.manifest.kind == "static") {
      return FailedPrecondition("a static site is served by the edge itself: it has no replicas");
    }
    const int current = static_cast<int>(snapshot.replicas.size());
    snapshot.config.num_replicas = count;
    (void)store_.SetDeploymentConfig(snapshot.id, ServiceConfigToJson(snapshot.config));
    if (count > current) {
      std::vector<LiveReplica> fresh;
      for (int i = current; i < count; ++i) {
        auto r = StartHealthy(snapshot, i);
        if (!r.ok()) {
          for (auto& f : fresh) StopReplica(snapshot, f, std::chrono::milliseconds(0));
          snapshot.config.num_replicas = current;
          (void)store_.SetDeploymentConfig(snapshot.id, ServiceConfigToJson(snapshot.config));
          (void)store_.SetServiceScale(service_id, current);
          return r.status().WithContext("replica " + std::to_string(i) + " did not start");
        }
        fresh.push_back(std::move(*r));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = live_.find(snapshot.id);
        if (it == live_.end())
          return FailedPrecondition("the deployment was replaced while scaling; scale again");
        for (auto& f : fresh) it->second.replicas.push_back(std::move(f));
        it->second.config.num_replicas = count;
      }
      PublishRoutes();
    } else if (count < current) {
      LiveDeployment leaving = snapshot;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = live_.find(snapshot.id);
        if (it == live_.end())
          return FailedPrecondition("the deployment was replaced while scaling; scale again");
        auto& replicas = it->second.replicas;
        leaving.replicas.assign(replicas.begin() + count, replicas.end());
        replicas.resize(static_cast<size_t>(count));
        it->second.config.num_replicas = count;
      }
      PublishRoutes();
      std::vector<size_t> all;
      for (size_t i = 0; i < leaving.replicas.size(); ++i) all.push_back(i);
      DrainAndStop(leaving, all, 0, snapshot.config.draining_seconds);
    }
    (void)store_.AddEvent(
        service_id, snapshot.id, "scale",
        "scaled from " + std::to_string(current) + " to " + std::to_string(count) + " replica(s)");
    return Status::Ok();
  }

  // ---- recovery after a restart of the daemon -------------------------------

  void KillLeftover(const ReplicaRecord& rec) {
    auto handle = supervisor_.Adopt(rec.run_dir);
    if (handle.ok()) {
      (void)supervisor_.Stop(*handle, options_.stop_grace);
    } else if (rec.app_pid > 0 && ProcessGroupAlive(static_cast<pid_t>(rec.app_pid))) {
      kill(-static_cast<pid_t>(rec.app_pid), SIGKILL);
    }
    ReplicaRecord stopped = rec;
    stopped.state = "stopped";
    (void)store_.UpsertReplica(stopped);
  }

  // Takes over the replicas of a deployment that a previous daemon left running (those
  // that died are cleaned up); returns the indexes adopted.
  std::set<int> AdoptReplicas(int64_t deployment_id, LiveDeployment& ld) {
    std::set<int> have;
    auto replicas = store_.ListReplicas(deployment_id);
    if (!replicas.ok()) return have;
    for (const auto& rec : *replicas) {
      if (rec.state == "stopped" || have.count(rec.index)) continue;
      auto handle = supervisor_.Adopt(rec.run_dir);
      if (!handle.ok() || !supervisor_.Running(*handle)) {
        KillLeftover(rec);
        continue;
      }
      LiveReplica r;
      r.record_id = rec.id;
      r.index = rec.index;
      r.port = rec.port;
      r.handle = *handle;
      r.spec.log_path = rec.log_path;
      r.spec.run_dir = rec.run_dir;
      r.spec.command = ld.manifest.start_command;
      r.spec.cwd = ld.manifest.app_dir;
      if (auto sandbox = SandboxFor(ld, rec.run_dir + "/scratch"); sandbox.ok()) {
        r.spec.sandbox = *sandbox;
      }
      r.restarts = rec.restarts;
      r.state = rec.state == "running" ? "running" : "starting";
      have.insert(rec.index);
      ld.replicas.push_back(std::move(r));
      spdlog::info("{}/{}: adopted replica {} (pid {})", ld.project, ld.service, rec.index,
                   rec.app_pid);
    }
    return have;
  }

  // The deployment with its release as recorded, without replicas.
  std::optional<LiveDeployment> Recorded(const DeploymentRecord& dep) {
    auto svc = store_.GetService(dep.service_id);
    if (!svc.ok()) return std::nullopt;
    auto names = NamesOf(*svc);
    auto config = ServiceConfigFromJson(dep.config_json);
    auto release = store_.GetRelease(dep.release_id);
    if (!names.ok() || !config.ok() || !release.ok()) return std::nullopt;
    auto manifest = ReleaseManifest::FromJson(release->manifest_json);
    if (!manifest.ok()) return std::nullopt;
    auto env = LoadEnv(dep.id);
    if (!env.ok()) {
      spdlog::error("deployment {}: {}", dep.id, env.status().message());
      return std::nullopt;
    }
    return MakeLive(dep.id, svc->id, *names, *config, *manifest, *env);
  }

  Status Recover() {
    // Cron runs a previous daemon left going are adopted (or recorded as ended).
    cron_->Recover();
    // Deploys the previous daemon left half done cannot be resumed safely from the
    // middle of a build: they are failed with the reason, and their leftovers go.
    ASSIGN_OR_RETURN(auto unfinished,
                     store_.ListDeploymentsByStatus({kQueued, kBuilding, kDeploying, kDraining}));
    std::vector<int64_t> draining, rollbacks;
    for (const auto& dep : unfinished) {
      if (dep.build_pgid > 0 && ProcessGroupAlive(static_cast<pid_t>(dep.build_pgid))) {
        kill(-static_cast<pid_t>(dep.build_pgid), SIGKILL);
      }
      if (dep.status == kDraining) {
        // Its replicas may still be finishing requests: drain them as before.
        if (auto ld = Recorded(dep)) {
          AdoptReplicas(dep.id, *ld);
          std::lock_guard<std::mutex> lock(mu_);
          live_[dep.id] = std::move(*ld);
          draining.push_back(dep.id);
          continue;
        }
      }
      if (dep.status == kQueued && dep.release_id != 0) {
        rollbacks.push_back(dep.id);  // a rollback not started: nothing lost, run it
        continue;
      }
      auto replicas = store_.ListReplicas(dep.id);
      if (replicas.ok()) {
        for (const auto& r : *replicas) {
          if (r.state != "stopped") KillLeftover(r);
        }
      }
      if (dep.status == kDraining) {
        (void)store_.SetDeploymentStatus(dep.id, kRemoved);
        continue;
      }
      if (dep.release_id == 0) {
        (void)RemoveTree(options_.home + "/releases/" + std::to_string(dep.id));
      }
      const char* status = dep.status == kDeploying ? kDeployFailed : kBuildFailed;
      Fail(dep.service_id, dep.id, status,
           "interrupted: the daemon stopped during this deploy; run `slipway up` again");
    }

    // A ROLLED_BACK deployment still serves until its rollback is live.
    ASSIGN_OR_RETURN(auto active, store_.ListDeploymentsByStatus({kActive, kCrashed, kRolledBack}));
    for (const auto& dep : active) {
      auto svc = store_.GetService(dep.service_id);
      if (!svc.ok()) continue;
      if (svc->active_deployment_id != dep.id) continue;  // left over from an old switch
      auto recorded = Recorded(dep);
      if (!recorded) continue;
      LiveDeployment ld = std::move(*recorded);
      const ReleaseManifest* manifest = &ld.manifest;
      std::set<int> have = AdoptReplicas(dep.id, ld);
      if (ld.config.type == "cron") {
        ScheduleCron(ld);
      } else if (manifest->kind != "static") {
        for (int i = 0; i < std::max(1, ld.config.num_replicas); ++i) {
          if (have.count(i)) continue;
          // Started by the monitor, which routes it once healthy.
          LiveReplica r;
          r.index = i;
          r.state = "restarting";
          r.next_attempt = clock_.Monotonic();
          ld.replicas.push_back(std::move(r));
        }
        std::sort(ld.replicas.begin(), ld.replicas.end(),
                  [](const LiveReplica& a, const LiveReplica& b) { return a.index < b.index; });
      }
      if (dep.status == kCrashed) (void)store_.SetDeploymentStatus(dep.id, kActive);
      std::lock_guard<std::mutex> lock(mu_);
      routed_[ld.service_id] = ld.id;
      live_[ld.id] = std::move(ld);
    }

    // Anything else still running belongs to no active deployment: stop it.
    ASSIGN_OR_RETURN(auto live_records, store_.ListLiveReplicas());
    for (const auto& rec : live_records) {
      bool owned = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = live_.find(rec.deployment_id);
        if (it != live_.end()) {
          for (const auto& r : it->second.replicas) {
            if (r.record_id == rec.id) owned = true;
          }
        }
      }
      if (!owned) KillLeftover(rec);
    }
    PublishRoutes();
    for (int64_t id : draining) {
      auto dep = store_.GetDeployment(id);
      if (!dep.ok()) continue;
      auto config = ServiceConfigFromJson(dep->config_json);
      RetireLater(id, config.ok() ? *config : ServiceConfig{});
    }
    for (int64_t id : rollbacks) {
      auto dep = store_.GetDeployment(id);
      if (!dep.ok()) continue;
      Job job;
      job.deployment_id = id;
      Enqueue(dep->service_id, std::move(job));
    }
    RefreshMasker();
    return Status::Ok();
  }

  // ---- environments ---------------------------------------------------------

  Result<EnvironmentRecord> CreateEnvironment(const std::string& project_name,
                                              const std::string& name, const std::string& from) {
    RETURN_IF_ERROR(ValidateName(name, "environment name"));
    ASSIGN_OR_RETURN(ProjectRecord project, store_.EnsureProject(project_name));
    if (store_.GetEnvironment(project.id, name).ok()) {
      return AlreadyExists("project \"" + project_name + "\" already has an environment \"" + name +
                           "\"");
    }
    std::vector<ServiceRecord> copied;
    EnvironmentRecord source;
    if (!from.empty()) {
      auto found = store_.GetEnvironment(project.id, from);
      if (!found.ok()) {
        return NotFound("project \"" + project_name + "\" has no environment \"" + from +
                        "\" to copy (see `slipway env list`)");
      }
      source = *found;
      ASSIGN_OR_RETURN(copied, store_.ListServices(source.id));
    }
    ASSIGN_OR_RETURN(EnvironmentRecord env, store_.EnsureEnvironment(project.id, name));
    for (const ServiceRecord& svc : copied) {
      ASSIGN_OR_RETURN(ServiceRecord fresh, store_.EnsureService(project.id, env.id, svc.name));
      RETURN_IF_ERROR(store_.SetServiceConfig(fresh.id, svc.config_json));
    }
    if (!from.empty()) RETURN_IF_ERROR(CopyEnvironmentVariables(source, env));
    return env;
  }

  // Copies the variables of `from` (shared and per service, still sealed) into the new
  // environment `to`, except generated ones: `to` generates its own secrets.
  Status CopyEnvironmentVariables(const EnvironmentRecord& from, const EnvironmentRecord& to) {
    ASSIGN_OR_RETURN(auto rows, store_.ListVariables(from.id));
    std::vector<VariableRecord> user;
    std::map<std::string, std::vector<VariableRecord>> config_rows;  // by service
    for (VariableRecord& v : rows) {
      v.id = 0;
      v.environment_id = to.id;
      if (v.source == "cli") user.push_back(v);
      if (v.source == "config") config_rows[v.service].push_back(v);
    }
    for (const auto& [service, same] : config_rows) {
      RETURN_IF_ERROR(store_.ReplaceConfigVariables(to.id, service, same));
    }
    if (!user.empty()) RETURN_IF_ERROR(store_.SetVariables(user));
    return Status::Ok();
  }

  Status DeleteEnvironment(const std::string& project_name, const std::string& environment) {
    if (environment == "production") {
      return FailedPrecondition(
          "the production environment cannot be deleted; delete other environments only");
    }
    auto project = store_.GetProject(project_name);
    if (!project.ok()) return NotFound("no project \"" + project_name + "\"");
    auto env = store_.GetEnvironment(project->id, environment);
    if (!env.ok()) {
      return NotFound("project \"" + project_name + "\" has no environment \"" + environment +
                      "\" (see `slipway env list`)");
    }
    ASSIGN_OR_RETURN(auto services, store_.ListServices(env->id));
    std::set<int64_t> service_ids;
    std::vector<DeploymentRecord> deployments;
    for (const auto& svc : services) {
      service_ids.insert(svc.id);
      ASSIGN_OR_RETURN(auto listed, store_.ListDeployments(svc.id, 0));
      for (const auto& d : listed) {
        if (d.status == kQueued || d.status == kBuilding || d.status == kDeploying) {
          return FailedPrecondition("deployment " + std::to_string(d.id) + " of " + svc.name +
                                    " is " + d.status + "; wait for it to finish, then delete " +
                                    environment + " again");
        }
        deployments.push_back(d);
      }
    }
    // Out of the routes first, so nothing new reaches the replicas, then drained.
    std::vector<LiveDeployment> leaving;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int64_t id : service_ids) {
        auto queue = queues_.find(id);
        if (queue != queues_.end() &&
            (queue->second.worker_running || !queue->second.jobs.empty())) {
          return FailedPrecondition("a deploy or scale of " + environment +
                                    " is in progress; wait for it, then delete again");
        }
        routed_.erase(id);
      }
      for (auto it = live_.begin(); it != live_.end();) {
        if (service_ids.count(it->second.service_id)) {
          leaving.push_back(std::move(it->second));
          it = live_.erase(it);
        } else {
          ++it;
        }
      }
    }
    PublishRoutes();
    for (LiveDeployment& ld : leaving) {
      std::vector<size_t> all;
      for (size_t i = 0; i < ld.replicas.size(); ++i) all.push_back(i);
      DrainAndStop(ld, all, 0, ld.config.draining_seconds);
    }
    for (int64_t id : service_ids) {
      cron_->Unschedule(id);
      cron_->StopRuns(id, options_.stop_grace, "stopped: its environment was deleted");
    }
    // Add-ons go last, once no app uses them; a postgres add-on leaves a final backup.
    if (options_.addons != nullptr) {
      if (auto addons = options_.addons->List(project_name, environment); addons.ok()) {
        for (const AddonInfo& a : *addons) {
          auto kept = options_.addons->Remove(project_name, environment, a.name, true);
          if (!kept.ok()) {
            return kept.status().WithContext("deleting add-on \"" + a.name + "\" of " +
                                             environment);
          }
          if (!kept->empty()) {
            spdlog::info("{}: add-on {} of {} removed; its last backup is kept at {}", project_name,
                         a.name, environment, *kept);
          }
        }
      }
    }
    // Replicas of deployments still draining on a retirer thread, or left by a crash.
    for (const auto& d : deployments) {
      auto replicas = store_.ListReplicas(d.id);
      if (!replicas.ok()) continue;
      for (const auto& r : *replicas) {
        if (r.state != "stopped") KillLeftover(r);
        if (!r.run_dir.empty()) (void)RemoveTree(r.run_dir);
      }
    }
    for (const auto& svc : services) {
      if (auto releases = store_.ListReleases(svc.id); releases.ok()) {
        for (const auto& rel : *releases) (void)RemoveTree(rel.path);
      }
    }
    for (const auto& d : deployments) {
      (void)RemoveTree(DeploymentDir(d.id));
      (void)RemoveTree(options_.home + "/releases/" + std::to_string(d.id));
    }
    RETURN_IF_ERROR(store_.DeleteEnvironment(env->id));
    for (int64_t id : service_ids) (void)RemoveTree(AppDataDir(id));  // the apps' $HOME
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int64_t id : service_ids) queues_.erase(id);
    }
    spdlog::info("{}: environment {} deleted ({} service(s))", project_name, environment,
                 services.size());
    return Status::Ok();
  }

  // ---- one-off commands -----------------------------------------------------

  Result<std::unique_ptr<Process>> StartRun(const RunRequest& request) {
    if (request.argv.empty()) return InvalidArgument("no command to run");
    auto svc = ResolveService(request.project, request.environment, request.service);
    if (!svc.ok()) {
      return NotFound("no service \"" + request.service + "\" in " + request.project + " (" +
                      request.environment + ")");
    }
    const std::string where = request.service + " (" + request.environment + ")";
    if (svc->active_deployment_id == 0) {
      return FailedPrecondition(where +
                                " has no active deployment to run in; deploy it with `slipway up`");
    }
    std::optional<LiveDeployment> ld;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(svc->active_deployment_id);
      if (it != live_.end()) ld = it->second;
    }
    if (!ld) {
      ASSIGN_OR_RETURN(DeploymentRecord dep, store_.GetDeployment(svc->active_deployment_id));
      ld = Recorded(dep);
    }
    if (!ld || !IsDirectory(ld->manifest.app_dir)) {
      return FailedPrecondition("the release of " + where + "'s active deployment is not on disk");
    }
    SpawnOptions spawn;
    spawn.argv = request.argv;
    spawn.env = AppEnv(*ld, 0, 0);
    spawn.env.erase("PORT");
    spawn.env.erase("SLIPWAY_REPLICA_INDEX");
    spawn.cwd = ld->manifest.app_dir;
    const std::string scratch = options_.home + "/run/oneoff-" + std::to_string(ld->id) + "-" +
                                std::to_string(++oneoff_counter_);
    ASSIGN_OR_RETURN(spawn.sandbox, SandboxFor(*ld, scratch));
    auto process = Process::Spawn(spawn);
    if (process.ok() && spawn.sandbox.enabled()) {
      std::lock_guard<std::mutex> lock(oneoff_mu_);
      oneoff_scratch_.emplace_back((*process)->pid(), scratch);
    } else {
      (void)RemoveTree(scratch);
    }
    if (!process.ok() && process.status().code() == StatusCode::kNotFound) {
      return NotFound("command \"" + request.argv[0] + "\" not found in " + where +
                      "'s release (PATH " + spawn.env["PATH"] + ")");
    }
    if (process.ok()) {
      (void)store_.AddEvent(
          svc->id, svc->active_deployment_id, "run.started",
          "slipway run " + request.argv[0] + " (pid " + std::to_string((*process)->pid()) + ")");
    }
    return process;
  }

  // ---- cron services --------------------------------------------------------

  Result<ServiceRecord> CronService(const std::string& project, const std::string& environment,
                                    const std::string& service) {
    auto svc = ResolveService(project, environment, service);
    if (!svc.ok()) {
      return NotFound("no service \"" + service + "\" in " + project + " (" + environment + ")");
    }
    auto config = ServiceConfigFromJson(svc->config_json);
    if (!config.ok() || config->type != "cron") {
      return FailedPrecondition(service + " is not a cron service (its type is \"" +
                                (config.ok() ? config->type : std::string("web")) +
                                "\"); `slipway run " + service +
                                " -- CMD` runs a one-off command in any service");
    }
    return svc;
  }

  Result<CronRunRecord> RunCron(const std::string& project, const std::string& environment,
                                const std::string& service) {
    ASSIGN_OR_RETURN(ServiceRecord svc, CronService(project, environment, service));
    if (svc.active_deployment_id == 0) {
      return FailedPrecondition(service + " (" + environment +
                                ") has no active deployment to run; deploy it with `slipway up`");
    }
    ASSIGN_OR_RETURN(CronRunRecord run, cron_->RunNow(svc.id));
    (void)store_.AddEvent(svc.id, run.deployment_id, "cron.run",
                          "run " + std::to_string(run.id) + " started by `slipway cron run`");
    return run;
  }

  Result<std::vector<CronRunRecord>> CronRuns(const std::string& project,
                                              const std::string& environment,
                                              const std::string& service, int limit) {
    ASSIGN_OR_RETURN(ServiceRecord svc, CronService(project, environment, service));
    return store_.ListCronRuns(svc.id, limit);
  }

  // ---- status ---------------------------------------------------------------

  Result<std::vector<ServiceStatus>> ProjectStatus(const std::string& project_name,
                                                   const std::string& environment) {
    ASSIGN_OR_RETURN(ProjectRecord project, store_.GetProject(project_name));
    ASSIGN_OR_RETURN(EnvironmentRecord env, store_.GetEnvironment(project.id, environment));
    ASSIGN_OR_RETURN(auto services, store_.ListServices(env.id));
    std::vector<ServiceStatus> out;
    for (const auto& svc : services) {
      ServiceStatus s;
      s.project = project.name;
      s.environment = env.name;
      s.name = svc.name;
      s.type = "web";
      if (auto config = ServiceConfigFromJson(svc.config_json); config.ok()) {
        s.type = config->type;
        if (s.type == "cron") s.schedule = config->cron_schedule;
      }
      if (s.type == "web") s.url = Url(project.name, env.name, svc.name);
      s.active_deployment_id = svc.active_deployment_id;
      if (s.type == "cron") {
        if (auto next = cron_->NextRun(svc.id)) s.next_run = UnixMillisOf(*next);
        if (auto runs = store_.ListCronRuns(svc.id, 1); runs.ok() && !runs->empty()) {
          s.last_run = runs->front();
        }
      }
      auto latest = store_.ListDeployments(svc.id, 1);
      if (latest.ok() && !latest->empty()) {
        s.latest_deployment_id = latest->front().id;
        s.latest_status = latest->front().status;
      }
      if (svc.active_deployment_id != 0) {
        auto active = store_.GetDeployment(svc.active_deployment_id);
        if (active.ok()) s.active_status = active->status;
        // "automatic rollback of #12 to #9": say why #12 was rolled back.
        constexpr std::string_view kAuto = "automatic rollback of #";
        if (active.ok() && active->source.rfind(kAuto, 0) == 0) {
          auto bad = store_.GetDeployment(std::atoll(active->source.c_str() + kAuto.size()));
          if (bad.ok()) {
            s.notice = "deployment " + std::to_string(bad->id) +
                       " was rolled back: " + bad->error.substr(0, bad->error.find('\n'));
          }
        }
      }
      s.health = "none";
      std::lock_guard<std::mutex> lock(mu_);
      auto routed = routed_.find(svc.id);
      if (routed != routed_.end()) {
        auto it = live_.find(routed->second);
        if (it != live_.end()) {
          const LiveDeployment& ld = it->second;
          s.kind = ld.manifest.kind;
          if (s.kind == "static") {
            s.health = "static";
          } else if (s.type == "cron") {
            s.health = "scheduled";
          } else {
            int running = 0;
            for (const auto& r : ld.replicas) {
              s.replicas.push_back(
                  ReplicaStatus{r.index, r.port, r.state, r.restarts, r.handle.app_pid});
              if (r.state == "running") running++;
            }
            s.health = running == static_cast<int>(ld.replicas.size()) && running > 0 ? "healthy"
                                                                                      : "unhealthy";
          }
        }
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  // ---- variables ------------------------------------------------------------

  // What resolving the variables of `project`/`environment` needs: the stored variables
  // (opened), and the services' config variables — from `config` (an upload) for the
  // services it declares, else from the latest deploy of each stored service.
  Result<VariableScope> ScopeFor(const std::string& project_name, const std::string& environment,
                                 const ProjectConfig* config) {
    VariableScope scope;
    scope.project = project_name;
    scope.environment = environment;
    if (options_.addons != nullptr) {
      scope.addon = [addons = options_.addons, project_name,
                     environment](const std::string& name) -> std::optional<AddonVariables> {
        auto listed = addons->List(project_name, environment);
        if (!listed.ok()) return std::nullopt;
        for (const AddonInfo& a : *listed) {
          if (a.name != name) continue;
          return AddonVariables{a.variables,
                                {a.secret_variables.begin(), a.secret_variables.end()}};
        }
        return std::nullopt;
      };
    }
    std::vector<VariableRecord> rows;
    std::vector<ServiceRecord> stored;
    auto project = store_.GetProject(project_name);
    if (!project.ok() && project.status().code() != StatusCode::kNotFound) return project.status();
    if (project.ok()) {
      auto env = store_.GetEnvironment(project->id, environment);
      if (!env.ok() && env.status().code() != StatusCode::kNotFound) return env.status();
      if (env.ok()) {
        ASSIGN_OR_RETURN(rows, store_.ListVariables(env->id));
        ASSIGN_OR_RETURN(stored, store_.ListServices(env->id));
      }
    }
    std::map<std::string, ServiceVariables> services;
    auto add = [&](const ServiceConfig& c) {
      ServiceVariables& sv = services[c.name];
      sv.name = c.name;
      sv.config = c.variables;
      sv.required = c.required_variables;
      if (config != nullptr) {
        auto secrets = config->secret_variables.find(c.name);
        if (secrets != config->secret_variables.end()) sv.config_secret = secrets->second;
      }
      sv.platform = ReferablePlatformEnv(project_name, environment, c.name);
    };
    if (config != nullptr) {
      for (const auto& c : config->services) add(c);
      scope.shared_config = config->shared_variables;
    }
    for (const auto& svc : stored) {
      if (services.count(svc.name) || svc.config_json.empty()) continue;
      if (auto c = ServiceConfigFromJson(svc.config_json); c.ok()) add(*c);
    }
    for (const auto& row : rows) {
      auto value = box_->Open(row.sealed_value);
      if (!value.ok()) {
        return value.status().WithContext(
            "variable " + row.name +
            (row.service.empty() ? " (shared)" : " of service \"" + row.service + "\""));
      }
      if (row.source == "config") {
        if (config != nullptr) continue;  // the uploaded config says what holds now
        if (row.service.empty()) {
          scope.shared_config[row.name] = *value;
        } else if (auto it = services.find(row.service); it != services.end()) {
          // A secret of the config file, kept out of the stored config (.env values).
          it->second.config[row.name] = *value;
          if (row.secret) it->second.config_secret.insert(row.name);
        }
        continue;
      }
      if (row.service.empty()) {
        if (row.source == "generated") {
          scope.shared_generated[row.name] = *value;
        } else {
          scope.shared_user[row.name] = *value;
          if (row.secret) scope.shared_user_secret.insert(row.name);
        }
        continue;
      }
      auto it = services.find(row.service);
      if (it == services.end()) continue;  // set ahead of the service's first deploy
      if (row.source == "generated") {
        it->second.generated[row.name] = *value;
      } else {
        it->second.user[row.name] = *value;
        if (row.secret) it->second.user_secret.insert(row.name);
      }
    }
    for (auto& [name, sv] : services) scope.services.push_back(std::move(sv));
    AddAddonDefaults(project_name, environment, scope.shared_config);
    return scope;
  }

  // The first postgres and the first redis add-on give every service their variables
  // (DATABASE_URL, PG*; REDIS_URL, REDIS*) as references in the lowest layer, so any
  // variable of the same name set anywhere wins.
  void AddAddonDefaults(const std::string& project, const std::string& environment,
                        std::map<std::string, std::string>& shared) {
    if (options_.addons == nullptr) return;
    auto addons = options_.addons->List(project, environment);
    if (!addons.ok()) return;
    std::set<std::string> kinds;
    for (const AddonInfo& a : *addons) {
      if (!kinds.insert(a.kind).second) continue;
      for (const auto& [key, value] : a.variables) {
        shared.emplace(key, "${{ " + a.name + "." + key + " }}");
      }
    }
  }

  // Stores the values a resolution generated, so later deploys reuse them.
  Status KeepGenerated(int64_t environment_id, const Resolution& resolution) {
    std::vector<VariableRecord> rows;
    for (const auto& [service, values] : resolution.generated) {
      for (const auto& [name, value] : values) {
        VariableRecord v;
        v.environment_id = environment_id;
        v.service = service;
        v.name = name;
        v.sealed_value = box_->Seal(value);
        v.secret = true;
        v.source = "generated";
        rows.push_back(std::move(v));
      }
    }
    if (rows.empty()) return Status::Ok();
    return store_.SetVariables(rows);
  }

  std::string SealEnv(const ResolvedVariables& env) const {
    nlohmann::json j;
    j["values"] = env.values;
    j["secret"] = env.secret;
    return box_->Seal(j.dump());
  }

  // The deployment's sealed environment; nullopt for a deployment without one.
  Result<std::optional<ResolvedVariables>> LoadEnv(int64_t deployment_id) {
    ASSIGN_OR_RETURN(std::string sealed, store_.GetDeploymentEnv(deployment_id));
    if (sealed.empty()) return std::optional<ResolvedVariables>();
    auto text = box_->Open(sealed);
    if (!text.ok()) {
      return text.status().WithContext("the variables of deployment " +
                                       std::to_string(deployment_id));
    }
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return Internal("the variables of deployment " + std::to_string(deployment_id) +
                      " are unreadable");
    }
    ResolvedVariables env;
    env.values = j.value("values", std::map<std::string, std::string>{});
    env.secret = j.value("secret", std::set<std::string>{});
    return std::optional<ResolvedVariables>(std::move(env));
  }

  static std::vector<std::string> SecretValues(const ResolvedVariables& env) {
    std::vector<std::string> out;
    for (const auto& name : env.secret) {
      if (auto it = env.values.find(name); it != env.values.end()) out.push_back(it->second);
    }
    return out;
  }

  // Masks a deployment's secrets in the lines its build and pre-deploy command write.
  std::function<std::string(std::string_view)> LineMasker(
      const std::optional<ResolvedVariables>& env) const {
    auto masker =
        std::make_shared<const Masker>(env ? SecretValues(*env) : std::vector<std::string>{});
    return [masker](std::string_view line) { return masker->Mask(line); };
  }

  void RefreshMasker() {
    std::vector<std::string> values;
    if (auto rows = store_.ListVariables(0); rows.ok()) {
      for (const auto& row : *rows) {
        if (!row.secret) continue;
        if (auto value = box_->Open(row.sealed_value); value.ok()) values.push_back(*value);
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [id, ld] : live_) {
        for (auto& v : SecretValues(ld.env)) values.push_back(std::move(v));
      }
    }
    auto masker = std::make_shared<const Masker>(std::move(values));
    std::lock_guard<std::mutex> lock(mask_mu_);
    masker_ = std::move(masker);
  }

  std::shared_ptr<const Masker> SecretMasker() {
    std::lock_guard<std::mutex> lock(mask_mu_);
    return masker_;
  }

  struct EnvRef {
    ProjectRecord project;
    EnvironmentRecord env;
  };

  Result<EnvRef> FindEnv(const std::string& project_name, const std::string& environment) {
    auto project = store_.GetProject(project_name);
    if (!project.ok()) {
      if (project.status().code() != StatusCode::kNotFound) return project.status();
      return NotFound("project \"" + project_name +
                      "\" has no variables yet; `slipway variables set` or `slipway up` creates "
                      "it");
    }
    auto env = store_.GetEnvironment(project->id, environment);
    if (!env.ok()) {
      if (env.status().code() != StatusCode::kNotFound) return env.status();
      return NotFound("project \"" + project_name + "\" has no environment \"" + environment +
                      "\"");
    }
    return EnvRef{*project, *env};
  }

  Result<std::vector<VariableEntry>> ListVariables(const std::string& project,
                                                   const std::string& environment,
                                                   const std::string& service, bool reveal) {
    ASSIGN_OR_RETURN(EnvRef ref, FindEnv(project, environment));
    ASSIGN_OR_RETURN(auto rows, store_.ListVariables(ref.env.id));
    std::vector<VariableEntry> out;
    for (const auto& row : rows) {
      if (!row.service.empty() && row.service != service) continue;
      if (!row.service.empty() && row.source == "config") continue;  // shown from the config
      VariableEntry e;
      e.service = row.service;
      e.name = row.name;
      e.secret = row.secret;
      e.source = row.source == "config" ? "config file" : row.source;
      if (!row.secret || reveal) {
        ASSIGN_OR_RETURN(e.value, box_->Open(row.sealed_value));
      } else {
        e.value = "***";
      }
      out.push_back(std::move(e));
    }
    if (!service.empty()) {
      auto svc = store_.FindService(ref.env.id, service);
      if (svc.ok() && !svc->config_json.empty()) {
        if (auto config = ServiceConfigFromJson(svc->config_json); config.ok()) {
          for (const auto& [name, value] : config->variables) {
            out.push_back(VariableEntry{service, name, value, false, "config file"});
          }
        }
      }
    }
    std::stable_sort(out.begin(), out.end(), [](const VariableEntry& a, const VariableEntry& b) {
      return std::tie(a.service, a.name) < std::tie(b.service, b.name);
    });
    return out;
  }

  Status SetVariables(const std::string& project_name, const std::string& environment,
                      const std::string& service,
                      const std::vector<std::pair<std::string, std::string>>& values, bool secret) {
    if (values.empty()) return InvalidArgument("nothing to set: give KEY=VALUE pairs");
    for (const auto& [name, value] : values) {
      RETURN_IF_ERROR(CheckSettableVariableName(name));
      if (value.size() > kMaxVariableBytes) {
        return InvalidArgument("the value of " + name + " is " + std::to_string(value.size()) +
                               " bytes; a variable holds at most 64 KiB");
      }
    }
    RETURN_IF_ERROR(ValidateName(project_name, "project name"));
    RETURN_IF_ERROR(ValidateName(environment, "environment name"));
    ASSIGN_OR_RETURN(ProjectRecord project, store_.EnsureProject(project_name));
    ASSIGN_OR_RETURN(EnvironmentRecord env, store_.EnsureEnvironment(project.id, environment));
    std::vector<VariableRecord> rows;
    for (const auto& [name, value] : values) {
      VariableRecord v;
      v.environment_id = env.id;
      v.service = service;
      v.name = name;
      v.sealed_value = box_->Seal(value);
      v.secret = secret;
      v.source = "cli";
      rows.push_back(std::move(v));
    }
    RETURN_IF_ERROR(store_.SetVariables(rows));
    RefreshMasker();
    return Status::Ok();
  }

  Status UnsetVariables(const std::string& project, const std::string& environment,
                        const std::string& service, const std::vector<std::string>& names) {
    if (names.empty()) return InvalidArgument("nothing to unset: name the variables");
    ASSIGN_OR_RETURN(EnvRef ref, FindEnv(project, environment));
    RETURN_IF_ERROR(store_.DeleteVariables(ref.env.id, service, names));
    RefreshMasker();
    return Status::Ok();
  }

  Result<std::vector<DeploymentRecord>> ApplyVariables(const std::string& project,
                                                       const std::string& environment,
                                                       const std::string& service) {
    ASSIGN_OR_RETURN(EnvRef ref, FindEnv(project, environment));
    ASSIGN_OR_RETURN(auto services, store_.ListServices(ref.env.id));
    std::vector<ServiceRecord> targets;
    for (const auto& svc : services) {
      if (!service.empty() && svc.name != service) continue;
      if (svc.active_deployment_id == 0) {
        if (!service.empty()) {
          return FailedPrecondition("service \"" + service +
                                    "\" has no running deployment to apply variables to; "
                                    "`slipway up` deploys it with them");
        }
        continue;
      }
      targets.push_back(svc);
    }
    if (targets.empty()) {
      if (!service.empty()) {
        return NotFound("project \"" + project + "\" has no service \"" + service + "\" in " +
                        environment + "; the variables apply at its first deploy");
      }
      return std::vector<DeploymentRecord>{};
    }
    ASSIGN_OR_RETURN(VariableScope scope, ScopeFor(project, environment, nullptr));
    std::vector<std::string> names;
    for (const auto& t : targets) names.push_back(t.name);
    ASSIGN_OR_RETURN(Resolution resolution, ResolveVariables(scope, names));
    std::vector<std::pair<ServiceRecord, DeploymentRecord>> active;
    for (const auto& t : targets) {
      ASSIGN_OR_RETURN(DeploymentRecord dep, store_.GetDeployment(t.active_deployment_id));
      if (dep.release_id == 0) {
        return FailedPrecondition("service \"" + t.name + "\" has no release to run again");
      }
      active.emplace_back(t, dep);
    }
    RETURN_IF_ERROR(KeepGenerated(ref.env.id, resolution));
    std::vector<DeploymentRecord> out;
    for (const auto& [svc, current] : active) {
      ASSIGN_OR_RETURN(ServiceConfig config, ServiceConfigFromJson(current.config_json));
      if (svc.scale > 0) config.num_replicas = svc.scale;
      ASSIGN_OR_RETURN(DeploymentRecord dep, store_.CreateDeployment(svc.id, "variables changed",
                                                                     ServiceConfigToJson(config)));
      RETURN_IF_ERROR(store_.SetDeploymentRelease(dep.id, current.release_id));
      dep.release_id = current.release_id;
      RETURN_IF_ERROR(store_.SetDeploymentEnv(dep.id, SealEnv(resolution.services[svc.name])));
      (void)store_.AddEvent(svc.id, dep.id, "deploy.queued",
                            "variables changed: deployment " + std::to_string(dep.id) +
                                " reuses release " + std::to_string(current.release_id));
      Job job;
      job.deployment_id = dep.id;
      Enqueue(svc.id, std::move(job));
      out.push_back(dep);
    }
    RefreshMasker();
    return out;
  }

  // ---- shutdown -------------------------------------------------------------

  void Shutdown(bool stop_apps) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shut_down_) return;
      shut_down_ = true;
      stop_apps_on_shutdown_ = stop_apps;
    }
    {
      std::lock_guard<std::mutex> lock(stop_mu_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    monitor_cv_.notify_all();
    if (monitor_.joinable()) monitor_.join();
    if (watcher_.joinable()) watcher_.join();
    if (cron_) cron_->Shutdown(stop_apps, options_.stop_grace);
    std::vector<std::thread> workers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      workers.swap(workers_);
      for (auto& [id, queue] : queues_) {
        for (const Job& waiting : queue.jobs) {
          if (waiting.kind == Job::Kind::kScale) {
            waiting.done->set_value(Unavailable("Slipway stopped before scaling; scale again"));
          } else {
            (void)store_.SetDeploymentStatus(waiting.deployment_id, kSkipped,
                                             "the daemon stopped before it started");
          }
        }
        queue.jobs.clear();
      }
    }
    for (auto& t : workers) {
      if (t.joinable()) t.join();
    }
    std::vector<Retirer> retirers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      retirers.swap(retirers_);
    }
    for (auto& r : retirers) r.thread.join();
    if (stop_apps) {
      std::map<int64_t, LiveDeployment> live;
      {
        std::lock_guard<std::mutex> lock(mu_);
        live.swap(live_);
      }
      for (auto& [id, ld] : live) StopAll(ld, options_.stop_grace);
    }
  }

 private:
  struct Queue {
    std::deque<Job> jobs;
    bool worker_running = false;
  };

  Store& store_;
  Supervisor& supervisor_;
  Clock& clock_;
  bool isolate_ = false;  // set in Start()
  std::string hide_dir_;  // covered in every app's mount namespace
  std::mutex oneoff_mu_;
  std::vector<std::pair<pid_t, std::string>> oneoff_scratch_;  // `slipway run`: pid, scratch
  std::atomic<int64_t> oneoff_counter_{0};
  RouteSink sink_;
  EngineOptions options_;

  std::mutex mu_;  // guards everything below except the atomics and monitor fields
  std::map<int64_t, Queue> queues_;
  std::vector<std::thread> workers_;
  std::map<int64_t, LiveDeployment> live_;  // deployment id -> running state
  std::map<int64_t, int64_t> routed_;       // service id -> deployment serving it
  bool shut_down_ = false;
  std::atomic<bool> stopping_{false};

  struct Retirer {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Retirer> retirers_;  // guarded by mu_
  std::atomic<bool> stop_apps_on_shutdown_{false};

  const std::shared_ptr<const SecretBox> box_;
  std::mutex mask_mu_;
  std::shared_ptr<const Masker> masker_ = std::make_shared<const Masker>();  // guarded by mask_mu_

  std::unique_ptr<CronRunner> cron_;  // made in Start()
  std::mutex prune_mu_;

  std::mutex monitor_mu_;
  std::condition_variable monitor_cv_;
  std::thread monitor_;
  std::thread watcher_;
  // stopping_ is set under stop_mu_, so waits on stop_cv_ cannot miss it.
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
};

Result<std::unique_ptr<DeployEngine>> DeployEngine::Create(Store& store, Supervisor& supervisor,
                                                           Clock& clock, RouteSink sink,
                                                           EngineOptions options) {
  auto impl = std::make_unique<Impl>(store, supervisor, clock, std::move(sink), std::move(options));
  RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<DeployEngine>(new DeployEngine(std::move(impl)));
}

DeployEngine::DeployEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeployEngine::~DeployEngine() = default;

Status DeployEngine::Recover() { return impl_->Recover(); }
Result<DeployAccepted> DeployEngine::Deploy(const DeployRequest& request) {
  return impl_->Deploy(request);
}
Result<std::vector<ServiceStatus>> DeployEngine::ProjectStatus(const std::string& project,
                                                               const std::string& environment) {
  return impl_->ProjectStatus(project, environment);
}
std::string DeployEngine::ServiceUrl(const std::string& project, const std::string& environment,
                                     const std::string& service) const {
  return impl_->Url(project, environment, service);
}
std::string DeployEngine::BuildLogPath(int64_t deployment_id) const {
  return impl_->BuildLogPath(deployment_id);
}
std::vector<std::string> DeployEngine::ReplicaLogPaths(int64_t deployment_id) {
  return impl_->ReplicaLogPaths(deployment_id);
}
void DeployEngine::Shutdown(bool stop_apps) { impl_->Shutdown(stop_apps); }
Result<DeploymentRecord> DeployEngine::Rollback(const std::string& project,
                                                const std::string& environment,
                                                const std::string& service, int64_t to) {
  return impl_->Rollback(project, environment, service, to);
}
Status DeployEngine::Scale(const std::string& project, const std::string& environment,
                           const std::string& service, int replicas) {
  return impl_->Scale(project, environment, service, replicas);
}
void DeployEngine::RefreshRoutes() { impl_->PublishRoutes(); }
Result<std::vector<VariableEntry>> DeployEngine::ListVariables(const std::string& project,
                                                               const std::string& environment,
                                                               const std::string& service,
                                                               bool reveal) {
  return impl_->ListVariables(project, environment, service, reveal);
}
Status DeployEngine::SetVariables(const std::string& project, const std::string& environment,
                                  const std::string& service,
                                  const std::vector<std::pair<std::string, std::string>>& values,
                                  bool secret) {
  return impl_->SetVariables(project, environment, service, values, secret);
}
Status DeployEngine::UnsetVariables(const std::string& project, const std::string& environment,
                                    const std::string& service,
                                    const std::vector<std::string>& names) {
  return impl_->UnsetVariables(project, environment, service, names);
}
Result<std::vector<DeploymentRecord>> DeployEngine::ApplyVariables(const std::string& project,
                                                                   const std::string& environment,
                                                                   const std::string& service) {
  return impl_->ApplyVariables(project, environment, service);
}
std::shared_ptr<const Masker> DeployEngine::SecretMasker() { return impl_->SecretMasker(); }
Result<EnvironmentRecord> DeployEngine::CreateEnvironment(const std::string& project,
                                                          const std::string& name,
                                                          const std::string& from) {
  return impl_->CreateEnvironment(project, name, from);
}
Status DeployEngine::DeleteEnvironment(const std::string& project, const std::string& environment) {
  return impl_->DeleteEnvironment(project, environment);
}
Result<std::unique_ptr<Process>> DeployEngine::StartRun(const RunRequest& request) {
  return impl_->StartRun(request);
}
Result<CronRunRecord> DeployEngine::RunCron(const std::string& project,
                                            const std::string& environment,
                                            const std::string& service) {
  return impl_->RunCron(project, environment, service);
}
Result<std::vector<CronRunRecord>> DeployEngine::CronRuns(const std::string& project,
                                                          const std::string& environment,
                                                          const std::string& service, int limit) {
  return impl_->CronRuns(project, environment, service, limit);
}

}  // namespace slipway
