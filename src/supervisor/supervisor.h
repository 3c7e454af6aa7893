#pragma once

// Supervisor: runs app replicas and checks their health.
//
// Each replica runs under its own `slipway shim` process (like containerd-shim):
// the shim is started detached from the server (its own session, not the server's
// child), starts the app in a new process group, writes the app's stdout/stderr to
// the replica's log file line by line with timestamps, and records the app's exit
// status in its run directory. So the server can die and come back: a new server
// re-adopts running replicas from their handles (stored durably by the caller).
//
// Run directory files written by the shim:
//   shim.pid   "<shim pid> <shim start time>"   written before the app starts
//   app.pid    "<app pid>"                       the app's process group leader
//   exit       "<exit code>"                     128+signal if killed; written at app exit
//
// Log line format: "2026-11-21T23:31:53.123Z <text>\n" (stdout and stderr merged).
//
// Thread-safety: all methods may be called from any thread.

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/subprocess.h"

namespace slipway {

struct ReplicaSpec {
  // Shell command, run as `/bin/sh -c "exec <command>"` when it is one simple command;
  // as `/bin/sh -c "<command>"` when `exec` would break it (`cd x && y`, `A=1 y`, `exit 3`).
  std::string command;
  std::string cwd;       // the release's app directory
  EnvMap env;            // the app's whole environment, PORT included
  std::string log_path;  // appended to
  std::string run_dir;   // created if missing; holds the shim's files
  SandboxSpec sandbox;   // the app's isolation (common/sandbox.h); disabled: none
  // Names of variables of `env` whose values are secrets: the shim masks them as *** in
  // the log. Only the names travel (in the shim's argv); the shim reads the values from
  // its environment, which is the app's.
  std::vector<std::string> mask_env;
};

struct ReplicaHandle {
  pid_t shim_pid = 0;
  unsigned long long shim_start_time = 0;
  pid_t app_pid = 0;
  std::string run_dir;
};

class Supervisor {
 public:
  // `slipway_exe`: absolute path of the slipway binary, run as `<exe> shim ...`.
  Supervisor(std::string slipway_exe, Clock& clock);

  // Starts a replica and returns once the shim has started the app (app.pid written).
  // Errors: kInternal when the shim cannot be started, kNotFound for a missing cwd,
  // kInvalidArgument for an empty command, kFailedPrecondition when a replica is still
  // running in spec.run_dir.
  Result<ReplicaHandle> Start(const ReplicaSpec& spec);

  // True while the app is running (shim alive and no exit file).
  bool Running(const ReplicaHandle& handle) const;

  // The app's exit code once it has exited, read from the run dir.
  std::optional<int> ExitCode(const ReplicaHandle& handle) const;

  // `stop_signal` (SIGTERM unless given; e.g. SIGINT for PostgreSQL's fast shutdown) to
  // the app's group, then SIGKILL after `grace`; returns when both the app group and the
  // shim are gone. Safe on a replica that already exited.
  // Waits on processes (here and in Start) run in real time whatever the clock: what
  // they wait for is the kernel.
  Status Stop(const ReplicaHandle& handle, std::chrono::milliseconds grace,
              int stop_signal = SIGTERM);

  // Reads a handle back from a run dir (after a server restart). kNotFound when the
  // shim is no longer running.
  Result<ReplicaHandle> Adopt(const std::string& run_dir) const;

 private:
  std::string slipway_exe_;
  Clock& clock_;
};

// Entry point of `slipway shim --run-dir D --log F [--log-max-bytes N] [--mask-env A,B]
// -- CMD...`
// (argv[0] the binary, argv[1] "shim"; an argv without "shim" is accepted too). Returns
// the process exit code: 0 once the app's exit is recorded, 2 for bad arguments, 1 when
// the app could not be started (reason in run_dir/shim.error). --log-max-bytes (default
// 32 MiB) is when the log is rotated to "<log>.1".
int ShimMain(int argc, char** argv);

struct HealthCheckSpec {
  int port = 0;             // on 127.0.0.1
  std::string path;         // "" : a TCP connection being accepted is healthy
  std::string host_header;  // sent as Host (the service's public host)
  std::chrono::seconds timeout{60};
  std::chrono::milliseconds interval{250};
};

// Polls until the check passes (2xx for a path; accepted connection without one), the
// timeout passes, or `still_running()` returns false (the app exited).
// Errors: kDeadlineExceeded "health check /api/health timed out after 30s (last: HTTP 503)",
//         "... (last: connection refused)", or without a path
//         "health check (port 31337 accepting connections) timed out after 30s";
//         kUnavailable "app exited before its health check passed" (the caller, which
//         knows the exit code and the log, adds them).
// Each attempt has a timeout of min(2s, time left); `clock` times the check and its
// interval sleeps, so a ManualClock runs it without real waiting.
Status WaitHealthy(const HealthCheckSpec& spec, Clock& clock,
                   const std::function<bool()>& still_running);

// A free TCP port on 127.0.0.1 (bound and released; the caller should use it soon).
Result<int> PickFreePort();

}  // namespace slipway
