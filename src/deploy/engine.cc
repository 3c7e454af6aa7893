#include "deploy/engine.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "build/builder.h"
#include "common/fs.h"
#include "common/names.h"
#include "config/config.h"

namespace slipway {

namespace {

constexpr int kLogTailLines = 15;
constexpr const char* kBasePath = "/usr/local/bin:/usr/bin:/bin";

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

struct Job {
  int64_t deployment_id = 0;
  std::shared_ptr<UploadDir> upload;
  std::string source_dir;  // the service's root inside the upload
};

struct LiveReplica {
  int64_t record_id = 0;
  int index = 0;
  int port = 0;
  ReplicaHandle handle;
  ReplicaSpec spec;
  std::string state;  // "running", "starting", "restarting", "crashed"
  int restarts = 0;
  std::chrono::steady_clock::time_point next_attempt{};
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
  std::vector<LiveReplica> replicas;
  bool crashed = false;
};

}  // namespace

class DeployEngine::Impl {
 public:
  Impl(Store& store, Supervisor& supervisor, Clock& clock, RouteSink sink, EngineOptions options)
      : store_(store),
        supervisor_(supervisor),
        clock_(clock),
        sink_(std::move(sink)),
        options_(std::move(options)) {}

  ~Impl() { Shutdown(false); }

  Status Start() {
    for (const char* dir : {"releases", "logs/deployments", "run", "uploads", "cache/home"}) {
      RETURN_IF_ERROR(MakeDirs(options_.home + "/" + dir));
    }
    monitor_ = std::thread([this] { MonitorLoop(); });
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

    DeployAccepted accepted;
    accepted.project = config.name;
    accepted.warnings = config.warnings;
    ASSIGN_OR_RETURN(ProjectRecord project, store_.EnsureProject(config.name));
    ASSIGN_OR_RETURN(EnvironmentRecord env,
                     store_.EnsureEnvironment(project.id, request.environment));
    for (size_t i = 0; i < chosen.size(); ++i) {
      const ServiceConfig& svc_config = *chosen[i];
      ASSIGN_OR_RETURN(ServiceRecord svc,
                       store_.EnsureService(project.id, env.id, svc_config.name));
      std::string config_json = ServiceConfigToJson(svc_config);
      RETURN_IF_ERROR(store_.SetServiceConfig(svc.id, config_json));
      ASSIGN_OR_RETURN(DeploymentRecord dep,
                       store_.CreateDeployment(svc.id, request.source_label, config_json));
      (void)store_.AddEvent(svc.id, dep.id, "deploy.queued",
                            "deployment " + std::to_string(dep.id) + " queued");
      accepted.deployments.push_back(dep);
      accepted.service_names.push_back(svc_config.name);
      Enqueue(svc.id, Job{dep.id, upload, source_dirs[i]});
    }
    return accepted;
  }

  void Enqueue(int64_t service_id, Job job) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    auto& queue = queues_[service_id];
    // A newer deploy supersedes one still waiting: users want their latest code.
    for (const Job& waiting : queue.jobs) {
      (void)store_.SetDeploymentStatus(
          waiting.deployment_id, kSkipped,
          "superseded by deployment " + std::to_string(job.deployment_id));
    }
    queue.jobs.clear();
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
      RunDeployment(job);
    }
  }

  // ---- one deployment -------------------------------------------------------

  void Fail(int64_t service_id, int64_t deployment_id, const char* status,
            const std::string& error) {
    spdlog::warn("deployment {} {}: {}", deployment_id, status, error.substr(0, error.find('\n')));
    (void)store_.SetDeploymentStatus(deployment_id, status, error);
    (void)store_.AddEvent(service_id, deployment_id, "deploy.failed",
                          error.substr(0, error.find('\n')));
  }

  EnvMap BuildEnv(const Names& names, const ServiceConfig& config, int64_t deployment_id) {
    EnvMap env;
    env["PATH"] = kBasePath;
    env["HOME"] = options_.home + "/cache/home";
    env["LANG"] = "C.UTF-8";
    env["npm_config_cache"] = options_.home + "/cache/npm";
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1";
    env["CI"] = "true";
    for (const auto& [k, v] : config.variables) env[k] = v;
    AddPlatformEnv(env, names, deployment_id);
    return env;
  }

  void AddPlatformEnv(EnvMap& env, const Names& names, int64_t deployment_id) {
    env["SLIPWAY_PROJECT"] = names.project;
    env["SLIPWAY_SERVICE"] = names.service;
    env["SLIPWAY_ENVIRONMENT"] = names.environment;
    env["SLIPWAY_DEPLOYMENT_ID"] = std::to_string(deployment_id);
    env["SLIPWAY_PUBLIC_DOMAIN"] = Host(names.project, names.environment, names.service);
  }

  EnvMap AppEnv(const LiveDeployment& ld, int port, int index) {
    EnvMap env;
    env["PATH"] = kBasePath;
    env["HOME"] = ld.manifest.app_dir;
    env["LANG"] = "C.UTF-8";
    for (const auto& [k, v] : ld.manifest.runtime_env) env[k] = v;
    for (const auto& [k, v] : ld.config.variables) env[k] = v;
    AddPlatformEnv(env, Names{ld.project, ld.environment, ld.service}, ld.id);
    env["PORT"] = std::to_string(port);
    env["SLIPWAY_REPLICA_INDEX"] = std::to_string(index);
    return env;
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

    (void)store_.SetDeploymentStatus(dep->id, kBuilding);
    (void)store_.AddEvent(svc->id, dep->id, "build.started", "build started");
    std::string log_path = BuildLogPath(dep->id);
    if (Status st = MakeDirs(DeploymentDir(dep->id)); !st.ok()) {
      return Fail(svc->id, dep->id, kBuildFailed, st.message());
    }
    BuildRequest build;
    build.source_dir = job.source_dir;
    build.release_dir = options_.home + "/releases/" + std::to_string(dep->id);
    build.log_path = log_path;
    build.service = *config;
    build.build_env = BuildEnv(*names, *config, dep->id);
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
    auto release = store_.CreateRelease(svc->id, dep->id, build.release_dir, manifest->ToJson());
    if (!release.ok()) return Fail(svc->id, dep->id, kBuildFailed, release.status().message());
    (void)store_.SetDeploymentRelease(dep->id, release->id);
    (void)store_.AddEvent(svc->id, dep->id, "build.succeeded",
                          "release " + std::to_string(release->id) + " built");

    Activate(MakeLive(dep->id, svc->id, *names, *config, *manifest));
  }

  // A deployment with its release, before any replica runs.
  LiveDeployment MakeLive(int64_t deployment_id, int64_t service_id, const Names& names,
                          const ServiceConfig& config, const ReleaseManifest& manifest) const {
    LiveDeployment ld;
    ld.id = deployment_id;
    ld.service_id = service_id;
    ld.project = names.project;
    ld.environment = names.environment;
    ld.service = names.service;
    ld.host = Host(ld.project, ld.environment, ld.service);
    ld.config = config;
    ld.manifest = manifest;
    return ld;
  }

  Result<LiveReplica> StartReplica(const LiveDeployment& ld, int index) {
    ASSIGN_OR_RETURN(int port, PickFreePort());
    LiveReplica r;
    r.index = index;
    r.port = port;
    r.spec.command = ld.manifest.start_command;
    r.spec.cwd = ld.manifest.app_dir;
    r.spec.env = AppEnv(ld, port, index);
    r.spec.log_path = ReplicaLogPath(ld.id, index);
    r.spec.run_dir =
        options_.home + "/run/d" + std::to_string(ld.id) + "-r" + std::to_string(index);
    (void)RemoveTree(r.spec.run_dir);  // files of an earlier attempt at this index
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

  void StopReplica(const LiveDeployment& ld, LiveReplica& r) {
    if (r.handle.shim_pid != 0) (void)supervisor_.Stop(r.handle, options_.stop_grace);
    r.state = "stopped";
    SaveReplicaState(ld, r);
  }

  HealthCheckSpec HealthSpec(const LiveDeployment& ld, int port) const {
    HealthCheckSpec spec;
    spec.port = port;
    spec.path = ld.config.healthcheck_path;
    spec.host_header = ld.host;
    spec.timeout = std::chrono::seconds(ld.config.healthcheck_timeout);
    return spec;
  }

  // Starts the replicas, waits for their health, switches traffic, retires the old.
  void Activate(LiveDeployment ld) {
    (void)store_.SetDeploymentStatus(ld.id, kDeploying);
    (void)store_.AddEvent(ld.service_id, ld.id, "deploy.started", "starting replicas");
    bool is_static = ld.manifest.kind == "static";
    if (!is_static) {
      for (int i = 0; i < std::max(1, ld.config.num_replicas); ++i) {
        auto r = StartReplica(ld, i);
        if (!r.ok()) {
          StopAll(ld);
          return Fail(ld.service_id, ld.id, kDeployFailed,
                      "cannot start replica " + std::to_string(i) + ": " + r.status().message());
        }
        ld.replicas.push_back(std::move(*r));
      }
      for (auto& r : ld.replicas) {
        Status health = WaitHealthy(HealthSpec(ld, r.port), clock_, [&] {
          return supervisor_.Running(r.handle) && !stopping_.load();
        });
        if (!health.ok()) {
          std::string reason = health.message();
          if (!supervisor_.Running(r.handle)) {
            // Give the shim a moment to record the exit code it saw.
            auto code = WaitForExitCode(r.handle);
            reason = code ? "app exited with code " + std::to_string(*code) +
                                " before its health check passed"
                          : "app exited before its health check passed";
          }
          if (stopping_.load()) reason = "interrupted: the daemon stopped during this deploy";
          std::string tail = LogTail(r.spec.log_path, "last lines of the app's log:");
          StopAll(ld);
          return Fail(ld.service_id, ld.id, kDeployFailed, reason + tail);
        }
        r.state = "running";
        SaveReplicaState(ld, r);
      }
      (void)store_.AddEvent(ld.service_id, ld.id, "health.passed",
                            std::to_string(ld.replicas.size()) + " replica(s) healthy");
    }

    int64_t previous = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = routed_.find(ld.service_id);
      if (it != routed_.end()) previous = it->second;
      routed_[ld.service_id] = ld.id;
      live_[ld.id] = ld;
    }
    PublishRoutes();
    (void)store_.SetActiveDeployment(ld.service_id, ld.id);
    (void)store_.SetDeploymentStatus(ld.id, kActive);
    (void)store_.AddEvent(ld.service_id, ld.id, "deploy.active",
                          "deployment " + std::to_string(ld.id) + " is live at " +
                              Url(ld.project, ld.environment, ld.service));
    if (previous != 0 && previous != ld.id) Retire(previous);
  }

  std::optional<int> WaitForExitCode(const ReplicaHandle& handle) {
    for (int i = 0; i < 40; ++i) {
      if (auto code = supervisor_.ExitCode(handle)) return code;
      if (!ProcessAlive(handle.shim_pid, handle.shim_start_time)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return supervisor_.ExitCode(handle);
  }

  void StopAll(LiveDeployment& ld) {
    for (auto& r : ld.replicas) StopReplica(ld, r);
  }

  // Takes a deployment out of service: DRAINING while its replicas stop, then REMOVED.
  void Retire(int64_t deployment_id) {
    LiveDeployment old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(deployment_id);
      if (it != live_.end()) {
        old = std::move(it->second);
        live_.erase(it);
      }
    }
    (void)store_.SetDeploymentStatus(deployment_id, kDraining);
    StopAll(old);
    (void)store_.SetDeploymentStatus(deployment_id, kRemoved);
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
        Route route;
        route.host = ld.host;
        route.service_label = ld.project + "/" + ld.service;
        route.redirect_to_https = options_.redirect_to_https;
        if (ld.manifest.kind == "static") route.static_root = ld.manifest.static_root;
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
      lock.lock();
    }
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
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [service_id, dep_id] : routed_) {
        auto it = live_.find(dep_id);
        if (it == live_.end()) continue;
        LiveDeployment& ld = it->second;
        for (auto& r : ld.replicas) {
          if ((r.state == "running" || r.state == "starting") && !supervisor_.Running(r.handle)) {
            auto code = supervisor_.ExitCode(r.handle);
            std::string msg = "replica " + std::to_string(r.index) + " exited" +
                              (code ? " with code " + std::to_string(*code) : "");
            changed = changed || r.state == "running";
            if (r.restarts >= options_.max_restarts) {
              r.state = "crashed";
              msg += "; gave up after " + std::to_string(r.restarts) + " restarts";
            } else {
              r.state = "restarting";
              r.next_attempt = now + Backoff(r.restarts);
              msg += "; restarting in " + std::to_string(Backoff(r.restarts).count()) + " ms";
            }
            spdlog::warn("{}/{}: {}", ld.project, ld.service, msg);
            (void)store_.AddEvent(ld.service_id, ld.id, "replica.exited", msg);
            to_save.emplace_back(&ld, &r);
          }
          if (r.state == "restarting" && now >= r.next_attempt) {
            actions.push_back({ld.id, r.index, Action::kRestart});
          } else if (r.state == "starting") {
            actions.push_back({ld.id, r.index, Action::kProbe});
          }
        }
        bool all_crashed = !ld.replicas.empty() &&
                           std::all_of(ld.replicas.begin(), ld.replicas.end(),
                                       [](const LiveReplica& r) { return r.state == "crashed"; });
        if (all_crashed && !ld.crashed) {
          ld.crashed = true;
          std::string tail =
              LogTail(ld.replicas.front().spec.log_path, "last lines of the app's log:");
          (void)store_.SetDeploymentStatus(ld.id, kCrashed,
                                           "every replica kept exiting; gave up after " +
                                               std::to_string(options_.max_restarts) + " restarts" +
                                               tail);
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
        HealthCheckSpec spec = HealthSpec(snapshot, old.port);
        spec.timeout = std::chrono::seconds(1);
        Status health = WaitHealthy(spec, clock_, [&] { return supervisor_.Running(old.handle); });
        if (!health.ok()) continue;
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

  Status Recover() {
    // Deploys the previous daemon left half done cannot be resumed safely from the
    // middle of a build: they are failed with the reason, and their leftovers go.
    ASSIGN_OR_RETURN(auto unfinished,
                     store_.ListDeploymentsByStatus({kQueued, kBuilding, kDeploying, kDraining}));
    for (const auto& dep : unfinished) {
      if (dep.build_pgid > 0 && ProcessGroupAlive(static_cast<pid_t>(dep.build_pgid))) {
        kill(-static_cast<pid_t>(dep.build_pgid), SIGKILL);
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

    ASSIGN_OR_RETURN(auto active, store_.ListDeploymentsByStatus({kActive, kCrashed}));
    std::vector<LiveDeployment> to_start;
    for (const auto& dep : active) {
      auto svc = store_.GetService(dep.service_id);
      if (!svc.ok()) continue;
      if (svc->active_deployment_id != dep.id) continue;  // left over from an old switch
      auto names = NamesOf(*svc);
      auto config = ServiceConfigFromJson(dep.config_json);
      auto release = store_.GetRelease(dep.release_id);
      if (!names.ok() || !config.ok() || !release.ok()) continue;
      auto manifest = ReleaseManifest::FromJson(release->manifest_json);
      if (!manifest.ok()) continue;
      LiveDeployment ld = MakeLive(dep.id, svc->id, *names, *config, *manifest);
      std::map<int, bool> have;
      auto replicas = store_.ListReplicas(dep.id);
      if (replicas.ok()) {
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
          r.spec.command = manifest->start_command;
          r.spec.cwd = manifest->app_dir;
          r.restarts = rec.restarts;
          r.state = rec.state == "running" ? "running" : "starting";
          have[rec.index] = true;
          ld.replicas.push_back(std::move(r));
          spdlog::info("{}/{}: adopted replica {} (pid {})", ld.project, ld.service, rec.index,
                       rec.app_pid);
        }
      }
      if (manifest->kind != "static") {
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
    return Status::Ok();
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
      s.url = Url(project.name, env.name, svc.name);
      s.active_deployment_id = svc.active_deployment_id;
      auto latest = store_.ListDeployments(svc.id, 1);
      if (latest.ok() && !latest->empty()) {
        s.latest_deployment_id = latest->front().id;
        s.latest_status = latest->front().status;
      }
      if (svc.active_deployment_id != 0) {
        auto active = store_.GetDeployment(svc.active_deployment_id);
        if (active.ok()) s.active_status = active->status;
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

  // ---- shutdown -------------------------------------------------------------

  void Shutdown(bool stop_apps) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shut_down_) return;
      shut_down_ = true;
      stopping_ = true;
    }
    monitor_cv_.notify_all();
    if (monitor_.joinable()) monitor_.join();
    std::vector<std::thread> workers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      workers.swap(workers_);
      for (auto& [id, queue] : queues_) {
        for (const Job& waiting : queue.jobs) {
          (void)store_.SetDeploymentStatus(waiting.deployment_id, kSkipped,
                                           "the daemon stopped before it started");
        }
        queue.jobs.clear();
      }
    }
    for (auto& t : workers) {
      if (t.joinable()) t.join();
    }
    if (stop_apps) {
      std::map<int64_t, LiveDeployment> live;
      {
        std::lock_guard<std::mutex> lock(mu_);
        live.swap(live_);
      }
      for (auto& [id, ld] : live) StopAll(ld);
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
  RouteSink sink_;
  EngineOptions options_;

  std::mutex mu_;  // guards everything below except the atomics and monitor fields
  std::map<int64_t, Queue> queues_;
  std::vector<std::thread> workers_;
  std::map<int64_t, LiveDeployment> live_;  // deployment id -> running state
  std::map<int64_t, int64_t> routed_;       // service id -> deployment serving it
  bool shut_down_ = false;
  std::atomic<bool> stopping_{false};

  std::mutex monitor_mu_;
  std::condition_variable monitor_cv_;
  std::thread monitor_;
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
void DeployEngine::RefreshRoutes() { impl_->PublishRoutes(); }

}  // namespace slipway
