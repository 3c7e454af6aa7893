// `slipway shim`: the per-replica monitor. It owns the app's output (writing the log
// file), reaps the app, records its exit status and makes sure nothing of the app
// outlives it. It is deliberately a plain single-threaded poll loop: it must stay
// small and must never be the reason an app stops.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/fs.h"
#include "common/subprocess.h"
#include "secrets/secrets.h"
#include "supervisor/supervisor.h"
#include "supervisor/supervisor_impl.h"

namespace slipway {

namespace {

using namespace supervisor_impl;

struct ShimArgs {
  std::string run_dir;
  std::string log_path;
  size_t log_max_bytes = kDefaultLogMaxBytes;
  std::vector<std::string> mask_env;  // names of the env variables holding secrets
  std::vector<std::string> command;
  SandboxSpec sandbox;
};

// --bind and --bind-ro take "SOURCE\nTARGET[\nOVERLAY_SCRATCH]" (paths hold no newline:
// the supervisor checks).
bool ParseBind(const std::string& value, bool read_only, ShimArgs* out) {
  size_t nl = value.find('\n');
  if (nl == std::string::npos) return false;
  size_t nl2 = value.find('\n', nl + 1);
  SandboxSpec::Bind bind{value.substr(0, nl), value.substr(nl + 1, nl2 - nl - 1), read_only, ""};
  if (nl2 != std::string::npos) bind.overlay_scratch = value.substr(nl2 + 1);
  out->sandbox.binds.push_back(std::move(bind));
  return true;
}

// Accepts both `<exe> shim --run-dir ...` and `shim --run-dir ...` (argv already shifted).
bool ParseArgs(int argc, char** argv, ShimArgs* out, std::string* error) {
  int i = 1;
  if (i < argc && std::string(argv[i]) == "shim") ++i;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) out->command.emplace_back(argv[i]);
      break;
    }
    if (i + 1 >= argc) {
      *error = "option " + arg + " needs a value";
      return false;
    }
    std::string value = argv[++i];
    if (arg == "--run-dir") {
      out->run_dir = value;
    } else if (arg == "--log") {
      out->log_path = value;
    } else if (arg == "--uid" || arg == "--gid") {
      char* end = nullptr;
      unsigned long n = std::strtoul(value.c_str(), &end, 10);
      if (end == value.c_str() || *end != '\0' || n == 0) {
        *error = arg + " needs a positive number, not \"" + value + "\"";
        return false;
      }
      (arg == "--uid" ? out->sandbox.uid : out->sandbox.gid) = static_cast<uid_t>(n);
    } else if (arg == "--hide") {
      out->sandbox.hide = value;
    } else if (arg == "--bind" || arg == "--bind-ro") {
      if (!ParseBind(value, arg == "--bind-ro", out)) {
        *error = arg + " needs \"SOURCE\\nTARGET\"";
        return false;
      }
    } else if (arg == "--mask-env") {
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        if (comma == std::string::npos) comma = value.size();
        if (comma > start) out->mask_env.push_back(value.substr(start, comma - start));
        start = comma + 1;
      }
    } else if (arg == "--log-max-bytes") {
      char* end = nullptr;
      unsigned long long n = std::strtoull(value.c_str(), &end, 10);
      if (end == value.c_str() || *end != '\0' || n == 0) {
        *error = "--log-max-bytes needs a positive number, not \"" + value + "\"";
        return false;
      }
      out->log_max_bytes = static_cast<size_t>(n);
    } else {
      *error = "unknown option " + arg;
      return false;
    }
  }
  if (out->run_dir.empty() || out->log_path.empty() || out->command.empty()) {
    *error =
        "usage: slipway shim --run-dir DIR --log FILE [--log-max-bytes N] [--mask-env A,B] "
        "[--uid N --gid N --hide DIR --bind[-ro] SRC\\nDST...] -- COMMAND...";
    return false;
  }
  return true;
}

void WriteAllFd(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // disk full or similar: the app keeps running, the lines are lost
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

// The replica's log: timestamped lines, appended, rotated to "<path>.1" past a size.
class LogWriter {
 public:
  // Secrets in `masker` are written as *** (a secret split across reads too).
  LogWriter(std::string path, size_t max_bytes, std::shared_ptr<const Masker> masker)
      : path_(std::move(path)),
        max_bytes_(max_bytes),
        lines_(std::move(masker), kMaxLogLineBytes,
               [this](std::string_view line) { AddLine(line); }) {}
  ~LogWriter() {
    if (fd_ >= 0) close(fd_);
  }

  Status Open() {
    fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) return ErrnoStatus("log file " + path_, errno);
    struct stat st {};
    size_ = fstat(fd_, &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
    return Status::Ok();
  }

  // Takes raw output; complete lines are written, the rest waits for more.
  void Add(const char* data, size_t size) {
    lines_.Add(std::string_view(data, size));
    Flush();
  }

  // Writes a last line without its newline, if any.
  void Finish() {
    lines_.Finish();
    Flush();
  }

 private:
  void AddLine(std::string_view line) {
    while (line.size() > kMaxLogLineBytes) {
      AddLine(line.substr(0, kMaxLogLineBytes));
      line.remove_prefix(kMaxLogLineBytes);
    }
    std::string entry = FormatTimestamp(UnixMillis(clock_));
    entry += ' ';
    entry += line;
    entry += '\n';
    // Rotate on a line boundary, before the line that would take the file past the limit.
    size_t before = size_ + out_.size();
    if (before > 0 && before + entry.size() > max_bytes_) {
      Flush();
      Rotate();
    }
    out_ += entry;
  }

  void Flush() {
    if (out_.empty() || fd_ < 0) {
      out_.clear();
      return;
    }
    WriteAllFd(fd_, out_.data(), out_.size());
    size_ += out_.size();
    out_.clear();
  }

  void Rotate() {
    std::string old = path_ + ".1";
    if (rename(path_.c_str(), old.c_str()) != 0) return;  // keep appending to the same file
    int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    close(fd_);
    fd_ = fd;
    size_ = 0;
  }

  std::string path_;
  size_t max_bytes_;
  int fd_ = -1;
  size_t size_ = 0;
  std::string out_;
  RealClock clock_;
  MaskingLineBuffer lines_;
};

std::string Join(const std::string& dir, const char* name) { return dir + "/" + name; }

void RecordShimError(const std::string& run_dir, const std::string& message) {
  (void)WriteFileAtomic(Join(run_dir, kShimErrorFile), message + "\n");
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Pids of this process's live children (the shim is a subreaper, so orphans of the app
// land here).
std::vector<pid_t> LiveChildren() {
  std::vector<pid_t> out;
  std::string self = std::to_string(getpid());
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto stat = ReadFile("/proc/" + name + "/stat");
    if (!stat.ok()) continue;
    auto close_paren = stat->rfind(')');
    if (close_paren == std::string::npos || close_paren + 2 >= stat->size()) continue;
    char state = (*stat)[close_paren + 2];
    size_t ppid_start = close_paren + 4;
    size_t ppid_end = stat->find(' ', ppid_start);
    if (ppid_end == std::string::npos) continue;
    if (state != 'Z' && state != 'X' &&
        stat->compare(ppid_start, ppid_end - ppid_start, self) == 0) {
      out.push_back(static_cast<pid_t>(std::stol(name)));
    }
  }
  return out;
}

void ReapExitedChildren() {
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

// After the app is gone: kill whatever of its tree is left (its group, and orphans that
// left the group and were reparented to the shim) and reap it, so no zombie is handed
// to an init that does not reap. Bounded: a process stuck in the kernel is left behind.
void KillLeftovers(pid_t app_pgid) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    kill(-app_pgid, SIGKILL);
    std::vector<pid_t> children = LiveChildren();
    for (pid_t child : children) kill(child, SIGKILL);
    ReapExitedChildren();
    if (children.empty() && !ProcessGroupAlive(app_pgid)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

int ShimMain(int argc, char** argv) {
  ShimArgs args;
  std::string error;
  if (!ParseArgs(argc, argv, &args, &error)) {
    std::fprintf(stderr, "slipway shim: %s\n", error.c_str());
    return 2;
  }

  // The shim must not keep the server's terminal or pipes open.
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
    if (devnull > 2) close(devnull);
  }

  if (Status st = MakeDirs(args.run_dir); !st.ok()) return 1;
  const std::string& run_dir = args.run_dir;

  std::string shim_pid =
      std::to_string(getpid()) + " " + std::to_string(ProcessStartTime(getpid())) + "\n";
  if (Status st = WriteFileAtomic(Join(run_dir, kShimPidFile), shim_pid); !st.ok()) {
    RecordShimError(run_dir, st.message());
    return 1;
  }

  std::vector<std::string> secrets;
  for (const auto& name : args.mask_env) {
    if (const char* value = getenv(name.c_str())) secrets.emplace_back(value);
  }
  LogWriter log(args.log_path, args.log_max_bytes,
                std::make_shared<const Masker>(std::move(secrets)));
  if (Status st = log.Open(); !st.ok()) {
    RecordShimError(run_dir, st.message());
    return 1;
  }

  // Orphans of the app are reparented here rather than to init, which does not
  // necessarily reap them; the shim kills and reaps them when the app exits.
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  // Signals are read from a signalfd in the main loop; blocked before the fork so none
  // is lost, unblocked again in the app.
  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&handled, sig);
  sigset_t old_mask;
  sigprocmask(SIG_BLOCK, &handled, &old_mask);
  signal(SIGPIPE, SIG_IGN);
  int sig_fd = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sig_fd < 0) {
    RecordShimError(run_dir, ErrnoStatus("signalfd", errno).message());
    return 1;
  }

  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    RecordShimError(run_dir, ErrnoStatus("pipe", errno).message());
    return 1;
  }

  std::vector<char*> app_argv;
  for (auto& a : args.command) app_argv.push_back(a.data());
  app_argv.push_back(nullptr);
  // The app's working directory is the shim's (the release); it is entered again inside
  // the sandbox, where the path shows the bound release rather than the hidden one.
  std::error_code cwd_error;
  const std::string cwd = std::filesystem::current_path(cwd_error).string();
  auto sandbox = PreparedSandbox::Prepare(args.sandbox);
  if (!sandbox.ok()) {
    RecordShimError(run_dir, sandbox.status().message());
    return 1;
  }

  pid_t app = fork();
  if (app < 0) {
    RecordShimError(run_dir, ErrnoStatus("fork", errno).message());
    return 1;
  }
  if (app == 0) {
    setpgid(0, 0);
    for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int in = open("/dev/null", O_RDONLY);
    if (in >= 0) dup2(in, 0);
    dup2(out_pipe[1], 1);
    dup2(out_pipe[1], 2);
    const char* step = nullptr;
    if (int e = sandbox->Enter(&step); e != 0) {
      const char* prefix = "slipway shim: cannot isolate the app: ";
      WriteAllFd(2, prefix, strlen(prefix));
      WriteAllFd(2, step, strlen(step));
      WriteAllFd(2, ": ", 2);
      WriteAllFd(2, strerror(e), strlen(strerror(e)));
      WriteAllFd(2, "\n", 1);
      _exit(126);
    }
    if (sandbox->enabled() && chdir(cwd.c_str()) != 0) _exit(126);
    execv(app_argv[0], app_argv.data());
    const char* what = strerror(errno);
    const char* prefix = "slipway shim: cannot run ";
    WriteAllFd(2, prefix, strlen(prefix));
    WriteAllFd(2, app_argv[0], strlen(app_argv[0]));
    WriteAllFd(2, ": ", 2);
    WriteAllFd(2, what, strlen(what));
    WriteAllFd(2, "\n", 1);
    _exit(127);
  }
  setpgid(app, app);  // also here, so the group exists before anyone signals it
  close(out_pipe[1]);
  int out_fd = out_pipe[0];
  fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) | O_NONBLOCK);

  (void)WriteFileAtomic(Join(run_dir, kAppPidFile), std::to_string(app) + "\n");

  char buf[65536];
  // Reads what the pipe holds now; false once every writer has closed it.
  auto drain = [&]() {
    while (true) {
      ssize_t n = read(out_fd, buf, sizeof(buf));
      if (n > 0) {
        log.Add(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0;  // EAGAIN: still open; 0: closed
    }
  };

  bool pipe_open = true;
  int exit_code = -1;
  while (exit_code < 0) {
    pollfd fds[2] = {{sig_fd, POLLIN, 0}, {pipe_open ? out_fd : -1, POLLIN, 0}};
    int r = poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pipe_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) pipe_open = drain();

    signalfd_siginfo info;
    while (read(sig_fd, &info, sizeof(info)) == sizeof(info)) {
      if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) kill(-app, SIGTERM);
      // SIGHUP: ignored, the app outlives a closed terminal. SIGCHLD: handled below.
    }

    // Children that exit: the app (looked at without reaping it, so its pid, and with it
    // the group id, stays reserved until the group has been killed) and orphans of it.
    while (true) {
      siginfo_t child{};
      if (waitid(P_ALL, 0, &child, WEXITED | WNOHANG | WNOWAIT) != 0 || child.si_pid == 0) break;
      if (child.si_pid != app) {
        waitpid(child.si_pid, nullptr, 0);
        continue;
      }
      pipe_open = pipe_open && drain();
      kill(-app, SIGKILL);
      int status = 0;
      while (waitpid(app, &status, 0) < 0 && errno == EINTR) {
      }
      exit_code = DecodeWaitStatus(status);
      break;
    }
  }
  if (exit_code < 0) exit_code = 255;  // poll failed: nothing sensible left to do

  KillLeftovers(app);
  if (pipe_open) drain();
  log.Finish();
  close(out_fd);
  close(sig_fd);
  (void)WriteFileAtomic(Join(run_dir, kExitFile), std::to_string(exit_code) + "\n");
  return 0;
}

}  // namespace slipway
