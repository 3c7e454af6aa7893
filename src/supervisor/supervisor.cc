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

struct ForkReport {
  pid_t pid;
  int err;
};
struct ExecFailure {
  int stage;  // 0: chdir to the working directory, 1: exec of the shim
  int err;
};

bool ReadFull(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

void CloseFdsFrom(int first, int last) {
  if (first > last) return;
  if (close_range(static_cast<unsigned>(first), static_cast<unsigned>(last), 0) == 0) return;
  for (int fd = first; fd <= last; ++fd) close(fd);
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

  // Everything the children use is prepared before fork: no allocation after it.
  std::vector<std::string> args = {
      exe,      "shim", "--run-dir", run_dir, "--log",
      log_path, "--",   "/bin/sh",   "-c",    ShellScriptFor(spec.command)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  const char* cwd = spec.cwd.c_str();

  int pid_pipe[2];
  int err_pipe[2];
  if (pipe2(pid_pipe, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    close(pid_pipe[0]);
    close(pid_pipe[1]);
    return ErrnoStatus("pipe", e);
  }

  pid_t child = fork();
  if (child < 0) {
    int e = errno;
    for (int fd : {pid_pipe[0], pid_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    return ErrnoStatus("fork", e);
  }
  if (child == 0) {
    // A new session, then a second fork: the shim is in no session or process group of
    // the server's and, once this intermediate exits, is not the server's child.
    setsid();
    pid_t shim = fork();
    if (shim != 0) {
      ForkReport report{shim, shim < 0 ? errno : 0};
      (void)!write(pid_pipe[1], &report, sizeof(report));
      _exit(0);
    }
    int err_fd = fcntl(err_pipe[1], F_DUPFD_CLOEXEC, 3);
    if (err_fd < 0) _exit(127);
    if (chdir(cwd) != 0) {
      ExecFailure failure{0, errno};
      (void)!write(err_fd, &failure, sizeof(failure));
      _exit(127);
    }
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    rlimit files{};
    int max_fd = getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                     ? static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20))
                     : 65536;
    CloseFdsFrom(3, err_fd - 1);
    CloseFdsFrom(err_fd + 1, max_fd);
    for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(argv[0], argv.data(), envp.data());
    ExecFailure failure{1, errno};
    (void)!write(err_fd, &failure, sizeof(failure));
    _exit(127);
  }
  close(pid_pipe[1]);
  close(err_pipe[1]);
  while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
  }
  ForkReport report{-1, EIO};
  bool reported = ReadFull(pid_pipe[0], &report, sizeof(report));
  close(pid_pipe[0]);
  ExecFailure failure{};
  bool failed = ReadFull(err_pipe[0], &failure, sizeof(failure));  // EOF: exec succeeded
  close(err_pipe[0]);
  if (!reported || report.pid < 0) return ErrnoStatus("fork of the replica's shim", report.err);
  if (failed && failure.stage == 0) {
    return ErrnoStatus("working directory " + spec.cwd, failure.err);
  }
  if (failed) {
    return Internal("cannot start the replica's shim " + exe + ": " + std::strerror(failure.err));
  }
  const pid_t shim = report.pid;

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

Status Supervisor::Stop(const ReplicaHandle& handle, std::chrono::milliseconds grace) {
  const pid_t app = handle.app_pid;
  auto shim_alive = [&] { return ProcessAlive(handle.shim_pid, handle.shim_start_time); };
  auto group_gone = [&] { return !ProcessGroupAlive(app); };

  // Once the shim has recorded the exit it has killed the group itself; a group alive
  // under that id now would be someone else's (pid reuse), so it is left alone.
  bool app_may_run = shim_alive() || !PathExists(Join(handle.run_dir, kExitFile));
  if (app > 0 && app_may_run && !group_gone()) {
    kill(-app, SIGTERM);
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
