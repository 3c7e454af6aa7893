#include "deploy/cron_runner.h"

#include <spdlog/spdlog.h>

#include <condition_variable>

#include "common/fs.h"
#include "common/subprocess.h"

namespace slipway {

namespace {

constexpr auto kTickInterval = std::chrono::milliseconds(250);
// Slots further back than this are not run late (a daemon that was stopped, a clock
// that jumped): the latest due slot runs, older ones are passed over.
constexpr int kMaxSlotsWalked = 100'000;

int64_t Millis(CronRunner::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

CronRunner::CronRunner(Store& store, Supervisor& supervisor, Clock& clock, CronSpecFor spec_for,
                       bool run_thread)
    : store_(store), supervisor_(supervisor), clock_(clock), spec_for_(std::move(spec_for)) {
  if (run_thread) thread_ = std::thread([this] { Loop(); });
}

CronRunner::~CronRunner() { Shutdown(false, std::chrono::milliseconds(0)); }

Status CronRunner::Schedule(const CronJob& job) {
  ASSIGN_OR_RETURN(CronSchedule schedule, CronSchedule::Parse(job.schedule));
  auto next = schedule.Next(clock_.Now());
  if (!next) return InvalidArgument("cron schedule \"" + job.schedule + "\" never runs");
  std::lock_guard<std::mutex> lock(mu_);
  scheduled_.insert_or_assign(job.service_id, Scheduled{job, std::move(schedule), *next});
  return Status::Ok();
}

void CronRunner::Unschedule(int64_t service_id) {
  std::lock_guard<std::mutex> lock(mu_);
  scheduled_.erase(service_id);
}

std::optional<CronRunner::TimePoint> CronRunner::NextRun(int64_t service_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = scheduled_.find(service_id);
  if (it == scheduled_.end()) return std::nullopt;
  return it->second.next;
}

std::optional<std::string> CronRunner::ScheduleOf(int64_t service_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = scheduled_.find(service_id);
  if (it == scheduled_.end()) return std::nullopt;
  return it->second.job.schedule;
}

bool CronRunner::Busy(int64_t deployment_id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [service, runs] : running_) {
    for (const Running& r : runs) {
      if (r.record.deployment_id == deployment_id) return true;
    }
  }
  return false;
}

Result<CronRunRecord> CronRunner::RunNow(int64_t service_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = scheduled_.find(service_id);
  if (it == scheduled_.end()) {
    return FailedPrecondition("the cron service has no active deployment to run; deploy it first");
  }
  auto& runs = running_[service_id];
  if (!runs.empty()) {
    const CronRunRecord& r = runs.front().record;
    return FailedPrecondition(it->second.job.label + ": run " + std::to_string(r.id) +
                              " (started " + FormatTimestamp(r.started_at) +
                              ") is still going; a cron service runs one at a time");
  }
  return StartLocked(it->second, "manual", clock_.Now());
}

Result<CronRunRecord> CronRunner::StartLocked(const Scheduled& s, const std::string& trigger,
                                              TimePoint slot) {
  const int64_t now = UnixMillis(clock_);
  CronRunRecord record;
  record.service_id = s.job.service_id;
  record.deployment_id = s.job.deployment_id;
  record.trigger = trigger;
  record.scheduled_for = trigger == "manual" ? now : Millis(slot);
  record.status = kRunRunning;
  record.started_at = now;
  ASSIGN_OR_RETURN(record, store_.CreateCronRun(record));

  auto fail = [&](const std::string& why) -> Status {
    record.status = kRunFailed;
    record.message = why;
    record.finished_at = UnixMillis(clock_);
    (void)store_.UpdateCronRun(record);
    spdlog::warn("{}: cron run {} did not start: {}", s.job.label, record.id, why);
    return FailedPrecondition(s.job.label + ": run " + std::to_string(record.id) +
                              " did not start: " + why);
  };
  auto spec = spec_for_(s.job.deployment_id, record.id);
  if (!spec.ok()) return fail(spec.status().message());
  record.log_path = spec->log_path;
  record.run_dir = spec->run_dir;
  auto handle = supervisor_.Start(*spec);
  if (!handle.ok()) return fail(handle.status().message());
  record.shim_pid = handle->shim_pid;
  record.shim_start_time = static_cast<int64_t>(handle->shim_start_time);
  record.app_pid = handle->app_pid;
  (void)store_.UpdateCronRun(record);
  running_[s.job.service_id].push_back(Running{record, *handle});
  spdlog::info("{}: cron run {} started ({}, pid {})", s.job.label, record.id, trigger,
               record.app_pid);
  return record;
}

void CronRunner::FinishLocked(Running& run) {
  // The shim writes the exit status as the app ends; give it a moment to land.
  std::optional<int> code;
  for (int i = 0; i < 40 && !(code = supervisor_.ExitCode(run.handle)); ++i) {
    if (!ProcessAlive(run.handle.shim_pid, run.handle.shim_start_time)) {
      code = supervisor_.ExitCode(run.handle);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CronRunRecord& r = run.record;
  r.exit_code = code.value_or(-1);
  r.status = code && *code == 0 ? kRunSucceeded : kRunFailed;
  if (!code) r.message = "the run ended without an exit status (its monitor was killed)";
  r.finished_at = UnixMillis(clock_);
  (void)store_.UpdateCronRun(r);
  if (!r.run_dir.empty()) (void)RemoveTree(r.run_dir);
  spdlog::info("cron run {} of service {} {} (exit {}) after {} ms", r.id, r.service_id, r.status,
               r.exit_code, r.finished_at - r.started_at);
}

void CronRunner::Tick() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  for (auto& [service, runs] : running_) {
    std::erase_if(runs, [&](Running& run) {
      if (supervisor_.Running(run.handle)) return false;
      FinishLocked(run);
      return true;
    });
  }
  const TimePoint now = clock_.Now();
  for (auto& [service, s] : scheduled_) {
    if (s.next > now) continue;
    // The latest slot that has come; older ones are passed over.
    TimePoint slot = s.next;
    for (int i = 0; i < kMaxSlotsWalked; ++i) {
      auto after = s.schedule.Next(slot);
      if (!after || *after > now) break;
      slot = *after;
    }
    auto following = s.schedule.Next(now);
    s.next = following.value_or(TimePoint::max());
    auto& runs = running_[service];
    if (!runs.empty()) {
      const CronRunRecord& busy = runs.front().record;
      CronRunRecord skipped;
      skipped.service_id = service;
      skipped.deployment_id = s.job.deployment_id;
      skipped.trigger = "schedule";
      skipped.scheduled_for = Millis(slot);
      skipped.status = kRunSkipped;
      skipped.message = "run " + std::to_string(busy.id) + " (started " +
                        FormatTimestamp(busy.started_at) + ") was still going";
      skipped.finished_at = UnixMillis(clock_);
      if (store_.CreateCronRun(skipped).ok()) {
        spdlog::warn("{}: the run at {} is skipped: {}", s.job.label, FormatTimestamp(Millis(slot)),
                     skipped.message);
      }
      continue;
    }
    auto started = StartLocked(s, "schedule", slot);
    if (!started.ok() && started.status().code() == StatusCode::kAlreadyExists) {
      // This slot ran already (before a restart of the daemon): nothing to do.
      continue;
    }
  }
}

void CronRunner::Recover() {
  auto runs = store_.ListRunningCronRuns();
  if (!runs.ok()) {
    spdlog::error("cron runs: {}", runs.status().message());
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const CronRunRecord& record : *runs) {
    Running run{record, ReplicaHandle{}};
    run.handle.run_dir = record.run_dir;
    if (auto handle = supervisor_.Adopt(record.run_dir); handle.ok()) {
      run.handle = *handle;
      if (supervisor_.Running(run.handle)) {
        spdlog::info("cron run {} of service {}: adopted (pid {})", record.id, record.service_id,
                     run.handle.app_pid);
        running_[record.service_id].push_back(std::move(run));
        continue;
      }
    }
    FinishLocked(run);
  }
}

void CronRunner::StopRuns(int64_t service_id, std::chrono::milliseconds grace,
                          const std::string& reason) {
  std::vector<Running> runs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = running_.find(service_id);
    if (it == running_.end()) return;
    runs.swap(it->second);
  }
  for (Running& run : runs) {
    (void)supervisor_.Stop(run.handle, grace);
    run.record.status = kRunFailed;
    run.record.exit_code = supervisor_.ExitCode(run.handle).value_or(-1);
    run.record.message = reason;
    run.record.finished_at = UnixMillis(clock_);
    (void)store_.UpdateCronRun(run.record);
    if (!run.record.run_dir.empty()) (void)RemoveTree(run.record.run_dir);
  }
}

void CronRunner::Shutdown(bool stop_runs, std::chrono::milliseconds grace) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (!stop_runs) return;
  std::vector<int64_t> services;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [service, runs] : running_) services.push_back(service);
  }
  for (int64_t service : services) {
    StopRuns(service, grace, "stopped: Slipway was stopped (Ctrl-C) during the run");
  }
}

void CronRunner::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, kTickInterval, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    Tick();
    lock.lock();
  }
}

}  // namespace slipway
