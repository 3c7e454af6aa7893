// vercel.json and docker-compose.yml read through LoadProjectConfig, from real directories.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "common/fs.h"
#include "config/config.h"
#include "config/importers.h"

namespace slipway {
namespace {

class ImportDirTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("slipway-import-" + std::to_string(::getpid()) + "-" +
            testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::filesystem::create_directories((dir_ / name).parent_path());
    ASSERT_TRUE(WriteFileAtomic((dir_ / name).string(), text).ok());
  }
  static bool HasWarning(const ProjectConfig& c, const std::string& part) {
    return std::any_of(c.warnings.begin(), c.warnings.end(),
                       [&](const std::string& w) { return w.find(part) != std::string::npos; });
  }
  std::filesystem::path dir_;
};

TEST_F(ImportDirTest, ComposeInterpolatesFromTheDotEnvNextToIt) {
  Write("api/main.py", "");
  Write("docker-compose.yml",
        "services:\n"
        "  api:\n"
        "    build: ./api\n"
        "    command: uvicorn main:app --port ${APP_PORT:-8000}\n"
        "    ports: [\"8000:8000\"]\n"
        "    environment:\n"
        "      GREETING: ${GREETING:-hello}\n");
  Write(".env", "GREETING=bonjour\n");
  auto config = LoadProjectConfig(dir_.string(), "shop");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->source, "docker-compose.yml");
  ASSERT_EQ(config->services.size(), 1u);
  const ServiceConfig& api = config->services[0];
  EXPECT_EQ(api.name, "api");
  EXPECT_EQ(api.root_directory, "api");
  EXPECT_EQ(api.variables.at("GREETING"), "bonjour");
  EXPECT_EQ(api.start_command, "uvicorn main:app --port $PORT");
  EXPECT_EQ(config->origins.at("services.api.variables.GREETING"),
            "docker-compose.yml:7:17 (.env)");
  EXPECT_TRUE(HasWarning(*config, "port 8000 in the command is replaced with $PORT"));
}

TEST_F(ImportDirTest, ComposeBuildContextMustExist) {
  Write("docker-compose.yml", "services:\n  web:\n    build: ./missing\n    ports: [\"80:80\"]\n");
  auto config = LoadProjectConfig(dir_.string(), "shop");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message().rfind("docker-compose.yml:3:12: ", 0), 0u)
      << config.status().message();
}

TEST_F(ImportDirTest, MalformedDotEnvNamesItsLine) {
  Write("docker-compose.yml", "services:\n  web:\n    build: .\n");
  Write(".env", "A=1\nthis is not an assignment\n");
  auto config = LoadProjectConfig(dir_.string(), "shop");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(), ".env:2: expected KEY=VALUE");
}

TEST_F(ImportDirTest, VercelStaticSiteIsOneStaticWebService) {
  Write("public/index.html", "<h1>hi</h1>");
  Write("vercel.json", "{\n  \"outputDirectory\": \"public\",\n  \"cleanUrls\": true\n}\n");
  auto config = LoadProjectConfig(dir_.string(), "site");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_EQ(config->services.size(), 1u);
  EXPECT_EQ(config->services[0].builder, "static");
  EXPECT_EQ(config->services[0].static_directory, "public");
  EXPECT_TRUE(config->services[0].clean_urls);
  EXPECT_EQ(config->origins.at("services.web.staticDirectory"), "vercel.json:2:22");
  EXPECT_TRUE(config->warnings.empty());  // the edge applies cleanUrls
}

TEST_F(ImportDirTest, MalformedVercelJsonIsOneLineWithItsPosition) {
  Write("vercel.json", "{\n  \"cleanUrls\": true,\n}\n");
  auto config = LoadProjectConfig(dir_.string(), "site");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message().rfind("vercel.json:3:1: ", 0), 0u)
      << config.status().message();
}

TEST(ParseDotEnvTest, QuotesCommentsAndExport) {
  auto env = ParseDotEnv("# c\nA=1\nexport B='x y'\nC=\"l1\\nl2\"\nD=v # note\n\nE=\n", ".env");
  ASSERT_TRUE(env.ok()) << env.status().ToString();
  EXPECT_EQ(env->at("A"), "1");
  EXPECT_EQ(env->at("B"), "x y");
  EXPECT_EQ(env->at("C"), "l1\nl2");
  EXPECT_EQ(env->at("D"), "v");
  EXPECT_EQ(env->at("E"), "");
  EXPECT_FALSE(ParseDotEnv("A='open\n", ".env").ok());
}

}  // namespace
}  // namespace slipway
