#pragma once

// Subprocess: spawning and waiting for child processes, the one place Slipway
// calls fork/exec for commands it waits on (builds, health probes, one-off runs).
// Long-lived app replicas are started by the supervisor through `slipway shim`.
//
// Thread-safety: a Process is used by one thread at a time; spawning from several
// threads at once is safe (every descriptor is opened O_CLOEXEC).

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/sandbox.h"
#include "common/status.h"

namespace slipway {

using EnvMap = std::map<std::string, std::string>;

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in env's PATH if it has no '/'
  EnvMap env;                     // the child's whole environment
  std::string cwd;                // empty: inherit
  bool new_process_group = true;  // the child leads its own group, killed as a whole
  bool die_with_parent = true;    // PR_SET_PDEATHSIG(SIGKILL) on the direct child
  bool capture_output = true;     // stdout+stderr merged into a pipe read by the caller
  // With capture_output: stderr is appended to this file (created 0600) instead, so the
  // pipe carries stdout alone (a CGI's answer). "": merged into the pipe.
  std::string stderr_path;
  std::string stdin_path = "/dev/null";
  SandboxSpec sandbox;  // entered before cwd is changed to (cwd is a path inside it)
};

class Process {
 public:
  ~Process();  // kills the process group if still running, and reaps it
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Errors: kNotFound when argv[0] cannot be found, kInternal for fork/pipe failures.
  static Result<std::unique_ptr<Process>> Spawn(const SpawnOptions& options);

  pid_t pid() const { return pid_; }
  // Read end of the merged output pipe (-1 without capture_output). Owned by Process.
  int output_fd() const { return output_fd_; }

  // Blocks until exit. Returns the exit code, or 128+signal when killed by a signal.
  int Wait();
  // Non-blocking: true and sets *code when the child has exited.
  bool TryWait(int* code);
  // Signals the whole process group (or the process alone without one).
  void Signal(int sig);

 private:
  Process() = default;
  pid_t pid_ = -1;
  int output_fd_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
  bool own_group_ = false;
};

struct CommandOutcome {
  int exit_code = -1;      // 128+signal when killed by a signal
  bool timed_out = false;  // the timeout passed and the group was killed
  bool cancelled = false;  // `cancelled` returned true and the group was killed
};

struct RunOptions {
  std::chrono::milliseconds timeout{std::chrono::hours(1)};
  std::function<void(std::string_view line)> on_line;  // each output line, without '\n'
  std::function<bool()> cancelled;                     // polled a few times a second
  std::function<void(pid_t)> on_started;               // e.g. to record the pgid durably
};

// Runs a command to completion, streaming its merged output line by line.
Result<CommandOutcome> RunCommand(const SpawnOptions& spawn, const RunOptions& run);

struct DetachedSpec {
  std::vector<std::string> argv;  // argv[0] must be an absolute path
  EnvMap env;                     // the process's whole environment
  std::string cwd = "/";
  std::string output_path;  // stdout and stderr appended here (created 0644); "": /dev/null
};

// Starts a process detached from the caller: in a session of its own, through an
// intermediate process that exits at once, so it is not the caller's child, is in none of
// its process groups and outlives it. It gets stdin from /dev/null, no other inherited
// descriptor, default signal dispositions and an empty signal mask. Returns its pid
// once it was exec'd. Errors: "working directory <cwd>: <errno text>" (kNotFound etc. by
// errno) when it cannot change there, kInternal "cannot start <argv[0]>: ..." when exec
// fails, or the fork's errno.
Result<pid_t> SpawnDetached(const DetachedSpec& spec);

// Looks `name` up in `path` (colon-separated); "" when not found.
std::string FindExecutable(const std::string& name, const std::string& path);

// The environment of this process as a map.
EnvMap CurrentEnvironment();

// True when a process with this pid exists and is not a zombie; when
// `start_time` is non-zero it must also match (guards against pid reuse).
bool ProcessAlive(pid_t pid, unsigned long long start_time = 0);
// True when any live (non-zombie) process is in process group `pgid`.
bool ProcessGroupAlive(pid_t pgid);
// The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); 0 if gone.
unsigned long long ProcessStartTime(pid_t pid);

}  // namespace slipway
