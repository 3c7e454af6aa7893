#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "api/api_server.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/http_client.h"
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
