#include "common/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace slipway {
namespace {

SpawnOptions Shell(const std::string& script) {
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", script};
  o.env = {{"PATH", "/usr/bin:/bin"}, {"GREETING", "hello"}};
  return o;
}

TEST(SubprocessTest, RunCommandStreamsLinesAndExitCode) {
  std::vector<std::string> lines;
  RunOptions run;
  run.on_line = [&](std::string_view l) { lines.emplace_back(l); };
  auto out = RunCommand(Shell("echo $GREETING; echo err >&2; printf tail; exit 3"), run);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->exit_code, 3);
  EXPECT_FALSE(out->timed_out);
  EXPECT_EQ(lines, (std::vector<std::string>{"hello", "err", "tail"}));
}

TEST(SubprocessTest, TimeoutKillsTheWholeGroup) {
  RunOptions run;
  run.timeout = std::chrono::milliseconds(300);
  pid_t pid = 0;
  run.on_started = [&](pid_t p) { pid = p; };
  auto out = RunCommand(Shell("sleep 30 & sleep 30"), run);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->timed_out);
  EXPECT_EQ(out->exit_code, 128 + SIGKILL);
  EXPECT_FALSE(ProcessGroupAlive(pid)) << "the group's background child survived";
}

TEST(SubprocessTest, ExitIsSeenEvenWhenABackgroundChildHoldsThePipe) {
  RunOptions run;
  run.timeout = std::chrono::seconds(20);
  auto out = RunCommand(Shell("sleep 30 & exit 0"), run);
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(out->timed_out);
  EXPECT_EQ(out->exit_code, 0);
}

TEST(SubprocessTest, StderrPathKeepsThePipeForStdoutAlone) {
  char tmpl[] = "/tmp/slipway-stderr-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string log = std::string(tmpl) + "/err.log";
  SpawnOptions o = Shell("echo out; echo err >&2; echo out2");
  o.stderr_path = log;
  std::vector<std::string> lines;
  RunOptions run;
  run.on_line = [&](std::string_view l) { lines.emplace_back(l); };
  auto out = RunCommand(o, run);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(lines, (std::vector<std::string>{"out", "out2"}));
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "err\n");
  o.stderr_path = std::string(tmpl) + "/missing-dir/err.log";
  auto refused = Process::Spawn(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("missing-dir/err.log"), std::string::npos);
  std::remove(log.c_str());
  rmdir(tmpl);
}

TEST(SubprocessTest, MissingCommandIsNotFound) {
  SpawnOptions o = Shell("");
  o.argv = {"no-such-command-slipway"};
  auto out = RunCommand(o, RunOptions{});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kNotFound);
}

TEST(SubprocessTest, MissingWorkingDirectoryIsNamed) {
  SpawnOptions o = Shell("true");
  o.cwd = "/nonexistent/slipway-dir";
  auto out = RunCommand(o, RunOptions{});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("/nonexistent/slipway-dir"), std::string::npos);
}

TEST(SubprocessTest, ProcessAliveTellsZombiesAndReusedPidsApart) {
  auto p = Process::Spawn(Shell("sleep 30"));
  ASSERT_TRUE(p.ok());
  pid_t pid = (*p)->pid();
  auto start = ProcessStartTime(pid);
  EXPECT_TRUE(ProcessAlive(pid, start));
  EXPECT_FALSE(ProcessAlive(pid, start + 1));
  (*p)->Signal(SIGKILL);
  (*p)->Wait();
  EXPECT_FALSE(ProcessAlive(pid));
}

// The process lives on its own: not our child, in a session of its own, its output in
// the file, and its exec failure reported.
TEST(SpawnDetachedTest, RunsApartWithItsOutputInTheFile) {
  char dir_template[] = "/tmp/slipway-detached-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  DetachedSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo \"in $(pwd) as $GREETING\"; exec sleep 30"};
  spec.env = {{"GREETING", "hello"}, {"PATH", "/usr/bin:/bin"}};
  spec.cwd = dir;
  spec.output_path = dir + "/out.log";
  auto pid = SpawnDetached(spec);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  EXPECT_TRUE(ProcessAlive(*pid));
  EXPECT_EQ(waitpid(*pid, nullptr, WNOHANG), -1);  // ECHILD: not ours
  EXPECT_NE(getsid(*pid), getsid(0));              // in a session of its own
  EXPECT_NE(getpgid(*pid), getpgid(0));
  std::string out;
  for (int i = 0; i < 500 && out.empty(); ++i) {
    std::ifstream f(spec.output_path);
    std::getline(f, out);
    if (out.empty()) usleep(10'000);
  }
  EXPECT_EQ(out, "in " + dir + " as hello");
  kill(*pid, SIGKILL);

  spec.argv = {dir + "/no-such-program"};
  auto missing = SpawnDetached(spec);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "cannot start " + dir + "/no-such-program: No such file or directory");
  spec.argv = {"/bin/true"};
  spec.cwd = dir + "/gone";
  auto no_dir = SpawnDetached(spec);
  ASSERT_FALSE(no_dir.ok());
  EXPECT_EQ(no_dir.status().code(), StatusCode::kNotFound);
  EXPECT_NE(no_dir.status().message().find("working directory " + dir + "/gone"),
            std::string::npos);
  std::remove(spec.output_path.c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace slipway
