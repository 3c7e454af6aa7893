#include "deploy/variables.h"

#include <gtest/gtest.h>

#include <string>

namespace slipway {
namespace {

ServiceVariables Service(const std::string& name, std::map<std::string, std::string> config = {},
                         std::map<std::string, std::string> user = {}) {
  ServiceVariables s;
  s.name = name;
  s.config = std::move(config);
  s.user = std::move(user);
  s.platform["SLIPWAY_PRIVATE_URL"] = "http://" + name + ".shop.localhost:8080";
  s.platform["SLIPWAY_PUBLIC_DOMAIN"] = name + ".shop.localhost";
  return s;
}

VariableScope Shop() {
  VariableScope scope;
  scope.project = "shop";
  scope.environment = "production";
  return scope;
}

std::string ErrorOf(const VariableScope& scope, const std::string& service) {
  auto r = ResolveVariables(scope, {service});
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : r.status().message();
}

TEST(ResolveVariablesTest, LayersFromSharedConfigUpToServiceUser) {
  VariableScope scope = Shop();
  scope.shared_config = {{"A", "shared-config"}, {"B", "shared-config"}, {"C", "shared-config"}};
  scope.shared_user = {{"B", "shared-user"}, {"C", "shared-user"}, {"D", "shared-user"}};
  scope.services.push_back(
      Service("web", {{"C", "svc-config"}, {"D", "svc-config"}}, {{"D", "svc-user"}}));
  auto r = ResolveVariables(scope, {"web"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& v = r->services["web"].values;
  EXPECT_EQ(v.at("A"), "shared-config");
  EXPECT_EQ(v.at("B"), "shared-user");
  EXPECT_EQ(v.at("C"), "svc-config");
  EXPECT_EQ(v.at("D"), "svc-user");
}

TEST(ResolveVariablesTest, EveryReferenceForm) {
  VariableScope scope = Shop();
  scope.shared_config = {{"REGION", "eu"}, {"HOSTPART", "db-${{REGION}}"}};
  scope.addon = [](const std::string& name) -> std::optional<AddonVariables> {
    if (name == "postgres") {
      return AddonVariables{{{"DATABASE_URL", "pg://u:pw@h/db"}, {"PGUSER", "u"}},
                            {"DATABASE_URL"}};
    }
    return std::nullopt;
  };
  ServiceVariables api = Service("api", {{"TOKEN_HEADER", "X-Token"}});
  scope.services.push_back(api);
  ServiceVariables web = Service("web",
                                 {{"S", "${{ shared.REGION }}"},
                                  {"SAME", "${{USER_KEY}}-${{ S }}"},
                                  {"OTHER", "${{ api.TOKEN_HEADER }}"},
                                  {"PRIV", "${{api.SLIPWAY_PRIVATE_URL}}/v1"},
                                  {"DB", "${{ postgres.DATABASE_URL }}"},
                                  {"DB_USER", "${{ postgres.PGUSER }}"},
                                  {"NESTED", "${{ shared.HOSTPART }}"}},
                                 {{"USER_KEY", "k3y-value"}});
  web.user_secret = {"USER_KEY"};
  scope.services.push_back(web);
  auto r = ResolveVariables(scope, {"web"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& out = r->services["web"];
  EXPECT_EQ(out.values.at("S"), "eu");
  EXPECT_EQ(out.values.at("SAME"), "k3y-value-eu");
  EXPECT_EQ(out.values.at("OTHER"), "X-Token");
  EXPECT_EQ(out.values.at("PRIV"), "http://api.shop.localhost:8080/v1");
  EXPECT_EQ(out.values.at("DB"), "pg://u:pw@h/db");
  EXPECT_EQ(out.values.at("DB_USER"), "u");
  EXPECT_EQ(out.values.at("NESTED"), "db-eu");
  EXPECT_EQ(out.values.at("REGION"), "eu");  // shared variables reach every service
  // Secret: set as one, or made from one (or an add-on's password, not its user name).
  EXPECT_EQ(out.secret, (std::set<std::string>{"USER_KEY", "SAME", "DB"}));
}

TEST(ResolveVariablesTest, MissingReferencesNameWhatIsMissing) {
  VariableScope scope = Shop();
  scope.services.push_back(Service("api"));
  scope.services.push_back(Service("web", {{"DATABASE_URL", "${{ postgres.DATABASE_URL }}"}}));
  EXPECT_EQ(ErrorOf(scope, "web"),
            "variable DATABASE_URL of service \"web\": ${{ postgres.DATABASE_URL }}: no service "
            "or add-on named \"postgres\" in project \"shop\" (production)");
  scope.services[1].config = {{"X", "${{ api.NOPE }}"}};
  EXPECT_EQ(ErrorOf(scope, "web"),
            "variable X of service \"web\": ${{ api.NOPE }}: service \"api\" has no variable NOPE");
  scope.services[1].config = {{"X", "${{shared.GONE}}"}};
  EXPECT_EQ(ErrorOf(scope, "web"),
            "variable X of service \"web\": ${{ shared.GONE }}: no shared variable GONE");
  scope.services[1].config = {{"X", "${{ MISSING }}"}};
  EXPECT_EQ(ErrorOf(scope, "web"),
            "variable X of service \"web\": ${{ MISSING }}: service \"web\" has no variable "
            "MISSING");
  scope.services[1].config = {{"X", "a ${{ api.KEY "}};
  EXPECT_EQ(ErrorOf(scope, "web"),
            "variable X of service \"web\": unterminated \"${{\" (a reference ends with \"}}\")");
  scope.addon = [](const std::string&) { return std::optional<AddonVariables>(AddonVariables{}); };
  scope.services[1].config = {{"X", "${{ redis.REDIS_URL }}"}};
  EXPECT_EQ(ErrorOf(scope, "web"),
            "variable X of service \"web\": ${{ redis.REDIS_URL }}: add-on \"redis\" has no "
            "variable REDIS_URL");
}

TEST(ResolveVariablesTest, CyclesAreNamed) {
  VariableScope scope = Shop();
  scope.services.push_back(Service("api", {{"P", "${{ web.A }}"}}));
  scope.services.push_back(Service("web", {{"A", "${{ B }}"}, {"B", "x${{ api.P }}"}}));
  EXPECT_EQ(ErrorOf(scope, "web"),
            "variable A of service \"web\": reference cycle: web.A -> web.B -> api.P -> web.A");
  scope.services[1].config = {{"SELF", "${{ SELF }}"}};
  EXPECT_EQ(ErrorOf(scope, "web"),
            "variable SELF of service \"web\": reference cycle: web.SELF -> web.SELF");
}

TEST(ResolveVariablesTest, RequiredVariablesMustBeSet) {
  VariableScope scope = Shop();
  ServiceVariables web = Service("web", {}, {{"SET_ONE", "x"}});
  web.required = {"SET_ONE", "API_KEY", "STRIPE_KEY"};
  scope.services.push_back(web);
  EXPECT_EQ(ErrorOf(scope, "web"),
            "service \"web\" needs variables API_KEY, STRIPE_KEY: set them with `slipway "
            "variables set API_KEY=... --service web`");
}

TEST(ResolveVariablesTest, GeneratedSecretsAreMadeOnceThenKept) {
  VariableScope scope = Shop();
  scope.services.push_back(Service("web", {{"SESSION_KEY", "${{ secret(48) }}"},
                                           {"PIN", "pin-${{secret(6, \"0123456789\")}}"},
                                           {"COPY", "${{ SESSION_KEY }}"}}));
  auto first = ResolveVariables(scope, {"web"});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const auto& v = first->services["web"].values;
  EXPECT_EQ(v.at("SESSION_KEY").size(), 48u);
  EXPECT_EQ(v.at("COPY"), v.at("SESSION_KEY"));
  ASSERT_EQ(v.at("PIN").size(), 10u);
  EXPECT_EQ(v.at("PIN").find_first_not_of("0123456789", 4), std::string::npos);
  EXPECT_EQ(first->services["web"].secret, (std::set<std::string>{"SESSION_KEY", "PIN", "COPY"}));
  ASSERT_EQ(first->generated.at("web").size(), 2u);

  // The next deploy finds them kept and generates nothing.
  scope.services[0].generated = first->generated.at("web");
  auto second = ResolveVariables(scope, {"web"});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->services["web"].values, v);
  EXPECT_TRUE(second->generated.empty());

  scope.services[0].config = {{"BAD", "${{ secret(0) }}"}};
  EXPECT_NE(ErrorOf(scope, "web").find("the length must be from 1 to 4096"), std::string::npos);
  scope.services[0].config = {{"BAD", "${{ secret(8, abc) }}"}};
  EXPECT_NE(ErrorOf(scope, "web").find("the alphabet is a quoted string"), std::string::npos);
}

TEST(VariableNamesTest, PosixNamesAndReservedOnes) {
  EXPECT_TRUE(CheckSettableVariableName("DATABASE_URL").ok());
  EXPECT_TRUE(CheckSettableVariableName("_x1").ok());
  EXPECT_FALSE(CheckSettableVariableName("1ABC").ok());
  EXPECT_FALSE(CheckSettableVariableName("A-B").ok());
  EXPECT_FALSE(CheckSettableVariableName("").ok());
  EXPECT_EQ(CheckSettableVariableName("PORT").message(),
            "PORT is set by Slipway itself and cannot be changed (PORT and SLIPWAY_* are "
            "reserved)");
  EXPECT_FALSE(CheckSettableVariableName("SLIPWAY_SERVICE").ok());
}

}  // namespace
}  // namespace slipway
