#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "supervisor/supervisor_impl.h"

namespace slipway {

namespace supervisor_impl {

std::string ShellScriptFor(const std::string& command) {
  const char* space = " \t\r\n";
  size_t begin = command.find_first_not_of(space);
  if (begin == std::string::npos) return command;
  std::string trimmed = command.substr(begin, command.find_last_not_of(space) - begin + 1);
  // Lists, pipelines, subshells and background jobs: `exec` would apply to the first
  // command only; the shell stays and the whole group is still signalled as one.
  if (trimmed.find_first_of(";&|()`{}\n") != std::string::npos) return trimmed;
  std::string first = trimmed.substr(0, trimmed.find_first_of(" \t"));
  // `A=1 app`: exec would take "A=1" as the program.
  if (first.find('=') != std::string::npos) return trimmed;
  // Keywords and builtins that are not programs (`exec exit 3` fails with 127).
  static const std::set<std::string> kNotPrograms = {
      ".",        ":",    "!",        "alias",  "bg",       "break",   "case",   "cd",   "command",
      "continue", "do",   "done",     "elif",   "else",     "esac",    "eval",   "exec", "exit",
      "export",   "fg",   "fi",       "for",    "function", "getopts", "hash",   "if",   "jobs",
      "local",    "read", "readonly", "return", "set",      "shift",   "source", "then", "times",
      "trap",     "type", "ulimit",   "umask",  "unalias",  "unset",   "until",  "wait", "while"};
  if (kNotPrograms.count(first) != 0) return trimmed;
  return "exec " + trimmed;
}

}  // namespace supervisor_impl

namespace {

using namespace supervisor_impl;

constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr auto kShimExitTimeout = std::chrono::seconds(5);
constexpr auto kKillTimeout = std::chrono::seconds(10);
constexpr auto kPollInterval = std::chrono::milliseconds(10);

std::string Join(const std::string& dir, const char* name) { return dir + "/" + name; }

// Waits in real time: what is waited for is the kernel, whatever clock the caller uses.
bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(kPollInterval);
  }
  return true;
}

// Reads a handle from a run dir without checking that anything is alive.
Result<ReplicaHandle> ReadHandle(const std::string& run_dir) {
  auto shim = ReadFile(Join(run_dir, kShimPidFile));
  if (!shim.ok()) {
    return NotFound("no replica in " + run_dir + " (" + kShimPidFile + " is missing)");
  }
  ReplicaHandle handle;
  handle.run_dir = run_dir;
  long long pid = 0;
  std::istringstream in(*shim);
  if (!(in >> pid >> handle.shim_start_time) || pid <= 0) {
    return NotFound("no replica in " + run_dir + " (" + kShimPidFile + " is unreadable)");
  }
  handle.shim_pid = static_cast<pid_t>(pid);
  auto app = ReadFile(Join(run_dir, kAppPidFile));
  if (app.ok()) handle.app_pid = static_cast<pid_t>(std::atol(app->c_str()));
  return handle;
}

}  // namespace

Supervisor::Supervisor(std::string slipway_exe, Clock& clock)
    : slipway_exe_(std::move(slipway_exe)), clock_(clock) {}

Result<ReplicaHandle> Supervisor::Start(const ReplicaSpec& spec) {
  if (spec.command.find_first_not_of(" \t\r\n") == std::string::npos) {
    return InvalidArgument("the replica has no start command; set one in slipway.toml");
  }
  if (spec.run_dir.empty() || spec.log_path.empty()) {
    return InvalidArgument("a replica needs a run directory and a log file");
  }
  if (!IsDirectory(spec.cwd)) {
    return NotFound("working directory " + spec.cwd +
                    " does not exist; check the release's app directory");
  }
  // The shim runs in spec.cwd: every path it gets must be absolute.
  const std::string exe = AbsolutePath(slipway_exe_);
  const std::string run_dir = AbsolutePath(spec.run_dir);
  const std::string log_path = AbsolutePath(spec.log_path);
  if (access(exe.c_str(), X_OK) != 0) {
    return Internal("cannot start the replica's shim: " + exe + " is not executable");
  }
  RETURN_IF_ERROR(MakeDirs(run_dir));
  RETURN_IF_ERROR(MakeDirs(std::filesystem::path(log_path).parent_path().string()));
  if (auto running = Adopt(run_dir); running.ok()) {
    return FailedPrecondition("a replica is already running in " + run_dir + " (shim pid " +
                              std::to_string(running->shim_pid) +
                              "); stop it before starting another there");
  }
  for (const char* stale : {kShimPidFile, kAppPidFile, kExitFile, kShimErrorFile}) {
    unlink(Join(run_dir, stale).c_str());
  }

  DetachedSpec detached;
  detached.argv = {exe, "shim", "--run-dir", run_dir, "--log", log_path};
  if (spec.sandbox.enabled()) {
    const SandboxSpec& sb = spec.sandbox;
    for (const std::string& flag :
         {std::string("--uid"), std::to_string(sb.uid), std::string("--gid"),
          std::to_string(sb.gid), std::string("--hide"), sb.hide}) {
      detached.argv.push_back(flag);
    }
    for (const SandboxSpec::Bind& bind : sb.binds) {
      if ((bind.source + bind.target + bind.overlay_scratch).find('\n') != std::string::npos) {
        return InvalidArgument("cannot isolate the replica: a path holds a newline");
      }
      detached.argv.push_back(bind.read_only ? "--bind-ro" : "--bind");
      detached.argv.push_back(bind.source + "\n" + bind.target +
                              (bind.overlay_scratch.empty() ? "" : "\n" + bind.overlay_scratch));
    }
  }
  if (!spec.mask_env.empty()) {
    std::string names;
    for (const auto& n : spec.mask_env) names += (names.empty() ? "" : ",") + n;
    detached.argv.insert(detached.argv.end(), {"--mask-env", names});
  }
  detached.argv.insert(detached.argv.end(), {"--", "/bin/sh", "-c", ShellScriptFor(spec.command)});
  detached.env = spec.env;
  detached.cwd = spec.cwd;
  auto started_shim = SpawnDetached(detached);
  if (!started_shim.ok()) {
    if (started_shim.status().message().rfind("working directory", 0) == 0) {
      return started_shim.status();
    }
    return started_shim.status().WithContext("cannot start the replica's shim");
  }
  const pid_t shim = *started_shim;

  const std::string app_pid_file = Join(run_dir, kAppPidFile);
  bool shim_died = false;
  bool started = WaitUntil(
      [&] {
        if (PathExists(app_pid_file)) return true;
        if (ProcessAlive(shim)) return false;
        shim_died = !PathExists(app_pid_file);
        return true;
      },
      kStartTimeout);
  if (shim_died) {
    auto why = ReadFile(Join(run_dir, kShimErrorFile));
    std::string reason = why.ok() ? *why : "no reason recorded";
    while (!reason.empty() && reason.back() == '\n') reason.pop_back();
    return Internal("the replica's shim exited before starting the app: " + reason);
  }
  if (!started) {
    if (ProcessAlive(shim)) kill(shim, SIGKILL);
    return Internal("the replica's shim (pid " + std::to_string(shim) +
                    ") did not start the app within " + std::to_string(kStartTimeout.count()) +
                    "s; see " + run_dir);
  }
  return ReadHandle(run_dir);
}

bool Supervisor::Running(const ReplicaHandle& handle) const {
  return ProcessAlive(handle.shim_pid, handle.shim_start_time) &&
         !PathExists(Join(handle.run_dir, kExitFile));
}

std::optional<int> Supervisor::ExitCode(const ReplicaHandle& handle) const {
  auto content = ReadFile(Join(handle.run_dir, kExitFile));
  if (!content.ok()) return std::nullopt;
  char* end = nullptr;
  long code = std::strtol(content->c_str(), &end, 10);
  if (end == content->c_str()) return std::nullopt;
  return static_cast<int>(code);
}

Status Supervisor::Stop(const ReplicaHandle& handle, std::chrono::milliseconds grace,
                        int stop_signal) {
  const pid_t app = handle.app_pid;
  auto shim_alive = [&] { return ProcessAlive(handle.shim_pid, handle.shim_start_time); };
  auto group_gone = [&] { return !ProcessGroupAlive(app); };

  // Once the shim has recorded the exit it has killed the group itself; a group alive
  // under that id now would be someone else's (pid reuse), so it is left alone.
  bool app_may_run = shim_alive() || !PathExists(Join(handle.run_dir, kExitFile));
  if (app > 0 && app_may_run && !group_gone()) {
    kill(-app, stop_signal);
    if (!WaitUntil(group_gone, grace)) {
      kill(-app, SIGKILL);
      if (!WaitUntil(group_gone, kKillTimeout)) {
        return Internal("the app's process group " + std::to_string(app) +
                        " survived SIGKILL for " + std::to_string(kKillTimeout.count()) +
                        "s; it may be stuck in the kernel");
      }
    }
  }

  // The shim exits on its own once the app is gone.
  if (!WaitUntil([&] { return !shim_alive(); }, kShimExitTimeout)) {
    kill(handle.shim_pid, SIGKILL);
    if (!WaitUntil([&] { return !shim_alive(); }, kKillTimeout)) {
      return Internal("the replica's shim (pid " + std::to_string(handle.shim_pid) +
                      ") survived SIGKILL");
    }
  }
  return Status::Ok();
}

Result<ReplicaHandle> Supervisor::Adopt(const std::string& run_dir) const {
  ASSIGN_OR_RETURN(ReplicaHandle handle, ReadHandle(run_dir));
  if (!ProcessAlive(handle.shim_pid, handle.shim_start_time)) {
    return NotFound("the replica in " + run_dir + " is no longer running (its shim, pid " +
                    std::to_string(handle.shim_pid) + ", has exited)");
  }
  return handle;
}

}  // namespace slipway
