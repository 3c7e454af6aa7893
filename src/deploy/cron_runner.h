#pragma once

// CronRunner: runs cron services on their schedules.
//
// A cron service's active deployment has no replicas; at each slot of its 5-field UTC
// schedule (common/cron.h) the runner starts its start command as a one-off process of
// that deployment's release, under a shim (supervisor/supervisor.h) so the run outlives
// a restart of the daemon and is adopted by the next one. The engine builds each run's
// process (environment, sandbox, log file, run dir: CronSpecFor). Every run is recorded
// in the store (CronRunRecord): trigger, slot, start, end, exit code, log file.
//
// Rules a user can count on:
//   - A slot runs at most once per service, whatever deploys or daemon restarts happen
//     (the store enforces one run per slot). A slot that passed while no daemon ran is
//     not caught up: the next one runs.
//   - A slot that comes while the service's previous run (of any deployment) is still
//     going does not start a second one: it is recorded as SKIPPED with the reason. A
//     manual run is refused then, with the same reason.
//   - A deploy never stops a running run: it finishes in the release it started in
//     (Busy() tells the engine to keep that deployment DRAINING until then).
//
// Thread-safety: every method may be called from any thread. Tick() runs on a thread of
// the runner's own about every 250 ms; tests may call it themselves (with a ManualClock).

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/cron.h"
#include "common/status.h"
#include "store/store.h"
#include "supervisor/supervisor.h"

namespace slipway {

// The process of run `run_id` of deployment `deployment_id`: command, cwd, env,
// sandbox, log_path and run_dir.
using CronSpecFor = std::function<Result<ReplicaSpec>(int64_t deployment_id, int64_t run_id)>;

struct CronJob {
  int64_t service_id = 0;
  int64_t deployment_id = 0;  // the active deployment, whose release runs
  std::string label;          // "project/service" for the daemon's log
  std::string schedule;       // cron expression (UTC)
};

class CronRunner {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  // `run_thread`: false for tests that call Tick() themselves.
  CronRunner(Store& store, Supervisor& supervisor, Clock& clock, CronSpecFor spec_for,
             bool run_thread = true);
  ~CronRunner();

  // Schedules the service's active deployment, replacing an earlier one of the
  // service (whose running run, if any, goes on). The next slot is the first after
  // now. kInvalidArgument for a schedule that does not parse.
  Status Schedule(const CronJob& job);
  // Stops scheduling the service (a running run goes on unless StopRuns).
  void Unschedule(int64_t service_id);

  // Starts a run of the service's scheduled deployment now (trigger "manual"), or
  // kFailedPrecondition naming the run still going, or when nothing is scheduled.
  Result<CronRunRecord> RunNow(int64_t service_id);

  // The next slot of the service; nullopt when it is not scheduled.
  std::optional<TimePoint> NextRun(int64_t service_id);
  std::optional<std::string> ScheduleOf(int64_t service_id);
  // True while a run of that deployment is going.
  bool Busy(int64_t deployment_id);

  // At daemon start: takes over the runs a previous daemon left RUNNING (those whose
  // process ended meanwhile are recorded with the exit code their shim wrote).
  void Recover();

  // Records runs that ended; starts (or skips) the runs whose slot has come.
  void Tick();

  // Stops the runs of a service (SIGTERM, SIGKILL after `grace`), recorded FAILED with
  // `reason`.
  void StopRuns(int64_t service_id, std::chrono::milliseconds grace, const std::string& reason);

  // Stops the thread. With `stop_runs` every running run is stopped (recorded FAILED);
  // without, they go on for the next daemon to adopt.
  void Shutdown(bool stop_runs, std::chrono::milliseconds grace);

 private:
  struct Scheduled {
    CronJob job;
    CronSchedule schedule;
    TimePoint next;
  };
  struct Running {
    CronRunRecord record;
    ReplicaHandle handle;
  };

  Result<CronRunRecord> StartLocked(const Scheduled& s, const std::string& trigger, TimePoint slot);
  void FinishLocked(Running& run);
  void Loop();

  Store& store_;
  Supervisor& supervisor_;
  Clock& clock_;
  CronSpecFor spec_for_;

  std::mutex mu_;
  std::map<int64_t, Scheduled> scheduled_;           // service id ->; guarded by mu_
  std::map<int64_t, std::vector<Running>> running_;  // service id ->; guarded by mu_
  bool stopping_ = false;                            // guarded by mu_
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace slipway
