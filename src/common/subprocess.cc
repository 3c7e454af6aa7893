#include "common/subprocess.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus("fork", errno);
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
      dup2(out_pipe[1], 2);
    }
    if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) {
      int e = errno;
      (void)!write(err_pipe[1], &e, sizeof(e));
      _exit(127);
    }
    execve(exe.c_str(), argv.data(), envp.data());
    int e = errno;
    (void)!write(err_pipe[1], &e, sizeof(e));
    _exit(127);
  }
  close(err_pipe[1]);
  if (options.capture_output) close(out_pipe[1]);
  if (options.new_process_group) setpgid(pid, pid);  // also from the parent: no race

  auto proc = std::unique_ptr<Process>(new Process());
  proc->pid_ = pid;
  proc->output_fd_ = options.capture_output ? out_pipe[0] : -1;
  proc->own_group_ = options.new_process_group;

  int child_errno = 0;
  ssize_t n;
  do {
    n = read(err_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close(err_pipe[0]);
  if (n == sizeof(child_errno)) {
    proc->Wait();
    if (!options.cwd.empty() && access(options.cwd.c_str(), F_OK) != 0) {
      return ErrnoStatus("working directory " + options.cwd, child_errno);
    }
    return ErrnoStatus("exec " + exe, child_errno);
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
  flush_lines(true);
  return outcome;
}

}  // namespace slipway
