// The add-on routes of the control API, with a real AddonManager running redis-server
// under the built `slipway shim` (SLIPWAY_BIN). Redis keeps these fast; the manager's own
// tests (tests/addons) cover PostgreSQL and backups.

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "addons/addons.h"
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

using json = nlohmann::json;

class AddonsApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/slipway-api-addons-XXXXXX";
    home_ = mkdtemp(tmpl);
    auto token = LoadOrCreateToken(home_);
    ASSERT_TRUE(token.ok()) << token.status().ToString();
    token_ = *token;
    auto store = Store::Open(home_ + "/state.db", clock_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    supervisor_ = std::make_unique<Supervisor>(SLIPWAY_BIN, clock_);
    AddonOptions addon_options;
    addon_options.home = home_;
    addon_options.secrets = SecretBox::Ephemeral();
    auto addons = AddonManager::Create(*store_, *supervisor_, clock_, addon_options);
    ASSERT_TRUE(addons.ok()) << addons.status().ToString();
    addons_ = std::move(*addons);
    ASSERT_TRUE(addons_->Start().ok());
    EngineOptions options;
    options.home = home_;
    options.addons = addons_.get();  // deleting an environment removes its add-ons
    auto engine = DeployEngine::Create(*store_, *supervisor_, clock_, nullptr, options);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(*engine);
    ApiOptions api_options;
    api_options.port = 0;
    api_options.token = token_;
    api_options.home = home_;
    auto api = ApiServer::Create(api_options, *store_, *engine_, addons_.get());
    ASSERT_TRUE(api.ok()) << api.status().ToString();
    api_ = std::move(*api);
    api_->Start();
  }

  void TearDown() override {
    if (api_) api_->Stop();
    if (engine_) engine_->Shutdown(true);
    if (addons_) addons_->Shutdown(true);
    std::filesystem::remove_all(home_);
  }

  json Call(const std::string& method, const std::string& target, const std::string& body,
            int expected_status) {
    HttpRequest req;
    req.method = method;
    req.port = api_->port();
    req.target = target;
    req.body = body;
    req.timeout = std::chrono::seconds(120);
    req.headers["Authorization"] = "Bearer " + token_;
    auto res = HttpCall(req);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    if (!res.ok()) return json();
    EXPECT_EQ(res->status, expected_status) << method << " " << target << ": " << res->body;
    return json::parse(res->body, nullptr, false);
  }

  RealClock clock_;
  std::string home_;
  std::string token_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<DeployEngine> engine_;
  std::unique_ptr<AddonManager> addons_;
  std::unique_ptr<ApiServer> api_;
};

TEST_F(AddonsApiTest, AddListAndRemoveWithSecretsMasked) {
  json added = Call("POST", "/v1/projects/shop/addons", R"({"kind": "redis"})", 201);
  EXPECT_EQ(added["name"], "redis");
  EXPECT_EQ(added["state"], "running");
  EXPECT_TRUE(added["created"].get<bool>());
  const int port = added["port"].get<int>();
  EXPECT_EQ(added["variables"]["REDISPASSWORD"], "***");
  EXPECT_EQ(added["variables"]["REDIS_URL"],
            "redis://default:***@127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(added["variables"]["REDISPORT"], std::to_string(port));
  auto real = addons_->Variables("shop", "production", "redis");
  ASSERT_TRUE(real.has_value());
  const std::string password = real->at("REDISPASSWORD");
  EXPECT_EQ(added.dump().find(password), std::string::npos);

  // Idempotent: 200 and the same add-on.
  json again = Call("POST", "/v1/projects/shop/addons", R"({"kind": "redis"})", 200);
  EXPECT_FALSE(again["created"].get<bool>());
  EXPECT_EQ(again["port"], port);

  json listed = Call("GET", "/v1/projects/shop/addons", "", 200);
  ASSERT_EQ(listed["addons"].size(), 1u);
  EXPECT_EQ(listed["addons"][0]["variables"]["REDISPASSWORD"], "***");
  EXPECT_EQ(listed.dump().find(password), std::string::npos);

  json no_backup = Call("POST", "/v1/projects/shop/backups?addon=redis", "{}", 409);
  EXPECT_NE(no_backup["error"].get<std::string>().find("backups are for postgres add-ons"),
            std::string::npos);
  json none = Call("POST", "/v1/projects/shop/backups", "{}", 404);
  EXPECT_NE(none["error"].get<std::string>().find("slipway add postgres"), std::string::npos);
  EXPECT_EQ(Call("POST", "/v1/projects/shop/addons", R"({"kind": "mysql"})", 400)["code"],
            "INVALID_ARGUMENT");

  const int64_t pid = listed["addons"][0]["pid"].get<int64_t>();
  json removed = Call("DELETE", "/v1/projects/shop/addons/redis", "", 200);
  EXPECT_EQ(removed["removed"], "redis");
  EXPECT_EQ(removed["backup"], "");
  EXPECT_FALSE(ProcessAlive(static_cast<pid_t>(pid)));
  EXPECT_TRUE(Call("GET", "/v1/projects/shop/addons", "", 200)["addons"].empty());
  Call("DELETE", "/v1/projects/shop/addons/redis", "", 404);
}

TEST_F(AddonsApiTest, DeletingAnEnvironmentRemovesItsAddons) {
  Call("POST", "/v1/projects/shop/addons", R"({"kind": "redis"})", 201);
  Call("POST", "/v1/projects/shop/environments", R"({"name": "staging"})", 201);
  json staging = Call("POST", "/v1/projects/shop/addons?env=staging",
                      R"({"kind": "redis", "name": "cache"})", 201);
  const int64_t pid = staging["pid"].get<int64_t>();
  ASSERT_TRUE(ProcessAlive(static_cast<pid_t>(pid)));
  Call("DELETE", "/v1/projects/shop/environments/staging", "", 200);
  EXPECT_FALSE(ProcessAlive(static_cast<pid_t>(pid)));
  auto all = store_->ListAddons(0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);  // production's is untouched
  EXPECT_EQ(all->front().name, "redis");
}

}  // namespace
}  // namespace slipway
