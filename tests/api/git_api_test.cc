// git's smart HTTP through the control API, with real `git push` and `git clone`
// against a hook that stands in for `slipway git-hook` (the deploy itself is
// tests/e2e/test_git_push.py's).

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "api/api_server.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/subprocess.h"
#include "deploy/engine.h"
#include "store/store.h"
#include "supervisor/supervisor.h"

namespace slipway {
namespace {

// Prints what it is given and fails when <home>/fail exists, like a deploy would.
constexpr const char* kFakeHook = R"(#!/bin/sh
[ "$1" = git-hook ] && [ "$2" = pre-receive ] || { echo "bad arguments: $*"; exit 2; }
while read old new ref; do echo "hook: $ref $new"; done
echo "hook: api $SLIPWAY_URL"
if [ -e "$SLIPWAY_HOME/fail" ]; then echo "hook: the build failed" >&2; exit 1; fi
echo "hook: web is live"
)";

struct GitRun {
  int code = -1;
  std::string output;
};

class GitApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/slipway-git-api-test-XXXXXX";
    root_ = mkdtemp(tmpl);
    home_ = root_ + "/home";
    ASSERT_TRUE(MakeDirs(home_).ok());
    ASSERT_TRUE(WriteFileAtomic(root_ + "/fake-slipway", kFakeHook, 0755).ok());
    auto token = LoadOrCreateToken(home_);
    ASSERT_TRUE(token.ok());
    token_ = *token;
    auto store = Store::Open(home_ + "/state.db", clock_);
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    supervisor_ = std::make_unique<Supervisor>("/proc/self/exe", clock_);
    EngineOptions options;
    options.home = home_;
    auto engine = DeployEngine::Create(*store_, *supervisor_, clock_, nullptr, options);
    ASSERT_TRUE(engine.ok());
    engine_ = std::move(*engine);
    StartApi(512ull << 20);
    // The repository pushed from.
    work_ = root_ + "/work";
    ASSERT_TRUE(MakeDirs(work_).ok());
    ASSERT_EQ(Git({"init", "-q", "-b", "main", work_}).code, 0);
    Commit("app.py", "print('v1')\n");
  }

  void StartApi(uint64_t max_bytes) {
    if (api_) api_->Stop();
    ApiOptions api_options;
    api_options.port = 0;
    api_options.token = token_;
    api_options.home = home_;
    api_options.slipway_exe = root_ + "/fake-slipway";
    api_options.max_upload_bytes = max_bytes;
    auto api = ApiServer::Create(api_options, *store_, *engine_);
    ASSERT_TRUE(api.ok()) << api.status().ToString();
    api_ = std::move(*api);
    api_->Start();
  }

  void TearDown() override {
    if (api_) api_->Stop();
    if (engine_) engine_->Shutdown(true);
    std::filesystem::remove_all(root_);
  }

  GitRun Git(std::vector<std::string> args, const std::string& cwd = "") {
    SpawnOptions spawn;
    spawn.argv = {"git", "-c", "user.name=Test", "-c", "user.email=test@example.com"};
    spawn.argv.insert(spawn.argv.end(), args.begin(), args.end());
    spawn.env = {{"PATH", "/usr/bin:/bin"},
                 {"HOME", root_},
                 {"GIT_CONFIG_NOSYSTEM", "1"},
                 {"GIT_TERMINAL_PROMPT", "0"},
                 {"LANG", "C"}};
    spawn.cwd = cwd;
    GitRun out;
    RunOptions run;
    run.timeout = std::chrono::seconds(60);
    run.on_line = [&](std::string_view l) { out.output += std::string(l) + "\n"; };
    auto done = RunCommand(spawn, run);
    EXPECT_TRUE(done.ok()) << done.status().ToString();
    if (done.ok()) out.code = done->exit_code;
    return out;
  }

  void Commit(const std::string& file, const std::string& content) {
    ASSERT_TRUE(WriteFileAtomic(work_ + "/" + file, content).ok());
    ASSERT_EQ(Git({"add", "-A"}, work_).code, 0);
    ASSERT_EQ(Git({"commit", "-q", "-m", "change " + file}, work_).code, 0);
  }

  std::string Url(const std::string& credentials, const std::string& project = "demo") {
    return "http://" + credentials + "127.0.0.1:" + std::to_string(api_->port()) + "/git/" +
           project + ".git";
  }

  std::string RemoteRef(const std::string& ref) {
    GitRun r = Git({"--git-dir=" + home_ + "/git/demo.git", "rev-parse", "--verify", "-q", ref});
    return r.code == 0 ? r.output : "";
  }

  HttpResponse Call(const std::string& method, const std::string& target,
                    const std::map<std::string, std::string>& headers, const std::string& body) {
    HttpRequest req;
    req.method = method;
    req.port = api_->port();
    req.target = target;
    req.headers = headers;
    req.body = body;
    auto res = HttpCall(req);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : HttpResponse{};
  }

  RealClock clock_;
  std::string root_, home_, work_, token_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<DeployEngine> engine_;
  std::unique_ptr<ApiServer> api_;
};

TEST_F(GitApiTest, WithoutTheTokenThePushIsRefusedWithBasicChallenge) {
  auto res = Call("GET", "/git/demo.git/info/refs?service=git-receive-pack", {}, "");
  EXPECT_EQ(res.status, 401);
  EXPECT_EQ(res.headers["www-authenticate"], "Basic realm=\"Slipway\"");
  EXPECT_NE(res.body.find("slipway git-remote"), std::string::npos);
  // A wrong password, a wrong Bearer token: the same.
  const std::string wrong = "Basic c2xpcHdheTpub3BlCg==";  // slipway:nope
  EXPECT_EQ(Call("GET", "/git/demo.git/info/refs?service=git-receive-pack",
                 {{"Authorization", wrong}}, "")
                .status,
            401);
  EXPECT_EQ(Call("GET", "/git/demo.git/info/refs?service=git-receive-pack",
                 {{"Authorization", "Bearer " + std::string(64, 'a')}}, "")
                .status,
            401);

  GitRun push = Git({"push", Url(""), "main"}, work_);
  EXPECT_NE(push.code, 0) << push.output;
  EXPECT_EQ(RemoteRef("refs/heads/main"), "");
  GitRun wrong_password = Git({"push", Url("slipway:nope@"), "main"}, work_);
  EXPECT_NE(wrong_password.code, 0) << wrong_password.output;
  EXPECT_NE(wrong_password.output.find("Authentication failed"), std::string::npos)
      << wrong_password.output;
}

TEST_F(GitApiTest, APushCreatesTheRepositoryAndStreamsTheHook) {
  GitRun push = Git({"push", Url("slipway:" + token_ + "@"), "main"}, work_);
  ASSERT_EQ(push.code, 0) << push.output;
  const std::string head = Git({"rev-parse", "HEAD"}, work_).output;
  EXPECT_NE(push.output.find("remote: hook: refs/heads/main " + head.substr(0, 40)),
            std::string::npos)
      << push.output;
  // The hook reaches the API that served the push.
  EXPECT_NE(push.output.find("remote: hook: api http://127.0.0.1:" + std::to_string(api_->port())),
            std::string::npos)
      << push.output;
  EXPECT_NE(push.output.find("remote: hook: web is live"), std::string::npos);
  EXPECT_EQ(RemoteRef("refs/heads/main"), head);
  // The URL's token is in no answer git printed.
  EXPECT_EQ(push.output.find(token_), std::string::npos) << push.output;

  // The token as Bearer works too, and so does a clone.
  Commit("app.py", "print('v2')\n");
  GitRun bearer = Git(
      {"-c", "http.extraHeader=Authorization: Bearer " + token_, "push", Url(""), "main"}, work_);
  ASSERT_EQ(bearer.code, 0) << bearer.output;
  GitRun clone = Git({"clone", "-q", Url("x:" + token_ + "@"), root_ + "/clone"});
  ASSERT_EQ(clone.code, 0) << clone.output;
  EXPECT_EQ(*ReadFile(root_ + "/clone/app.py"), "print('v2')\n");
  // Nothing the server wrote holds the token.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(home_ + "/logs")) {
    if (!entry.is_regular_file()) continue;
    EXPECT_EQ(ReadFile(entry.path())->find(token_), std::string::npos) << entry.path();
  }
}

TEST_F(GitApiTest, AFailingHookRejectsThePushAndKeepsTheBranch) {
  ASSERT_EQ(Git({"push", Url("slipway:" + token_ + "@"), "main"}, work_).code, 0);
  const std::string before = RemoteRef("refs/heads/main");
  Commit("app.py", "print('broken')\n");
  ASSERT_TRUE(WriteFileAtomic(home_ + "/fail", "").ok());
  GitRun push = Git({"push", Url("slipway:" + token_ + "@"), "main"}, work_);
  EXPECT_NE(push.code, 0) << push.output;
  EXPECT_NE(push.output.find("remote: hook: the build failed"), std::string::npos) << push.output;
  EXPECT_NE(push.output.find("pre-receive hook declined"), std::string::npos) << push.output;
  EXPECT_EQ(RemoteRef("refs/heads/main"), before);
  // Fixed: the same commit pushed again goes through.
  std::filesystem::remove(home_ + "/fail");
  GitRun again = Git({"push", Url("slipway:" + token_ + "@"), "main"}, work_);
  EXPECT_EQ(again.code, 0) << again.output;
  EXPECT_NE(RemoteRef("refs/heads/main"), before);
}

TEST_F(GitApiTest, APushOverTheSizeLimitIsRefusedClearly) {
  StartApi(64 << 10);
  std::string noise;
  uint32_t x = 12345;
  for (int i = 0; i < (1 << 20); ++i) {  // 1 MiB that does not compress
    x = x * 1103515245 + 12345;
    noise.push_back(static_cast<char>(x >> 16));
  }
  Commit("blob.bin", noise);
  GitRun push = Git({"push", Url("slipway:" + token_ + "@"), "main"}, work_);
  EXPECT_NE(push.code, 0) << push.output;
  EXPECT_NE(push.output.find("413"), std::string::npos) << push.output;
  EXPECT_EQ(RemoteRef("refs/heads/main"), "");
  EXPECT_TRUE(std::filesystem::is_empty(home_ + "/uploads"));
  // Under the limit, the same push (its pack sent chunked: over git's 1 MiB buffer)
  // goes through whole.
  StartApi(64 << 20);
  GitRun bigger = Git({"push", Url("slipway:" + token_ + "@"), "main"}, work_);
  ASSERT_EQ(bigger.code, 0) << bigger.output;
  EXPECT_EQ(RemoteRef("refs/heads/main"), Git({"rev-parse", "HEAD"}, work_).output);
  EXPECT_EQ(Git({"--git-dir=" + home_ + "/git/demo.git", "cat-file", "-s", "HEAD:blob.bin"}).output,
            "1048576\n");
}

TEST_F(GitApiTest, OnlyTheSmartProtocolOfValidProjects) {
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer " + token_}};
  EXPECT_EQ(Call("GET", "/git/demo.git/info/refs?service=git-upload-pack", auth, "").status, 404);
  EXPECT_EQ(Call("GET", "/git/Bad_Name.git/info/refs?service=git-receive-pack", auth, "").status,
            404);
  EXPECT_EQ(Call("GET", "/git/../state.db", auth, "").status, 404);
  ASSERT_EQ(Call("GET", "/git/demo.git/info/refs?service=git-receive-pack", auth, "").status, 200);
  EXPECT_EQ(Call("GET", "/git/demo.git/HEAD", auth, "").status, 404);
  EXPECT_EQ(Call("GET", "/git/demo.git/config", auth, "").status, 404);
}

TEST_F(GitApiTest, SettingsNameTheProductionBranch) {
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer " + token_}};
  auto res = Call("GET", "/v1/projects/demo/git", auth, "");
  ASSERT_EQ(res.status, 200) << res.body;
  auto j = nlohmann::json::parse(res.body);
  EXPECT_EQ(j["production_branch"], "main");
  EXPECT_EQ(j["preview_from"], "production");
  EXPECT_EQ(j["path"], "/git/demo.git");
  EXPECT_EQ(j["repository"], false);

  res = Call("PUT", "/v1/projects/demo/git", auth,
             R"({"production_branch": "trunk", "preview_from": "staging"})");
  ASSERT_EQ(res.status, 200) << res.body;
  j = nlohmann::json::parse(res.body);
  EXPECT_EQ(j["production_branch"], "trunk");
  EXPECT_EQ(j["preview_from"], "staging");
  EXPECT_EQ(j["repository"], true);
  EXPECT_EQ(*ReadFile(home_ + "/git/demo.git/HEAD"), "ref: refs/heads/trunk\n");

  EXPECT_EQ(Call("PUT", "/v1/projects/demo/git", auth, R"({"production_branch": "a..b"})").status,
            400);
  EXPECT_EQ(Call("PUT", "/v1/projects/demo/git", auth, R"({"preview_from": "Not Valid"})").status,
            400);
}

}  // namespace
}  // namespace slipway
