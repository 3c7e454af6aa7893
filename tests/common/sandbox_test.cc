#include "common/sandbox.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/subprocess.h"

namespace slipway {
namespace {

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SandboxSupported()) GTEST_SKIP() << "isolation needs root";
    char tmpl[] = "/tmp/slipway-sandbox-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    home_ = tmpl;
    for (const char* dir : {"/releases/1/app", "/releases/2/app", "/appdata/1"}) {
      std::filesystem::create_directories(home_ + dir);
    }
    std::ofstream(home_ + "/state.db") << "the platform's state";
    std::ofstream(home_ + "/releases/1/app/main.py") << "mine";
    std::ofstream(home_ + "/releases/2/app/main.py") << "another app's code";
    ASSERT_EQ(chown((home_ + "/appdata/1").c_str(), kUid, kUid), 0);
  }
  void TearDown() override {
    if (!home_.empty()) std::filesystem::remove_all(home_);
  }

  // Runs `script` in the sandbox of app 1; returns its output and sets *code.
  std::string Run(const std::string& script, int* code) {
    SpawnOptions o;
    o.argv = {"/bin/sh", "-c", script};
    o.env = {{"PATH", "/usr/bin:/bin"}, {"H", home_}};
    o.cwd = home_ + "/releases/1/app";
    o.sandbox.uid = kUid;
    o.sandbox.gid = kUid;
    o.sandbox.hide = SandboxHideDir(home_);
    o.sandbox.binds = {
        {home_ + "/releases/1", home_ + "/releases/1", false, home_ + "/run/scratch"},
        {home_ + "/appdata/1", home_ + "/appdata/1", false, ""}};
    std::string out;
    RunOptions run;
    run.on_line = [&](std::string_view line) { out += std::string(line) + "\n"; };
    auto outcome = RunCommand(o, run);
    EXPECT_TRUE(outcome.ok()) << outcome.status().ToString();
    *code = outcome.ok() ? outcome->exit_code : -1;
    return out;
  }

  static constexpr uid_t kUid = 3'999'001;
  std::string home_;
};

TEST_F(SandboxTest, AppSeesOnlyItsReleaseAndDataDir) {
  int code = -1;
  std::string out = Run("id -u; id -G; pwd; cat main.py; echo; ls $H; ls $H/releases", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "3999001\n3999001\n" + home_ + "/releases/1/app\nmine\nappdata\nreleases\n1\n");
  // The scratch of its writes is hidden too.
  EXPECT_NE(Run("ls $H/run", &code), "scratch\n");
  EXPECT_NE(code, 0);

  EXPECT_NE(Run("cat $H/state.db", &code), "the platform's state\n");
  EXPECT_NE(code, 0);
  EXPECT_NE(Run("cat $H/releases/2/app/main.py", &code), "another app's code\n");
  EXPECT_NE(code, 0);
}

TEST_F(SandboxTest, AppWritesToItsReleaseViewButTheReleaseNeverChanges) {
  int code = -1;
  std::string out =
      Run("echo new > made.txt && mkdir -p cache/x && echo c > cache/x/f && rm main.py && "
          "echo mine-again > main.py && cat made.txt main.py cache/x/f",
          &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "new\nmine-again\nc\n");
  // On the host the release is as deployed.
  std::ifstream main(home_ + "/releases/1/app/main.py");
  std::string line;
  std::getline(main, line);
  EXPECT_EQ(line, "mine");
  EXPECT_FALSE(std::filesystem::exists(home_ + "/releases/1/app/made.txt"));
  // A file the platform deployed cannot be changed in place (only replaced).
  out = Run("echo more >> main.py", &code);
  EXPECT_NE(code, 0) << out;
  // The next process starts from the release again.
  out = Run("cat main.py; echo; ls made.txt", &code);
  EXPECT_EQ(out.substr(0, 5), "mine\n");
  EXPECT_NE(code, 0);
}

TEST_F(SandboxTest, DataDirIsWritableAndKept) {
  int code = -1;
  std::string out = Run("echo kept > $H/appdata/1/notes && cat $H/appdata/1/notes", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "kept\n");
  std::ifstream notes(home_ + "/appdata/1/notes");
  std::string line;
  std::getline(notes, line);
  EXPECT_EQ(line, "kept");
}

TEST_F(SandboxTest, AppCannotReadAnotherProcesssEnvironment) {
  int code = -1;
  std::string out = Run("cat /proc/1/environ", &code);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("Permission denied"), std::string::npos) << out;
}

TEST_F(SandboxTest, HostMountTableIsUntouched) {
  int code = -1;
  Run("true", &code);
  EXPECT_EQ(code, 0);
  std::ifstream mounts("/proc/self/mounts");
  std::string all((std::istreambuf_iterator<char>(mounts)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all.find(home_), std::string::npos) << "a sandbox mount leaked to the host";
}

TEST(SandboxHideDirTest, HidesTheHighestDirectoryOthersCannotEnter) {
  char tmpl[] = "/tmp/slipway-hide-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string base = tmpl;
  std::filesystem::create_directories(base + "/closed/data");
  chmod(base.c_str(), 0755);
  chmod((base + "/closed").c_str(), 0700);
  EXPECT_EQ(SandboxHideDir(base + "/closed/data"), base + "/closed");
  chmod((base + "/closed").c_str(), 0711);
  EXPECT_EQ(SandboxHideDir(base + "/closed/data/"), base + "/closed/data");
  std::filesystem::remove_all(base);
}

}  // namespace
}  // namespace slipway
