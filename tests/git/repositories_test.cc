#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "common/fs.h"
#include "common/subprocess.h"
#include "git/git.h"

namespace slipway {
namespace {

class Collector : public GitHttpResponder {
 public:
  Status Begin(int status,
               const std::vector<std::pair<std::string, std::string>>& headers) override {
    ++begins;
    this->status = status;
    this->headers = headers;
    return Status::Ok();
  }
  Status Write(std::string_view data) override {
    body.append(data);
    return fail_writes ? Unavailable("client gone") : Status::Ok();
  }
  std::string Header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
  int begins = 0;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool fail_writes = false;
};

class GitRepositoriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/slipway-git-test-XXXXXX";
    home_ = mkdtemp(tmpl);
    GitOptions options;
    options.home = home_;
    options.slipway_exe = "/opt/it's here/slipway";
    options.api_url = "http://127.0.0.1:1";
    auto repos = GitRepositories::Create(options);
    ASSERT_TRUE(repos.ok()) << repos.status().ToString();
    repos_ = std::move(*repos);
  }
  void TearDown() override { std::filesystem::remove_all(home_); }

  std::string Git(const std::vector<std::string>& args) {
    SpawnOptions spawn;
    spawn.argv = {"git"};
    spawn.argv.insert(spawn.argv.end(), args.begin(), args.end());
    spawn.env = {{"PATH", "/usr/bin:/bin"}, {"HOME", home_}, {"GIT_CONFIG_NOSYSTEM", "1"}};
    std::string out;
    RunOptions run;
    run.on_line = [&](std::string_view l) { out += std::string(l) + "\n"; };
    auto done = RunCommand(spawn, run);
    EXPECT_TRUE(done.ok() && done->exit_code == 0) << out;
    return out;
  }

  std::string home_;
  std::unique_ptr<GitRepositories> repos_;
};

TEST_F(GitRepositoriesTest, EnsureCreatesABareRepositoryWithTheHook) {
  EXPECT_FALSE(repos_->Exists("shop"));
  ASSERT_TRUE(repos_->Ensure("shop", "main").ok());
  const std::string repo = home_ + "/git/shop.git";
  EXPECT_EQ(repos_->RepositoryPath("shop"), repo);
  EXPECT_TRUE(repos_->Exists("shop"));
  EXPECT_EQ(Git({"--git-dir=" + repo, "rev-parse", "--is-bare-repository"}), "true\n");
  EXPECT_EQ(*ReadFile(repo + "/HEAD"), "ref: refs/heads/main\n");
  auto hook = ReadFile(repo + "/hooks/pre-receive");
  ASSERT_TRUE(hook.ok());
  // The path is quoted for sh, quote and space included.
  EXPECT_NE(hook->find("exec '/opt/it'\\''s here/slipway' git-hook pre-receive\n"),
            std::string::npos)
      << *hook;
  struct stat st {};
  ASSERT_EQ(stat((repo + "/hooks/pre-receive").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR);
  EXPECT_FALSE(PathExists(repo + "/hooks/pre-commit.sample"));  // no templates

  // Again, with another production branch: HEAD follows, the hook is rewritten.
  ASSERT_TRUE(WriteFileAtomic(repo + "/hooks/pre-receive", "#!/bin/sh\nexit 0\n", 0755).ok());
  ASSERT_TRUE(repos_->Ensure("shop", "trunk").ok());
  EXPECT_EQ(*ReadFile(repo + "/HEAD"), "ref: refs/heads/trunk\n");
  EXPECT_NE(ReadFile(repo + "/hooks/pre-receive")->find("git-hook pre-receive"), std::string::npos);
}

TEST_F(GitRepositoriesTest, EnsureRefusesBadNames) {
  EXPECT_EQ(repos_->Ensure("../etc", "main").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(repos_->Ensure("shop", "bad..branch").code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(repos_->Exists("../etc"));
  EXPECT_FALSE(PathExists(home_ + "/git/shop.git"));
}

TEST_F(GitRepositoriesTest, ServesTheSmartProtocolThroughHttpBackend) {
  ASSERT_TRUE(repos_->Ensure("shop", "main").ok());
  GitHttpRequest request;
  request.method = "GET";
  request.project = "shop";
  request.path = "info/refs";
  request.query = "service=git-receive-pack";
  Collector answer;
  ASSERT_TRUE(repos_->ServeHttp(request, answer).ok());
  EXPECT_EQ(answer.begins, 1);
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.Header("Content-Type"), "application/x-git-receive-pack-advertisement");
  EXPECT_EQ(answer.body.substr(0, 30), "001f# service=git-receive-pack");

  // A client that goes away does not make it fail.
  Collector gone;
  gone.fail_writes = true;
  request.query = "service=git-upload-pack";
  EXPECT_TRUE(repos_->ServeHttp(request, gone).ok());
  EXPECT_EQ(gone.status, 200);
}

TEST_F(GitRepositoriesTest, RefusesWhatIsNotTheSmartProtocol) {
  ASSERT_TRUE(repos_->Ensure("shop", "main").ok());
  GitHttpRequest request;
  request.method = "GET";
  request.project = "shop";
  Collector answer;
  for (const auto& [path, query] : std::vector<std::pair<std::string, std::string>>{
           {"info/refs", ""}, {"HEAD", ""}, {"objects/info/packs", ""}, {"config", ""}}) {
    request.path = path;
    request.query = query;
    Status st = repos_->ServeHttp(request, answer);
    EXPECT_EQ(st.code(), StatusCode::kNotFound) << path;
  }
  request.path = "info/refs";
  request.query = "service=git-receive-pack";
  request.project = "nothing-here";
  Status missing = repos_->ServeHttp(request, answer);
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("slipway git-remote"), std::string::npos);
  EXPECT_EQ(answer.begins, 0);
}

}  // namespace
}  // namespace slipway
