// `slipway config show`: what it prints for configs read from each kind of file.

#include "cli/config_command.h"

#include <gtest/gtest.h>

#include "config/importers.h"

namespace slipway {
namespace {

TEST(ConfigShowTest, TextShowsNonDefaultValuesWithTheirOrigins) {
  auto config = ImportComposeWithEnv(
      "services:\n"
      "  web:\n"
      "    build: .\n"
      "    command: uvicorn main:app --port 8000\n"
      "    ports: [\"8000:8000\"]\n"
      "    environment:\n"
      "      DATABASE_URL: postgres://u:p@db:5432/app\n"
      "      API_TOKEN: ${TOKEN}\n"
      "  db:\n"
      "    image: postgres:16\n",
      "docker-compose.yml", {{"TOKEN", "s3cr3t-value"}});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  config->name = "shop";
  config->sources = {"docker-compose.yml"};
  std::string text = FormatConfigText(*config, "/apps/shop", /*all=*/false);

  EXPECT_NE(text.find("# /apps/shop: read from docker-compose.yml\n"), std::string::npos) << text;
  EXPECT_NE(text.find("project = \"shop\""), std::string::npos) << text;
  EXPECT_NE(text.find("# directory name\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n[services.web]\n"), std::string::npos) << text;
  EXPECT_NE(
      text.find("startCommand = \"uvicorn main:app --port $PORT\"  # docker-compose.yml:4:14\n"),
      std::string::npos)
      << text;
  // A reference stays unresolved; a value from .env is hidden.
  EXPECT_NE(text.find("DATABASE_URL = \"${{ db.DATABASE_URL }}\""), std::string::npos) << text;
  EXPECT_NE(text.find("API_TOKEN = \"***\""), std::string::npos) << text;
  EXPECT_EQ(text.find("s3cr3t-value"), std::string::npos) << text;
  EXPECT_NE(text.find("[addons.db]\nkind = \"postgres\""), std::string::npos) << text;
  EXPECT_NE(text.find("warning: docker-compose.yml:9:3: service \"db\" becomes postgres add-on"),
            std::string::npos)
      << text;
  // Defaults are left out unless asked for.
  EXPECT_EQ(text.find("keepReleases"), std::string::npos) << text;
  std::string all = FormatConfigText(*config, "/apps/shop", /*all=*/true);
  EXPECT_NE(all.find("keepReleases = 10"), std::string::npos) << all;
  EXPECT_NE(all.find("# default\n"), std::string::npos) << all;
}

TEST(ConfigShowTest, JsonHasValueAndOriginForEachField) {
  auto config = ImportVercel("{\n  \"outputDirectory\": \"dist\",\n  \"cleanUrls\": true\n}\n",
                             "vercel.json");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  config->name = "site";
  config->sources = {"vercel.json"};
  auto j = ConfigToJson(*config, "/apps/site", /*all=*/false);
  EXPECT_EQ(j["project"]["value"], "site");
  EXPECT_EQ(j["services"]["web"]["staticDirectory"]["value"], "dist");
  EXPECT_EQ(j["services"]["web"]["staticDirectory"]["origin"], "vercel.json:2:22");
  EXPECT_EQ(j["services"]["web"]["cleanUrls"]["value"], true);
  EXPECT_EQ(j["services"]["web"]["cleanUrls"]["origin"], "vercel.json:3:16");
  EXPECT_FALSE(j["services"]["web"].contains("numReplicas"));
  EXPECT_EQ(j["warnings"].size(), 0u);  // the edge applies cleanUrls: nothing to warn about
  auto all = ConfigToJson(*config, "/apps/site", /*all=*/true);
  EXPECT_EQ(all["services"]["web"]["numReplicas"]["value"], 1);
  EXPECT_EQ(all["services"]["web"]["numReplicas"]["origin"], "default");
}

TEST(ConfigShowTest, SlipwayTomlOriginsAndSharedVariables) {
  auto config = ParseSlipwayToml(
      "project = \"p\"\n[variables]\nKEY = \"v\"\n[services.api]\nnumReplicas = 2\n"
      "[services.api.autoRollback]\np95Ms = 800\n",
      "slipway.toml", "p");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  config->sources = {"slipway.toml"};
  std::string text = FormatConfigText(*config, "/p", false);
  EXPECT_NE(text.find("project = \"p\""), std::string::npos) << text;
  EXPECT_NE(text.find("# slipway.toml:1:11\n"), std::string::npos) << text;
  EXPECT_NE(text.find("numReplicas = 2"), std::string::npos) << text;
  EXPECT_NE(text.find("# slipway.toml:5:15\n"), std::string::npos) << text;
  EXPECT_NE(text.find("autoRollback.p95Ms = 800"), std::string::npos) << text;
  EXPECT_NE(text.find("[variables]  # shared: ${{ shared.KEY }}\nKEY = \"v\""), std::string::npos)
      << text;
}

TEST(ConfigShowTest, PostgresBackupSettingsWithOriginsAndDefaults) {
  auto config = ParseSlipwayToml(
      "[addons.db]\nkind = \"postgres\"\nbackupSchedule = \"30 4 * * *\"\n"
      "[addons.audit]\nkind = \"postgres\"\n[addons.cache]\nkind = \"redis\"\n",
      "slipway.toml", "p");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  config->sources = {"slipway.toml"};
  std::string text = FormatConfigText(*config, "/p", false);
  EXPECT_NE(text.find("[addons.db]\nkind = \"postgres\""), std::string::npos) << text;
  EXPECT_NE(text.find("backupSchedule = \"30 4 * * *\"                 # slipway.toml:3:18\n"),
            std::string::npos)
      << text;
  // Settings left at their defaults are shown with --all only, and never for redis.
  EXPECT_EQ(text.find("backupRetention"), std::string::npos) << text;
  std::string all = FormatConfigText(*config, "/p", true);
  EXPECT_NE(all.find("[addons.audit]\n"
                     "kind = \"postgres\"                             # slipway.toml:4:9\n"
                     "backupSchedule = \"0 3 * * *\"                  # default\n"
                     "backupRetention = 7                           # default\n"),
            std::string::npos)
      << all;
  EXPECT_NE(
      all.find(
          "[addons.cache]\nkind = \"redis\"                                # slipway.toml:6:9\n"),
      std::string::npos)
      << all;
  EXPECT_EQ(all.find("backupRetention", all.find("[addons.cache]")), std::string::npos) << all;

  auto j = ConfigToJson(*config, "/p", false);
  EXPECT_EQ(j["addons"]["db"]["kind"], "postgres");
  EXPECT_EQ(j["addons"]["db"]["backupSchedule"]["value"], "30 4 * * *");
  EXPECT_EQ(j["addons"]["db"]["backupSchedule"]["origin"], "slipway.toml:3:18");
  EXPECT_FALSE(j["addons"]["db"].contains("backupRetention"));
  auto j_all = ConfigToJson(*config, "/p", true);
  EXPECT_EQ(j_all["addons"]["db"]["backupRetention"]["value"], 7);
  EXPECT_EQ(j_all["addons"]["db"]["backupRetention"]["origin"], "default");
  EXPECT_FALSE(j_all["addons"]["cache"].contains("backupSchedule"));
}

}  // namespace
}  // namespace slipway
