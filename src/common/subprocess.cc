#include "common/subprocess.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/fs.h"

extern char** environ;

namespace slipway {

namespace {

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// "/proc/<pid>/stat", or "" when the process is gone. Not through std::ifstream: a read
// racing the process's exit fails with ESRCH, which istreambuf_iterator turns into an
// exception.
std::string ReadProcStat(const std::string& pid) {
  auto content = ReadFile("/proc/" + pid + "/stat");
  return content.ok() ? *content : "";
}

}  // namespace

std::string FindExecutable(const std::string& name, const std::string& path) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

EnvMap CurrentEnvironment() {
  EnvMap env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return env;
}

unsigned long long ProcessStartTime(pid_t pid) {
  std::string content = ReadProcStat(std::to_string(pid));
  auto close = content.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(content.substr(close + 2));
  std::string field;
  // Fields after the command name start at field 3 (state); start time is field 22.
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 3 && (field == "Z" || field == "X")) return 0;
    if (i == 22) return std::stoull(field);
  }
  return 0;
}

bool ProcessGroupAlive(pid_t pgid) {
  if (pgid <= 0) return false;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return kill(-pgid, 0) == 0;
  bool alive = false;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::string content = ReadProcStat(entry->d_name);
    auto close_paren = content.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream fields(content.substr(close_paren + 2));
    std::string state, ppid, pgrp;
    fields >> state >> ppid >> pgrp;
    if (state != "Z" && state != "X" && pgrp == std::to_string(pgid)) {
      alive = true;
      break;
    }
  }
  closedir(proc);
  return alive;
}

bool ProcessAlive(pid_t pid, unsigned long long start_time) {
  if (pid <= 0) return false;
  unsigned long long actual = ProcessStartTime(pid);
  if (actual == 0) return false;
  return start_time == 0 || actual == start_time;
}

Result<std::unique_ptr<Process>> Process::Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return InvalidArgument("empty command");
  std::string path_var = options.env.count("PATH") ? options.env.at("PATH") : "/usr/bin:/bin";
  std::string exe = FindExecutable(options.argv[0], path_var);
  if (exe.empty()) return NotFound("command not found: " + options.argv[0]);

  int out_pipe[2] = {-1, -1};
  if (options.capture_output && pipe2(out_pipe, O_CLOEXEC) != 0) {
    return ErrnoStatus("pipe", errno);
  }
  // A pipe reporting exec failure back to the parent: closed on successful exec.
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);

  // Everything the child touches is prepared before fork: no allocation after it.
  std::vector<char*> argv;
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  pid_t parent = getpid();
  ASSIGN_OR_RETURN(PreparedSandbox sandbox, PreparedSandbox::Prepare(options.sandbox));
  int err_fd = -1;
  if (options.capture_output && !options.stderr_path.empty()) {
    err_fd = open(options.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (err_fd < 0) {
      int e = errno;
      close(err_pipe[0]);
      close(err_pipe[1]);
      if (out_pipe[0] >= 0) close(out_pipe[0]);
      if (out_pipe[1] >= 0) close(out_pipe[1]);
      return ErrnoStatus("cannot open " + options.stderr_path + " for the command's stderr", e);
    }
  }
  // What the child reports when it cannot exec; the step is a string literal, at the
  // same address in parent and child.
  struct ChildFailure {
    int err = 0;
    const char* step = nullptr;
  };

  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    if (err_fd >= 0) close(err_fd);
    return ErrnoStatus("fork", e);
  }
  if (pid == 0) {
    if (options.die_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
    }
    if (options.new_process_group) setpgid(0, 0);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    signal(SIGPIPE, SIG_DFL);
    int in = open(options.stdin_path.c_str(), O_RDONLY);
    if (in >= 0) dup2(in, 0);
    if (options.capture_output) {
      dup2(out_pipe[1], 1);
      dup2(err_fd >= 0 ? err_fd : out_pipe[1], 2);
    }
    ChildFailure failure;
    if (int e = sandbox.Enter(&failure.step); e != 0) {
      failure.err = e;
      (void)!write(err_pipe[1], &failure, sizeof(failure));
      _exit(127);
    }
    if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) {
      failure = {errno, "working directory"};
      (void)!write(err_pipe[1], &failure, sizeof(failure));
      _exit(127);
    }
    execve(exe.c_str(), argv.data(), envp.data());
    failure = {errno, "exec"};
    (void)!write(err_pipe[1], &failure, sizeof(failure));
    _exit(127);
  }
  close(err_pipe[1]);
  if (options.capture_output) close(out_pipe[1]);
  if (err_fd >= 0) close(err_fd);
  if (options.new_process_group) setpgid(pid, pid);  // also from the parent: no race

  auto proc = std::unique_ptr<Process>(new Process());
  proc->pid_ = pid;
  proc->output_fd_ = options.capture_output ? out_pipe[0] : -1;
  proc->own_group_ = options.new_process_group;

  ChildFailure failure;
  ssize_t n;
  do {
    n = read(err_pipe[0], &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  close(err_pipe[0]);
  if (n == sizeof(failure)) {
    proc->Wait();
    std::string step = failure.step ? failure.step : "exec";
    if (step == "working directory") {
      return ErrnoStatus("working directory " + options.cwd, failure.err);
    }
    if (step == "exec") return ErrnoStatus("exec " + exe, failure.err);
    return ErrnoStatus("cannot isolate " + exe + ": " + step, failure.err);
  }
  return proc;
}

Process::~Process() {
  if (!reaped_ && pid_ > 0) {
    Signal(SIGKILL);
    Wait();
  }
  if (output_fd_ >= 0) close(output_fd_);
}

int Process::Wait() {
  if (reaped_) return exit_code_;
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) {
      reaped_ = true;
      exit_code_ = -1;
      return exit_code_;
    }
  }
  reaped_ = true;
  exit_code_ = DecodeWaitStatus(status);
  return exit_code_;
}

bool Process::TryWait(int* code) {
  if (!reaped_) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == 0) return false;
    reaped_ = true;
    exit_code_ = r < 0 ? -1 : DecodeWaitStatus(status);
  }
  *code = exit_code_;
  return true;
}

void Process::Signal(int sig) {
  if (pid_ <= 0) return;
  // A reaped leader's group may still have members; its id cannot be reused while it
  // does, so signalling it stays safe.
  if (own_group_) {
    kill(-pid_, sig);
  } else if (!reaped_) {
    kill(pid_, sig);
  }
}

// SIGKILL reaches every process of a group at once, but each takes a moment to die:
// callers are told a command is over only once its whole group is (at most 2 s).
static void WaitGroupGone(pid_t pgid, bool own_group) {
  if (!own_group) return;
  for (int i = 0; i < 200 && ProcessGroupAlive(pgid); ++i) usleep(10'000);
}

Result<CommandOutcome> RunCommand(const SpawnOptions& spawn, const RunOptions& run) {
  ASSIGN_OR_RETURN(auto proc, Process::Spawn(spawn));
  if (run.on_started) run.on_started(proc->pid());
  CommandOutcome outcome;
  auto deadline = std::chrono::steady_clock::now() + run.timeout;
  std::string pending;
  int fd = proc->output_fd();
  bool open = fd >= 0;
  char buf[8192];
  auto flush_lines = [&](bool all) {
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      if (run.on_line) run.on_line(std::string_view(pending).substr(start, nl - start));
    }
    pending.erase(0, start);
    if (all && !pending.empty()) {
      if (run.on_line) run.on_line(pending);
      pending.clear();
    }
  };
  while (true) {
    if (run.cancelled && run.cancelled()) {
      outcome.cancelled = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      outcome.timed_out = true;
      break;
    }
    if (!open) {
      int code;
      if (proc->TryWait(&code)) {
        outcome.exit_code = code;
        flush_lines(true);
        return outcome;
      }
      usleep(20'000);
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, 200);
    if (r < 0 && errno != EINTR) return ErrnoStatus("poll", errno);
    if (r == 0) {
      // The command may have exited while a background child it left keeps the pipe
      // open; the command's exit is what counts, and its group goes with it.
      int code;
      if (proc->TryWait(&code)) {
        outcome.exit_code = code;
        proc->Signal(SIGKILL);
        WaitGroupGone(proc->pid(), spawn.new_process_group);
        flush_lines(true);
        return outcome;
      }
      continue;
    }
    if (r < 0) continue;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      open = false;  // every writer closed: wait for the exit
      continue;
    }
    pending.append(buf, static_cast<size_t>(n));
    // A line longer than 64 KiB is cut so one runaway line cannot hold memory.
    if (pending.size() > 65536 && pending.find('\n') == std::string::npos) {
      if (run.on_line) run.on_line(pending);
      pending.clear();
    }
    flush_lines(false);
  }
  proc->Signal(SIGKILL);
  outcome.exit_code = proc->Wait();
  WaitGroupGone(proc->pid(), spawn.new_process_group);
  flush_lines(true);
  return outcome;
}

namespace {

struct ForkReport {
  pid_t pid;
  int err;
};
struct ExecFailure {
  int stage;  // 0: chdir to the working directory, 1: exec
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

Result<pid_t> SpawnDetached(const DetachedSpec& spec) {
  if (spec.argv.empty()) return InvalidArgument("nothing to start");
  // Everything the children use is prepared before fork: no allocation after it.
  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const char* cwd = spec.cwd.empty() ? "/" : spec.cwd.c_str();
  const char* output = spec.output_path.empty() ? "/dev/null" : spec.output_path.c_str();
  rlimit files{};
  const int max_fd = getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                         ? static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20))
                         : 65536;

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
    // A new session, then a second fork: once this intermediate exits, the process is in
    // no session or process group of the caller's and not its child.
    setsid();
    pid_t detached = fork();
    if (detached != 0) {
      ForkReport report{detached, detached < 0 ? errno : 0};
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
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    int out = open(output, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
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
  if (!reported || report.pid < 0) return ErrnoStatus("fork", report.err);
  if (failed && failure.stage == 0)
    return ErrnoStatus("working directory " + spec.cwd, failure.err);
  if (failed) return Internal("cannot start " + spec.argv[0] + ": " + std::strerror(failure.err));
  return report.pid;
}

}  // namespace slipway
