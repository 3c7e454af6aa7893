#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "api/api_server.h"
#include "common/archive.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/run_stream.h"
#include "config/config.h"
#include "deploy/engine.h"
#include "store/store.h"
#include "supervisor/supervisor.h"

namespace slipway {
namespace {

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/slipway-api-test-XXXXXX";
    home_ = mkdtemp(tmpl);
    auto token = LoadOrCreateToken(home_);
    ASSERT_TRUE(token.ok()) << token.status().ToString();
    token_ = *token;
    auto store = Store::Open(home_ + "/state.db", clock_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    supervisor_ = std::make_unique<Supervisor>("/proc/self/exe", clock_);
    EngineOptions options;
    options.home = home_;
    auto engine = DeployEngine::Create(*store_, *supervisor_, clock_, nullptr, options);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(*engine);
    ApiOptions api_options;
    api_options.port = 0;
    api_options.token = token_;
    api_options.home = home_;
    auto api = ApiServer::Create(api_options, *store_, *engine_);
    ASSERT_TRUE(api.ok()) << api.status().ToString();
    api_ = std::move(*api);
    api_->Start();
  }

  void TearDown() override {
    if (api_) api_->Stop();
    if (engine_) engine_->Shutdown(true);
    std::filesystem::remove_all(home_);
  }

  HttpResponse Call(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = "") {
    HttpRequest req;
    req.method = method;
    req.port = api_->port();
    req.target = target;
    req.body = body;
    if (!token.empty()) req.headers["Authorization"] = "Bearer " + token;
    auto res = HttpCall(req);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : HttpResponse{};
  }

  static nlohmann::json Json(const HttpResponse& res) {
    return nlohmann::json::parse(res.body, nullptr, false);
  }

  RealClock clock_;
  std::string home_;
  std::string token_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<DeployEngine> engine_;
  std::unique_ptr<ApiServer> api_;
};

TEST_F(ApiTest, TokenFileIsPrivateAndStable) {
  struct stat st {};
  ASSERT_EQ(stat((home_ + "/token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_GE(token_.size(), 64u);
  auto again = LoadOrCreateToken(home_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, token_);
}

TEST_F(ApiTest, HealthNeedsNoTokenButEverythingElseDoes) {
  EXPECT_EQ(Call("GET", "/v1/health", "").status, 200);
  auto missing = Call("GET", "/v1/projects", "");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(Json(missing)["code"], "UNAUTHENTICATED");
  EXPECT_EQ(Call("GET", "/v1/projects", std::string(64, 'a')).status, 401);
  auto ok = Call("GET", "/v1/projects", token_);
  EXPECT_EQ(ok.status, 200);
  EXPECT_TRUE(Json(ok)["projects"].empty());
}

TEST_F(ApiTest, UnknownProjectSaysHowToDeployIt) {
  auto res = Call("GET", "/v1/projects/nothing-here/status", token_);
  EXPECT_EQ(res.status, 404);
  EXPECT_NE(Json(res)["error"].get<std::string>().find("slipway up"), std::string::npos);
}

TEST_F(ApiTest, CorruptUploadIsRejectedAndLeavesNothingBehind) {
  auto res = Call("POST", "/v1/deploy?project=demo", token_, "this is not a tarball");
  EXPECT_EQ(res.status, 400) << res.body;
  EXPECT_NE(Json(res)["error"].get<std::string>().find("archive"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_empty(home_ + "/uploads"));
  auto projects = Call("GET", "/v1/projects", token_);
  EXPECT_TRUE(Json(projects)["projects"].empty());
}

TEST_F(ApiTest, UnknownRouteIsNotFound) {
  EXPECT_EQ(Call("GET", "/v1/nope", token_).status, 404);
  EXPECT_EQ(Call("GET", "/v1/deployments/abc", token_).status, 400);
  EXPECT_EQ(Call("GET", "/v1/deployments/999", token_).status, 404);
}

// A service of project "shop" whose active deployment's release is a directory with
// one file; no replica runs (a one-off command needs none).
ServiceRecord MakeActiveService(Store& store, const std::string& home, const std::string& env) {
  auto project = store.EnsureProject("shop");
  auto environment = store.EnsureEnvironment(project->id, env);
  auto svc = store.EnsureService(project->id, environment->id, "web");
  auto dep = store.CreateDeployment(svc->id, "upload", ServiceConfigToJson(ServiceConfig{}));
  const std::string app_dir = home + "/releases/" + std::to_string(dep->id) + "/app";
  EXPECT_TRUE(MakeDirs(app_dir).ok());
  EXPECT_TRUE(WriteFileAtomic(app_dir + "/marker.txt", "in the release\n").ok());
  nlohmann::json manifest{{"kind", "python"}, {"app_dir", app_dir}, {"start_command", "true"}};
  auto rel = store.CreateRelease(svc->id, dep->id, home + "/releases/" + std::to_string(dep->id),
                                 manifest.dump());
  EXPECT_TRUE(store.SetDeploymentRelease(dep->id, rel->id).ok());
  EXPECT_TRUE(store.SetDeploymentStatus(dep->id, kActive).ok());
  EXPECT_TRUE(store.SetActiveDeployment(svc->id, dep->id).ok());
  return *svc;
}

TEST_F(ApiTest, RunStreamsOutputThenTheExitCode) {
  MakeActiveService(*store_, home_, "production");
  nlohmann::json body{
      {"argv",
       {"sh", "-c", "cat marker.txt; echo \"$SLIPWAY_ENVIRONMENT ${PORT-none}\" >&2; exit 7"}}};
  auto res = Call("POST", "/v1/projects/shop/run?service=web", token_, body.dump());
  ASSERT_EQ(res.status, 200) << res.body;
  RunStreamDecoder decoder;
  std::string output;
  ASSERT_TRUE(decoder.Feed(res.body, [&](std::string_view b) { output += b; }).ok()) << res.body;
  EXPECT_EQ(output, "in the release\nproduction none\n");
  auto code = decoder.Finish();
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  EXPECT_EQ(*code, 7);

  nlohmann::json killed{{"argv", {"sh", "-c", "kill -TERM $$"}}};
  res = Call("POST", "/v1/projects/shop/run", token_, killed.dump());
  RunStreamDecoder killed_decoder;
  ASSERT_TRUE(killed_decoder.Feed(res.body, [](std::string_view) {}).ok());
  EXPECT_EQ(*killed_decoder.Finish(), 128 + 15);

  nlohmann::json slow{{"argv", {"sleep", "30"}}, {"timeout_seconds", 1}};
  res = Call("POST", "/v1/projects/shop/run", token_, slow.dump());
  RunStreamDecoder slow_decoder;
  ASSERT_TRUE(slow_decoder.Feed(res.body, [](std::string_view) {}).ok());
  auto timed_out = slow_decoder.Finish();
  ASSERT_FALSE(timed_out.ok());
  EXPECT_NE(timed_out.status().message().find("timeout of 1s"), std::string::npos);
}

TEST_F(ApiTest, RunErrorsComeBeforeAnyOutput) {
  ServiceRecord web = MakeActiveService(*store_, home_, "production");
  nlohmann::json body{{"argv", {"true"}}};
  EXPECT_EQ(Call("POST", "/v1/projects/shop/run?service=api", token_, body.dump()).status, 404);
  EXPECT_EQ(Call("POST", "/v1/projects/shop/run", token_, R"({"argv": []})").status, 400);
  EXPECT_EQ(Call("POST", "/v1/projects/shop/run", token_, R"({"argv": "ls"})").status, 400);
  nlohmann::json missing{{"argv", {"no-such-command-xyz"}}};
  auto res = Call("POST", "/v1/projects/shop/run", token_, missing.dump());
  EXPECT_EQ(res.status, 404);
  EXPECT_NE(Json(res)["error"].get<std::string>().find("not found"), std::string::npos);
  ASSERT_TRUE(store_->SetActiveDeployment(web.id, 0).ok());
  res = Call("POST", "/v1/projects/shop/run", token_, body.dump());
  EXPECT_EQ(res.status, 409);
  EXPECT_EQ(Json(res)["error"],
            "web (production) has no active deployment to run in; deploy it with `slipway up`");
}

TEST_F(ApiTest, EnvironmentsAreListedCreatedAndDeleted) {
  ServiceRecord prod = MakeActiveService(*store_, home_, "production");
  ServiceRecord staging = MakeActiveService(*store_, home_, "staging");
  auto list = Json(Call("GET", "/v1/projects/shop/environments", token_));
  ASSERT_EQ(list["environments"].size(), 2u) << list.dump();
  EXPECT_EQ(list["environments"][0]["name"], "production");
  EXPECT_EQ(list["environments"][1]["services"][0]["url"],
            "http://web.shop-staging.localhost:8080");

  auto created = Call("POST", "/v1/projects/shop/environments", token_,
                      R"({"name": "preview", "from": "staging"})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(Json(created)["services"][0]["name"], "web");
  EXPECT_EQ(Call("POST", "/v1/projects/shop/environments", token_, R"({"name": "preview"})").status,
            409);

  auto refused = Call("DELETE", "/v1/projects/shop/environments/production", token_);
  EXPECT_EQ(refused.status, 409);
  auto deleted = Call("DELETE", "/v1/projects/shop/environments/staging", token_);
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(store_->GetService(staging.id).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->GetService(prod.id).ok());
  EXPECT_EQ(Call("DELETE", "/v1/projects/shop/environments/staging", token_).status, 404);
}

TEST_F(ApiTest, APreviewEnvironmentRecordsItsBranch) {
  MakeActiveService(*store_, home_, "production");
  auto created =
      Call("POST", "/v1/projects/shop/environments", token_,
           R"({"name": "feature-login", "from": "production", "branch": "feature/login"})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(Json(created)["branch"], "feature/login");
  auto list = Json(Call("GET", "/v1/projects/shop/environments", token_));
  ASSERT_EQ(list["environments"].size(), 2u);
  EXPECT_EQ(list["environments"][0]["branch"], "");
  EXPECT_EQ(list["environments"][1]["branch"], "feature/login");
  // A branch has one preview: a second one is refused and not left behind.
  auto twice = Call("POST", "/v1/projects/shop/environments", token_,
                    R"({"name": "other", "branch": "feature/login"})");
  EXPECT_EQ(twice.status, 409) << twice.body;
  EXPECT_EQ(Json(Call("GET", "/v1/projects/shop/environments", token_))["environments"].size(), 2u);
  EXPECT_EQ(Call("POST", "/v1/projects/shop/environments", token_,
                 R"({"name": "x", "branch": "bad..name"})")
                .status,
            400);
}

TEST_F(ApiTest, ADeployLabelIsOneLineOfText) {
  const std::string app = home_ + "/app";
  ASSERT_TRUE(MakeDirs(app).ok());
  ASSERT_TRUE(WriteFileAtomic(app + "/index.html", "hi\n").ok());
  auto packed = PackDirectory(app, DefaultArchiveExcludes(), 1 << 20);
  ASSERT_TRUE(packed.ok());
  auto res = Call("POST", "/v1/deploy?project=demo&label=a%0Ab", token_, *packed);
  EXPECT_EQ(res.status, 400) << res.body;
  EXPECT_NE(Json(res)["error"].get<std::string>().find("label"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_empty(home_ + "/uploads"));
}

// This server has no AddonManager: the add-on routes say so instead of crashing.
TEST_F(ApiTest, AddonRoutesWithoutAnAddonManagerAreAConflict) {
  auto res = Call("GET", "/v1/projects/shop/addons", token_);
  EXPECT_EQ(res.status, 409);
  EXPECT_NE(Json(res)["error"].get<std::string>().find("no add-ons"), std::string::npos);
  EXPECT_EQ(Call("POST", "/v1/projects/shop/backups", token_, "{}").status, 409);
}

TEST(HttpStatusForTest, OneMappingForEveryCode) {
  EXPECT_EQ(HttpStatusFor(Status::Ok()), 200);
  EXPECT_EQ(HttpStatusFor(InvalidArgument("x")), 400);
  EXPECT_EQ(HttpStatusFor(Unauthenticated("x")), 401);
  EXPECT_EQ(HttpStatusFor(NotFound("x")), 404);
  EXPECT_EQ(HttpStatusFor(AlreadyExists("x")), 409);
  EXPECT_EQ(HttpStatusFor(ResourceExhausted("x")), 507);
  EXPECT_EQ(HttpStatusFor(Unavailable("x")), 503);
  EXPECT_EQ(HttpStatusFor(Internal("x")), 500);
}

}  // namespace
}  // namespace slipway
