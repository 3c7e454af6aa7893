// CronRunner with real processes (under shims) and a manual clock: runs fire at their
// slot in UTC, once per slot across restarts, overlapping slots are skipped and
// recorded, a rescheduled (redeployed) service lets its running run finish, and a new
// runner adopts a run left going.

#include "deploy/cron_runner.h"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <string>

#include "common/fs.h"
#include "test_util.h"

namespace slipway {
namespace {

using namespace std::chrono_literals;
using supervisor_testing::PollUntil;
using supervisor_testing::SelfExe;
using supervisor_testing::TempDir;

std::chrono::system_clock::time_point Utc(int y, int mo, int d, int h, int mi, int s = 0) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

class CronRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open(dir_.path() + "/state.db", clock_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto project = store_->EnsureProject("climbiq");
    ASSERT_TRUE(project.ok());
    auto env = store_->GetEnvironment(project->id, "production");
    ASSERT_TRUE(env.ok());
    auto svc = store_->EnsureService(project->id, env->id, "nightly");
    ASSERT_TRUE(svc.ok());
    service_id_ = svc->id;
    first_ = NewDeployment();
    second_ = NewDeployment();
  }

  int64_t NewDeployment() {
    auto dep = store_->CreateDeployment(service_id_, "upload", "{}");
    EXPECT_TRUE(dep.ok());
    return dep.ok() ? dep->id : 0;
  }

  // Each deployment's "release" is a command; runs log to <dir>/run-<id>.log.
  std::unique_ptr<CronRunner> NewRunner() {
    return std::make_unique<CronRunner>(
        *store_, supervisor_, clock_,
        [this](int64_t deployment_id, int64_t run_id) -> Result<ReplicaSpec> {
          ReplicaSpec spec;
          spec.command = commands_[deployment_id];
          spec.cwd = dir_.path();
          spec.env = {{"PATH", "/usr/bin:/bin"}, {"DEPLOYMENT", std::to_string(deployment_id)}};
          spec.log_path = dir_.path() + "/run-" + std::to_string(run_id) + ".log";
          spec.run_dir = dir_.path() + "/rundir-" + std::to_string(run_id);
          return spec;
        },
        /*run_thread=*/false);
  }

  CronJob Job(int64_t deployment_id, const std::string& schedule = "0 2 * * *") {
    return CronJob{service_id_, deployment_id, "climbiq/nightly", schedule};
  }

  std::vector<CronRunRecord> Runs() {
    auto runs = store_->ListCronRuns(service_id_, 0);
    EXPECT_TRUE(runs.ok());
    return runs.ok() ? *runs : std::vector<CronRunRecord>{};
  }

  // Ticks until no run is RUNNING (real processes end in real time).
  bool TickUntilIdle(CronRunner& runner) {
    return PollUntil([&] {
      runner.Tick();
      for (const auto& r : Runs()) {
        if (r.status == kRunRunning) return false;
      }
      return true;
    });
  }

  TempDir dir_;
  ManualClock clock_{Utc(2026, 12, 4, 1, 59, 30)};
  Supervisor supervisor_{SelfExe(), clock_};
  std::unique_ptr<Store> store_;
  int64_t service_id_ = 0;
  int64_t first_ = 0;
  int64_t second_ = 0;
  std::map<int64_t, std::string> commands_;
};

TEST_F(CronRunnerTest, RunsAtTheSlotInUtcAndRecordsExitCodeDurationAndLog) {
  commands_[first_] = "echo nightly from $DEPLOYMENT; exit 3";
  auto runner = NewRunner();
  ASSERT_TRUE(runner->Schedule(Job(first_)).ok());
  ASSERT_TRUE(runner->NextRun(service_id_).has_value());
  EXPECT_EQ(*runner->NextRun(service_id_), Utc(2026, 12, 4, 2, 0));
  runner->Tick();
  EXPECT_TRUE(Runs().empty()) << "nothing runs before 02:00";

  clock_.Advance(30s);  // 02:00:00
  runner->Tick();
  auto runs = Runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].trigger, "schedule");
  EXPECT_EQ(runs[0].scheduled_for, UnixMillis(clock_));
  EXPECT_EQ(runs[0].deployment_id, first_);
  EXPECT_EQ(*runner->NextRun(service_id_), Utc(2026, 12, 5, 2, 0));
  clock_.Advance(1500ms);
  ASSERT_TRUE(TickUntilIdle(*runner));
  runs = Runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, kRunFailed);
  EXPECT_EQ(runs[0].exit_code, 3);
  EXPECT_GE(runs[0].finished_at - runs[0].started_at, 1500);
  auto log = ReadFile(runs[0].log_path);
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("nightly from " + std::to_string(first_)), std::string::npos) << *log;
  EXPECT_FALSE(PathExists(runs[0].run_dir)) << "a finished run's run dir is removed";

  // The rest of the day: no second run.
  clock_.Advance(std::chrono::hours(23) + std::chrono::minutes(58));
  runner->Tick();
  EXPECT_EQ(Runs().size(), 1u);
  clock_.Advance(std::chrono::minutes(2));  // past 02:00 on the 5th
  runner->Tick();
  ASSERT_TRUE(TickUntilIdle(*runner));
  EXPECT_EQ(Runs().size(), 2u);
}

TEST_F(CronRunnerTest, AnOverlappingSlotIsSkippedAndRecorded) {
  commands_[first_] = "exec sleep 600";
  auto runner = NewRunner();
  ASSERT_TRUE(runner->Schedule(Job(first_, "*/5 * * * *")).ok());
  clock_.Advance(std::chrono::minutes(1));  // 02:00:30
  runner->Tick();
  ASSERT_EQ(Runs().size(), 1u);
  clock_.Advance(std::chrono::minutes(5));  // 02:05:30, the first still sleeping
  runner->Tick();
  auto runs = Runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].status, kRunSkipped);
  EXPECT_EQ(runs[0].scheduled_for, UnixMillis(clock_) - 30'000);
  EXPECT_NE(runs[0].message.find("run " + std::to_string(runs[1].id)), std::string::npos)
      << runs[0].message;
  EXPECT_NE(runs[0].message.find("still going"), std::string::npos) << runs[0].message;
  EXPECT_EQ(runs[1].status, kRunRunning);
  auto manual = runner->RunNow(service_id_);
  ASSERT_FALSE(manual.ok());
  EXPECT_NE(manual.status().message().find("is still going"), std::string::npos);
  runner->StopRuns(service_id_, 0ms, "stopped by the test");
  runs = Runs();
  EXPECT_EQ(runs[0].status, kRunSkipped);
  EXPECT_EQ(runs[1].status, kRunFailed);
  EXPECT_EQ(runs[1].message, "stopped by the test");
  EXPECT_FALSE(runner->Busy(first_));
}

TEST_F(CronRunnerTest, ADeployLetsTheRunningRunFinishAndTheNewReleaseRunsNext) {
  const std::string flag = dir_.path() + "/go";
  commands_[first_] = "while [ ! -e " + flag + " ]; do sleep 0.05; done; echo old done";
  commands_[second_] = "echo new release";
  auto runner = NewRunner();
  ASSERT_TRUE(runner->Schedule(Job(first_, "*/5 * * * *")).ok());
  clock_.Advance(std::chrono::minutes(1));
  runner->Tick();
  ASSERT_TRUE(runner->Busy(first_));

  ASSERT_TRUE(runner->Schedule(Job(second_, "*/5 * * * *")).ok());  // a deploy
  runner->Tick();
  EXPECT_TRUE(runner->Busy(first_)) << "a deploy does not stop a running run";
  EXPECT_FALSE(runner->Busy(second_));
  ASSERT_TRUE(WriteFileAtomic(flag, "").ok());
  ASSERT_TRUE(TickUntilIdle(*runner));
  EXPECT_FALSE(runner->Busy(first_));
  auto runs = Runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, kRunSucceeded);
  EXPECT_EQ(runs[0].exit_code, 0);

  clock_.Advance(std::chrono::minutes(5));
  runner->Tick();
  ASSERT_TRUE(TickUntilIdle(*runner));
  runs = Runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].deployment_id, second_);
  auto log = ReadFile(runs[0].log_path);
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("new release"), std::string::npos);
}

TEST_F(CronRunnerTest, ASlotRunsOnceAcrossARestartAndARunLeftGoingIsAdopted) {
  const std::string flag = dir_.path() + "/go";
  commands_[first_] = "while [ ! -e " + flag + " ]; do sleep 0.05; done";
  auto runner = NewRunner();
  ASSERT_TRUE(runner->Schedule(Job(first_)).ok());
  clock_.Advance(30s);  // 02:00:00
  runner->Tick();
  ASSERT_EQ(Runs().size(), 1u);
  const int64_t pid = Runs()[0].app_pid;
  runner->Shutdown(/*stop_runs=*/false, 0ms);  // the daemon stops (SIGTERM)
  runner.reset();

  // A new daemon within the same minute: the run is adopted, the slot not run again.
  auto next = NewRunner();
  next->Recover();
  ASSERT_TRUE(next->Busy(first_));
  ASSERT_TRUE(next->Schedule(Job(first_)).ok());
  EXPECT_EQ(*next->NextRun(service_id_), Utc(2026, 12, 5, 2, 0));
  next->Tick();
  ASSERT_EQ(Runs().size(), 1u);
  EXPECT_EQ(Runs()[0].app_pid, pid);

  // Even a runner told the 02:00 slot is due (clock back at 01:59:59.9) cannot run it twice.
  ManualClock early(Utc(2026, 12, 4, 1, 59, 59));
  CronRunner again(
      *store_, supervisor_, early,
      [](int64_t, int64_t) -> Result<ReplicaSpec> { return Internal("unused"); }, false);
  ASSERT_TRUE(again.Schedule(Job(first_)).ok());
  early.Advance(1s);
  again.Tick();
  EXPECT_EQ(Runs().size(), 1u);

  ASSERT_TRUE(WriteFileAtomic(flag, "").ok());
  ASSERT_TRUE(TickUntilIdle(*next));
  EXPECT_EQ(Runs()[0].status, kRunSucceeded);
}

TEST_F(CronRunnerTest, ManualRunsAndBadSchedules) {
  commands_[first_] = "echo by hand";
  auto runner = NewRunner();
  EXPECT_EQ(runner->RunNow(service_id_).status().code(), StatusCode::kFailedPrecondition);
  auto bad = runner->Schedule(Job(first_, "0 25 * * *"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("hour 25 is out of range 0-23"), std::string::npos);
  ASSERT_TRUE(runner->Schedule(Job(first_)).ok());
  auto run = runner->RunNow(service_id_);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->trigger, "manual");
  ASSERT_TRUE(TickUntilIdle(*runner));
  auto runs = Runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, kRunSucceeded);
  // A manual run takes no schedule slot: 02:00 still runs.
  clock_.Advance(30s);
  runner->Tick();
  ASSERT_TRUE(TickUntilIdle(*runner));
  EXPECT_EQ(Runs().size(), 2u);
}

}  // namespace
}  // namespace slipway
