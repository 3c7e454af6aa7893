#include "supervisor/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/subprocess.h"
#include "supervisor/supervisor_impl.h"
#include "test_util.h"

namespace slipway {
namespace {

using namespace std::chrono_literals;
using supervisor_testing::PollUntil;
using supervisor_testing::SelfExe;
using supervisor_testing::TempDir;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// "2026-11-21T23:31:53.123Z text" -> "text"; "" (and a test failure) for a bad prefix.
std::string TextOf(const std::string& log_line) {
  static const std::regex kLine(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (.*)$)");
  std::smatch m;
  if (!std::regex_match(log_line, m, kLine)) {
    ADD_FAILURE() << "log line without a timestamp: " << log_line;
    return "";
  }
  return m[1];
}

std::vector<std::string> LogTexts(const std::string& path) {
  std::vector<std::string> texts;
  auto content = ReadFile(path);
  if (!content.ok()) return texts;
  for (const auto& line : Lines(*content)) texts.push_back(TextOf(line));
  return texts;
}

bool LogHas(const std::string& path, const std::string& needle) {
  auto content = ReadFile(path);
  return content.ok() && content->find(needle) != std::string::npos;
}

pid_t ReadPid(const std::string& path) {
  auto content = ReadFile(path);
  return content.ok() ? static_cast<pid_t>(std::atol(content->c_str())) : 0;
}

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    ASSERT_TRUE(MakeDirs(app_dir()).ok());
    supervisor_ = std::make_unique<Supervisor>(SelfExe(), clock_);
  }

  void TearDown() override {
    for (const auto& h : started_) {
      EXPECT_TRUE(supervisor_->Stop(h, 100ms).ok());
      EXPECT_FALSE(ProcessGroupAlive(h.app_pid)) << "app group " << h.app_pid << " left behind";
      EXPECT_FALSE(ProcessAlive(h.shim_pid, h.shim_start_time)) << "shim left behind";
    }
  }

  std::string app_dir() const { return dir_.path() + "/app"; }
  std::string log_path(const std::string& name) const {
    return dir_.path() + "/logs/" + name + ".log";
  }
  std::string run_dir(const std::string& name) const { return dir_.path() + "/run/" + name; }

  ReplicaSpec Spec(const std::string& name, const std::string& command) const {
    ReplicaSpec spec;
    spec.command = command;
    spec.cwd = app_dir();
    spec.env = {{"PATH", "/usr/bin:/bin"}, {"GREETING", "hello"}};
    spec.log_path = log_path(name);
    spec.run_dir = run_dir(name);
    return spec;
  }

  // Starts a replica that TearDown stops.
  ReplicaHandle StartOrDie(const ReplicaSpec& spec) {
    auto handle = supervisor_->Start(spec);
    EXPECT_TRUE(handle.ok()) << handle.status().ToString();
    if (!handle.ok()) return {};
    started_.push_back(*handle);
    return *handle;
  }

  bool ShimGone(const ReplicaHandle& h) const {
    return !ProcessAlive(h.shim_pid, h.shim_start_time);
  }

  TempDir dir_;
  RealClock clock_;
  std::unique_ptr<Supervisor> supervisor_;
  std::vector<ReplicaHandle> started_;
};

TEST_F(SupervisorTest, PythonHttpServerBecomesHealthyAndStops) {
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok()) << port.status().ToString();
  ReplicaSpec spec = Spec("web", "/usr/bin/python3 -m http.server --bind 127.0.0.1 $PORT");
  spec.env["PORT"] = std::to_string(*port);
  ReplicaHandle h = StartOrDie(spec);
  ASSERT_GT(h.app_pid, 0);
  EXPECT_TRUE(supervisor_->Running(h));
  EXPECT_EQ(h.run_dir, run_dir("web"));

  HealthCheckSpec check;
  check.port = *port;
  check.path = "/";
  check.timeout = 60s;
  check.interval = 50ms;
  Status healthy = WaitHealthy(check, clock_, [&] { return supervisor_->Running(h); });
  ASSERT_TRUE(healthy.ok()) << healthy.ToString();
  check.path = "";
  EXPECT_TRUE(WaitHealthy(check, clock_, [] { return true; }).ok());

  // http.server logs each request to stderr; the shim timestamps it into the log.
  EXPECT_TRUE(PollUntil([&] { return LogHas(spec.log_path, "\"GET / HTTP/1.1\" 200"); }))
      << ReadFile(spec.log_path).value();

  ASSERT_TRUE(supervisor_->Stop(h, 5s).ok());
  EXPECT_FALSE(supervisor_->Running(h));
  EXPECT_FALSE(ProcessGroupAlive(h.app_pid));
  EXPECT_TRUE(ShimGone(h));
  EXPECT_EQ(supervisor_->ExitCode(h), 128 + SIGTERM);
}

TEST_F(SupervisorTest, OutputLinesAreTimestampedInTheLog) {
  ReplicaHandle h = StartOrDie(
      Spec("echo", "echo \"$GREETING from stdout\"; echo to-stderr >&2; printf no-newline"));
  ASSERT_TRUE(PollUntil([&] { return ShimGone(h); }));
  EXPECT_EQ(supervisor_->ExitCode(h), 0);
  EXPECT_EQ(LogTexts(log_path("echo")),
            (std::vector<std::string>{"hello from stdout", "to-stderr", "no-newline"}));
}

TEST_F(SupervisorTest, LogAppendsAcrossRuns) {
  ReplicaSpec spec = Spec("twice", "echo run");
  ReplicaHandle first = StartOrDie(spec);
  ASSERT_TRUE(PollUntil([&] { return ShimGone(first); }));
  ReplicaHandle second = StartOrDie(spec);
  ASSERT_TRUE(PollUntil([&] { return ShimGone(second); }));
  EXPECT_EQ(LogTexts(spec.log_path), (std::vector<std::string>{"run", "run"}));
}

TEST_F(SupervisorTest, OverlongLinesAreSplit) {
  ReplicaHandle h = StartOrDie(Spec("long", "/usr/bin/python3 -c \"print('x' * 40000)\""));
  ASSERT_TRUE(PollUntil([&] { return ShimGone(h); }));
  EXPECT_EQ(supervisor_->ExitCode(h), 0);
  auto texts = LogTexts(log_path("long"));
  ASSERT_EQ(texts.size(), 3u);
  EXPECT_EQ(texts[0], std::string(16384, 'x'));
  EXPECT_EQ(texts[1], std::string(16384, 'x'));
  EXPECT_EQ(texts[2], std::string(40000 - 2 * 16384, 'x'));
}

TEST_F(SupervisorTest, ExitCodeIsRecorded) {
  ReplicaHandle h = StartOrDie(Spec("three", "exit 3"));
  ASSERT_TRUE(PollUntil([&] { return !supervisor_->Running(h); }));
  EXPECT_EQ(supervisor_->ExitCode(h), 3);
  EXPECT_TRUE(PollUntil([&] { return ShimGone(h); }));
}

TEST_F(SupervisorTest, DeathBySignalIsRecordedAs128PlusSignal) {
  ReplicaHandle h = StartOrDie(Spec("killed", "kill -KILL $$"));
  ASSERT_TRUE(PollUntil([&] { return !supervisor_->Running(h); }));
  EXPECT_EQ(supervisor_->ExitCode(h), 128 + SIGKILL);
}

TEST_F(SupervisorTest, RunsInTheWorkingDirectoryWithTheGivenEnvironment) {
  ReplicaHandle h = StartOrDie(Spec("env", "pwd; echo \"$GREETING\"; echo \"[$HOME]\""));
  ASSERT_TRUE(PollUntil([&] { return ShimGone(h); }));
  EXPECT_EQ(LogTexts(log_path("env")), (std::vector<std::string>{app_dir(), "hello", "[]"}));
}

TEST_F(SupervisorTest, StopKillsTheWholeGroupAndTheShim) {
  ReplicaHandle h = StartOrDie(Spec("group", "sleep 1000 & echo $! > bg.pid; echo started; wait"));
  ASSERT_TRUE(PollUntil([&] { return LogHas(log_path("group"), "started"); }));
  pid_t background = ReadPid(app_dir() + "/bg.pid");
  ASSERT_GT(background, 0);
  ASSERT_TRUE(ProcessAlive(background));

  ASSERT_TRUE(supervisor_->Stop(h, 10s).ok());
  EXPECT_FALSE(ProcessAlive(background)) << "the background grandchild survived";
  EXPECT_FALSE(ProcessGroupAlive(h.app_pid));
  EXPECT_TRUE(ShimGone(h));
  EXPECT_EQ(supervisor_->ExitCode(h), 128 + SIGTERM);
  // Stopping again is harmless.
  EXPECT_TRUE(supervisor_->Stop(h, 1s).ok());
}

TEST_F(SupervisorTest, AppExitTakesItsBackgroundChildrenAlong) {
  ReplicaHandle h = StartOrDie(Spec("leftover", "sleep 1000 & echo $! > bg.pid; exit 0"));
  ASSERT_TRUE(PollUntil([&] { return ShimGone(h); }));
  EXPECT_EQ(supervisor_->ExitCode(h), 0);
  pid_t background = ReadPid(app_dir() + "/bg.pid");
  ASSERT_GT(background, 0);
  EXPECT_FALSE(ProcessAlive(background)) << "the app's background child outlived it";
  EXPECT_FALSE(ProcessGroupAlive(h.app_pid));
}

TEST_F(SupervisorTest, AppIgnoringSigtermIsKilledAfterTheGrace) {
  ReplicaHandle h = StartOrDie(Spec("stubborn", "trap '' TERM; echo ready; sleep 1000"));
  ASSERT_TRUE(PollUntil([&] { return LogHas(log_path("stubborn"), "ready"); }));
  auto begin = std::chrono::steady_clock::now();
  ASSERT_TRUE(supervisor_->Stop(h, 300ms).ok());
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 300ms);
  EXPECT_EQ(supervisor_->ExitCode(h), 128 + SIGKILL);
  EXPECT_FALSE(ProcessGroupAlive(h.app_pid));
  EXPECT_TRUE(ShimGone(h));
}

// PostgreSQL takes SIGTERM as "smart shutdown" (wait for every client) and SIGINT as
// "fast": its caller chooses the signal.
TEST_F(SupervisorTest, StopSendsTheSignalAsked) {
  ReplicaHandle h = StartOrDie(Spec("sigint", "sleep 1000"));
  auto begin = std::chrono::steady_clock::now();
  ASSERT_TRUE(supervisor_->Stop(h, 30s, SIGINT).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 10s);
  EXPECT_EQ(supervisor_->ExitCode(h), 128 + SIGINT);
  EXPECT_TRUE(ShimGone(h));
}

TEST_F(SupervisorTest, ShimForwardsSigtermAndIgnoresSighup) {
  ReplicaHandle h = StartOrDie(Spec("signals", "echo ready; sleep 1000"));
  ASSERT_TRUE(PollUntil([&] { return LogHas(log_path("signals"), "ready"); }));
  // Had SIGHUP ended the shim, nobody would forward the SIGTERM or record the exit.
  ASSERT_EQ(kill(h.shim_pid, SIGHUP), 0);
  ASSERT_EQ(kill(h.shim_pid, SIGTERM), 0);
  ASSERT_TRUE(PollUntil([&] { return ShimGone(h); }));
  EXPECT_EQ(supervisor_->ExitCode(h), 128 + SIGTERM);
  EXPECT_FALSE(ProcessGroupAlive(h.app_pid));
}

// The server may be killed -9; its replicas keep running and a new server adopts them.
TEST_F(SupervisorTest, ReplicaSurvivesItsStarterAndIsAdopted) {
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  ReplicaSpec spec = Spec("survivor", "/usr/bin/python3 -m http.server --bind 127.0.0.1 $PORT");
  spec.env["PORT"] = std::to_string(*port);

  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t starter = fork();
  ASSERT_GE(starter, 0);
  if (starter == 0) {
    close(ready[0]);
    RealClock clock;
    Supervisor supervisor(SelfExe(), clock);
    auto handle = supervisor.Start(spec);
    char result = handle.ok() ? 'y' : 'n';
    (void)!write(ready[1], &result, 1);
    while (true) pause();  // until the test kills it, as a server killed -9
  }
  close(ready[1]);
  char result = 0;
  ssize_t n = read(ready[0], &result, 1);
  close(ready[0]);
  kill(starter, SIGKILL);
  waitpid(starter, nullptr, 0);
  ASSERT_EQ(n, 1);
  ASSERT_EQ(result, 'y') << "Start failed in the starter process";

  auto adopted = supervisor_->Adopt(spec.run_dir);
  ASSERT_TRUE(adopted.ok()) << adopted.status().ToString();
  started_.push_back(*adopted);
  EXPECT_TRUE(supervisor_->Running(*adopted));
  EXPECT_GT(adopted->app_pid, 0);

  HealthCheckSpec check;
  check.port = *port;
  check.path = "/";
  check.timeout = 60s;
  check.interval = 50ms;
  Status healthy = WaitHealthy(check, clock_, [&] { return supervisor_->Running(*adopted); });
  ASSERT_TRUE(healthy.ok()) << healthy.ToString();

  ASSERT_TRUE(supervisor_->Stop(*adopted, 5s).ok());
  EXPECT_FALSE(ProcessGroupAlive(adopted->app_pid));
  EXPECT_TRUE(ShimGone(*adopted));
  EXPECT_EQ(supervisor_->ExitCode(*adopted), 128 + SIGTERM);
}

TEST_F(SupervisorTest, AdoptingAnExitedReplicaIsNotFound) {
  ReplicaHandle h = StartOrDie(Spec("gone", "exit 0"));
  ASSERT_TRUE(PollUntil([&] { return ShimGone(h); }));
  auto adopted = supervisor_->Adopt(run_dir("gone"));
  ASSERT_FALSE(adopted.ok());
  EXPECT_EQ(adopted.status().code(), StatusCode::kNotFound);
  EXPECT_NE(adopted.status().message().find(run_dir("gone")), std::string::npos)
      << adopted.status().message();

  auto nothing = supervisor_->Adopt(dir_.path() + "/run/never-started");
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.status().code(), StatusCode::kNotFound);
}

TEST_F(SupervisorTest, MissingWorkingDirectoryIsNotFoundAndNamed) {
  ReplicaSpec spec = Spec("nowhere", "true");
  spec.cwd = dir_.path() + "/no-such-dir";
  auto handle = supervisor_->Start(spec);
  ASSERT_FALSE(handle.ok());
  EXPECT_EQ(handle.status().code(), StatusCode::kNotFound);
  EXPECT_NE(handle.status().message().find(spec.cwd), std::string::npos)
      << handle.status().message();
}

TEST_F(SupervisorTest, UnstartableShimIsInternal) {
  Supervisor broken("/nonexistent/slipway", clock_);
  auto handle = broken.Start(Spec("broken", "true"));
  ASSERT_FALSE(handle.ok());
  EXPECT_EQ(handle.status().code(), StatusCode::kInternal);
  EXPECT_NE(handle.status().message().find("/nonexistent/slipway"), std::string::npos);
}

TEST_F(SupervisorTest, SecondReplicaInARunningRunDirIsRefused) {
  ReplicaSpec spec = Spec("busy", "sleep 1000");
  ReplicaHandle h = StartOrDie(spec);
  auto again = supervisor_->Start(spec);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(supervisor_->Running(h));
}

// The shim run directly, with a small log limit: the log is rotated to "<log>.1".
TEST(ShimTest, LogIsRotatedPastItsLimit) {
  TempDir dir;
  std::string log = dir.path() + "/app.log";
  SpawnOptions options;
  options.argv = {
      SelfExe(),           "shim",  "--run-dir",
      dir.path() + "/run", "--log", log,
      "--log-max-bytes",   "4096",  "--",
      "/bin/sh",           "-c",    "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done"};
  options.capture_output = false;
  auto shim = Process::Spawn(options);
  ASSERT_TRUE(shim.ok()) << shim.status().ToString();
  EXPECT_EQ((*shim)->Wait(), 0);
  EXPECT_EQ(ReadFile(dir.path() + "/run/exit").value(), "0\n");

  auto current = ReadFile(log);
  auto rotated = ReadFile(log + ".1");
  ASSERT_TRUE(current.ok());
  ASSERT_TRUE(rotated.ok()) << "no rotated log";
  EXPECT_LE(current->size(), 4096u);
  EXPECT_LE(rotated->size(), 4096u);
  // The newest lines, in order, without a gap between the two files.
  std::vector<std::string> texts = LogTexts(log + ".1");
  for (const auto& t : LogTexts(log)) texts.push_back(t);
  ASSERT_FALSE(texts.empty());
  EXPECT_EQ(texts.back(), "line-299");
  int first = std::atoi(texts.front().c_str() + 5);
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(texts[i], "line-" + std::to_string(first + static_cast<int>(i)));
  }
}

TEST(ShimTest, BadArgumentsAreRejected) {
  SpawnOptions options;
  options.argv = {SelfExe(), "shim", "--run-dir", "/tmp"};
  std::string output;
  RunOptions run;
  run.timeout = 60s;
  run.on_line = [&](std::string_view line) { output += std::string(line) + "\n"; };
  auto outcome = RunCommand(options, run);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->exit_code, 2);
  EXPECT_NE(output.find("usage: slipway shim"), std::string::npos) << output;
}

TEST(ShellScriptTest, SimpleCommandsAreExeced) {
  using supervisor_impl::ShellScriptFor;
  EXPECT_EQ(ShellScriptFor("uvicorn main:app --port $PORT"), "exec uvicorn main:app --port $PORT");
  EXPECT_EQ(ShellScriptFor("  npm start\n"), "exec npm start");
  EXPECT_EQ(ShellScriptFor("python app.py > out.log"), "exec python app.py > out.log");
}

TEST(ShellScriptTest, CommandsExecWouldBreakAreLeftAlone) {
  using supervisor_impl::ShellScriptFor;
  EXPECT_EQ(ShellScriptFor("cd backend && uvicorn main:app"), "cd backend && uvicorn main:app");
  EXPECT_EQ(ShellScriptFor("PYTHONUNBUFFERED=1 python app.py"), "PYTHONUNBUFFERED=1 python app.py");
  EXPECT_EQ(ShellScriptFor("exit 3"), "exit 3");
  EXPECT_EQ(ShellScriptFor("exec gunicorn app"), "exec gunicorn app");
  EXPECT_EQ(ShellScriptFor("sleep 1 & wait"), "sleep 1 & wait");
}

}  // namespace
}  // namespace slipway
