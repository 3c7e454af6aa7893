#include "config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/fs.h"

namespace slipway {
namespace {

// A fresh directory for one test, removed with everything in it afterwards.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/config_test.XXXXXX";
    char* made = mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr);
    path_ = tmpl;
  }
  ~TempDir() { (void)RemoveTree(path_); }
  const std::string& path() const { return path_; }
  void Write(const std::string& name, const std::string& content) const {
    ASSERT_TRUE(WriteFileAtomic(path_ + "/" + name, content).ok());
  }

 private:
  std::string path_;
};

TEST(LoadProjectConfigTest, ReadsSlipwayToml) {
  TempDir dir;
  ASSERT_TRUE(MakeDirs(dir.path() + "/api").ok());
  dir.Write("slipway.toml", R"(project = "bytomorrow"
[services.api]
rootDirectory = "api"
startCommand = "uvicorn main:app --port $PORT"
)");
  dir.Write("Procfile", "web: ignored-when-slipway-toml-exists\n");
  auto config = LoadProjectConfig(dir.path(), "some-dir");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->name, "bytomorrow");
  EXPECT_EQ(config->source, "slipway.toml");
  EXPECT_EQ(config->sources, std::vector<std::string>{"slipway.toml"});
  ASSERT_EQ(config->services.size(), 1u);
  EXPECT_EQ(config->services[0].name, "api");
  EXPECT_EQ(config->services[0].root_directory, "api");
  EXPECT_EQ(config->services[0].start_command, "uvicorn main:app --port $PORT");
  EXPECT_TRUE(config->warnings.empty());
}

TEST(LoadProjectConfigTest, UsesTheSanitisedFallbackNameWhenTomlHasNoProject) {
  TempDir dir;
  dir.Write("slipway.toml", "startCommand = \"./run\"\n");
  auto config = LoadProjectConfig(dir.path(), "My Project_2");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->name, "my-project-2");
  ASSERT_EQ(config->services.size(), 1u);
  EXPECT_EQ(config->services[0].name, "web");
  EXPECT_EQ(config->services[0].root_directory, ".");
}

TEST(LoadProjectConfigTest, RootDirectoryMustExist) {
  TempDir dir;
  dir.Write("slipway.toml", "[services.api]\nrootDirectory = \"api\"\n");
  auto config = LoadProjectConfig(dir.path(), "app");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(),
            "slipway.toml:2:17: \"rootDirectory\" \"api\" is not a "
            "directory in " +
                dir.path() + " (create it or fix the path)");
  // The same text parses without a directory to check against.
  EXPECT_TRUE(
      ParseSlipwayToml("[services.api]\nrootDirectory = \"api\"\n", "slipway.toml", "app").ok());
}

TEST(LoadProjectConfigTest, TomlErrorsNameTheFileLineAndColumn) {
  TempDir dir;
  dir.Write("slipway.toml", "[services.api]\nhealthcheck_path = \"/health\"\n");
  auto config = LoadProjectConfig(dir.path(), "app");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(),
            "slipway.toml:2:1: unknown key \"healthcheck_path\" in [services.api] (did you mean "
            "\"healthcheckPath\"?)");
}

TEST(LoadProjectConfigTest, ProcfileGivesWebReleaseAndWorkers) {
  TempDir dir;
  dir.Write("Procfile",
            "# processes\n"
            "web: gunicorn app:app --bind 0.0.0.0:$PORT\n"
            "worker: python worker.py\n"
            "\n"
            "release: alembic upgrade head\r\n");
  auto config = LoadProjectConfig(dir.path(), "policy-backend");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->name, "policy-backend");
  EXPECT_EQ(config->source, "Procfile");
  ASSERT_EQ(config->services.size(), 2u);
  const ServiceConfig& web = config->services[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.type, "web");
  EXPECT_EQ(web.root_directory, ".");
  EXPECT_EQ(web.start_command, "gunicorn app:app --bind 0.0.0.0:$PORT");
  EXPECT_EQ(web.procfile_release, "alembic upgrade head");
  const ServiceConfig& worker = config->services[1];
  EXPECT_EQ(worker.name, "worker");
  EXPECT_EQ(worker.type, "worker");
  EXPECT_EQ(worker.start_command, "python worker.py");
  EXPECT_EQ(config->origins.at("services.worker.startCommand"), "Procfile");
  EXPECT_TRUE(config->warnings.empty());
}

TEST(LoadProjectConfigTest, MalformedProcfileIsAnError) {
  TempDir dir;
  dir.Write("Procfile", "web: ./run\nthis line has no colon\n");
  auto config = LoadProjectConfig(dir.path(), "app");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(), "Procfile:2: expected \"type: command\"");
}

TEST(LoadProjectConfigTest, NothingDeclaredIsOneDetectedWebService) {
  TempDir dir;
  dir.Write("index.html", "<h1>hi</h1>\n");
  auto config = LoadProjectConfig(dir.path(), "research-dashboard");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->name, "research-dashboard");
  EXPECT_EQ(config->source, "detected");
  ASSERT_EQ(config->services.size(), 1u);
  const ServiceConfig& web = config->services[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.root_directory, ".");
  EXPECT_EQ(web.builder, "");
  EXPECT_EQ(web.start_command, "");
  EXPECT_EQ(web.healthcheck_timeout, 60);
  EXPECT_EQ(web.num_replicas, 1);
  EXPECT_TRUE(config->warnings.empty());
}

TEST(LoadProjectConfigTest, UnusableDirectoryNameAsksForAProjectName) {
  TempDir dir;
  auto config = LoadProjectConfig(dir.path(), "___");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("project = \"my-app\""), std::string::npos)
      << config.status().message();

  dir.Write("slipway.toml", "numReplicas = 2\n");
  config = LoadProjectConfig(dir.path(), "___");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "slipway.toml: cannot name the project after the directory \"___\": set project = "
            "\"my-app\" at the top of slipway.toml");

  dir.Write("slipway.toml", "project = \"named\"\n");
  config = LoadProjectConfig(dir.path(), "___");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->name, "named");
}

TEST(LoadProjectConfigTest, UnreadableSlipwayTomlIsNamed) {
  TempDir dir;
  ASSERT_TRUE(MakeDirs(dir.path() + "/slipway.toml").ok());
  auto config = LoadProjectConfig(dir.path(), "app");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("cannot read slipway.toml"), std::string::npos)
      << config.status().message();

  if (geteuid() != 0) {  // root reads files whatever their mode
    TempDir other;
    other.Write("slipway.toml", "project = \"x\"\n");
    ASSERT_EQ(chmod((other.path() + "/slipway.toml").c_str(), 0), 0);
    config = LoadProjectConfig(other.path(), "app");
    ASSERT_FALSE(config.ok());
    EXPECT_NE(config.status().message().find("cannot read slipway.toml"), std::string::npos)
        << config.status().message();
    EXPECT_NE(config.status().message().find(other.path() + "/slipway.toml"), std::string::npos)
        << config.status().message();
  }
}

TEST(LoadProjectConfigTest, MissingDirectoryIsNotFound) {
  auto config = LoadProjectConfig("/nonexistent/slipway-config-test", "app");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kNotFound);
}

TEST(ParseProcfileTest, ReadsTypesInFileOrder) {
  auto entries = ParseProcfile(
      "# comment\n"
      "\n"
      "web: npm start\n"
      "  release:   node migrate.js  \n"
      "worker_2: node worker.js --queue=a:b\n"
      "clock-job:python clock.py");
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  using P = std::pair<std::string, std::string>;
  std::vector<P> expected = {P{"web", "npm start"}, P{"release", "node migrate.js"},
                             P{"worker_2", "node worker.js --queue=a:b"},
                             P{"clock-job", "python clock.py"}};
  EXPECT_EQ(*entries, expected);
}

TEST(ParseProcfileTest, EmptyTextHasNoEntries) {
  auto entries = ParseProcfile("");
  ASSERT_TRUE(entries.ok());
  EXPECT_TRUE(entries->empty());
}

TEST(ParseProcfileTest, MalformedLinesNameTheirLine) {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"web: ok\n\n# c\nno colon here\n", "Procfile:4: expected \"type: command\""},
      {"web:\n", "Procfile:1: expected \"type: command\""},
      {"web:   \n", "Procfile:1: expected \"type: command\""},
      {": ./run\n", "Procfile:1: expected \"type: command\""},
      {"web app: ./run\n", "Procfile:1: expected \"type: command\""},
      {"w.eb: ./run\n", "Procfile:1: expected \"type: command\""},
      {"web: a\nweb: b\n", "Procfile:2: process type \"web\" is defined twice (first on line 1)"},
  };
  for (const auto& c : cases) {
    auto entries = ParseProcfile(c.text);
    ASSERT_FALSE(entries.ok()) << c.text;
    EXPECT_EQ(entries.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(entries.status().message(), c.message) << c.text;
  }
}

TEST(ServiceConfigJsonTest, RoundTripsEveryField) {
  ServiceConfig config;
  config.name = "api";
  config.root_directory = "services/api";
  config.builder = "python";
  config.build_command = "pip install -e .";
  config.start_command = "uvicorn main:app --host 0.0.0.0 --port \"$PORT\"";
  config.static_directory = "static";
  config.healthcheck_path = "/api/health";
  config.healthcheck_timeout = 300;
  config.num_replicas = 4;
  config.variables = {{"LOG_LEVEL", "debug"}, {"GREETING", "h\xC3\xA9llo\nworld"}, {"EMPTY", ""}};
  config.procfile_release = "alembic upgrade head";
  config.pre_deploy_command = "python3 migrate.py";
  config.healthcheck_host = "api.example.com";
  config.healthcheck_interval = 2;
  config.draining_seconds = 7;
  config.overlap_seconds = 3;
  config.restart_policy = "ALWAYS";
  config.restart_max_retries = 4;
  config.keep_releases = 3;
  config.auto_rollback.enabled = false;
  config.auto_rollback.watch_seconds = 30;
  config.auto_rollback.error_rate_percent = 12.5;
  config.auto_rollback.p95_ms = 800;
  config.auto_rollback.memory_mb = 256;
  config.type = "cron";
  config.cron_schedule = "0 2 * * *";
  config.required_variables = {"STRIPE_KEY"};
  config.watch_patterns = {"/api/**", "!**/*.md"};
  config.rewrites = {{"/api/:path*", "https://api.example.com/:path*", 0}};
  config.redirects = {{"/old", "/new", 301}};
  config.headers = {{"/(.*)", {{"X-Frame-Options", "DENY"}, {"Cache-Control", "no-store"}}}};
  config.clean_urls = true;
  config.trailing_slash = "remove";

  std::string json = ServiceConfigToJson(config);
  EXPECT_NE(json.find("\"healthcheckPath\":\"/api/health\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"procfileRelease\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"numReplicas\":4"), std::string::npos) << json;

  auto back = ServiceConfigFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->name, config.name);
  EXPECT_EQ(back->root_directory, config.root_directory);
  EXPECT_EQ(back->builder, config.builder);
  EXPECT_EQ(back->build_command, config.build_command);
  EXPECT_EQ(back->start_command, config.start_command);
  EXPECT_EQ(back->static_directory, config.static_directory);
  EXPECT_EQ(back->healthcheck_path, config.healthcheck_path);
  EXPECT_EQ(back->healthcheck_timeout, config.healthcheck_timeout);
  EXPECT_EQ(back->num_replicas, config.num_replicas);
  EXPECT_EQ(back->variables, config.variables);
  EXPECT_EQ(back->procfile_release, config.procfile_release);
  EXPECT_EQ(back->pre_deploy_command, "python3 migrate.py");
  EXPECT_EQ(back->restart_policy, "ALWAYS");
  EXPECT_EQ(back->keep_releases, 3);
  EXPECT_FALSE(back->auto_rollback.enabled);
  EXPECT_EQ(back->auto_rollback.error_rate_percent, 12.5);
  EXPECT_EQ(back->auto_rollback.memory_mb, 256);
  EXPECT_EQ(back->type, "cron");
  EXPECT_EQ(back->cron_schedule, "0 2 * * *");
  EXPECT_EQ(back->required_variables, config.required_variables);
  EXPECT_EQ(back->watch_patterns, config.watch_patterns);
  ASSERT_EQ(back->redirects.size(), 1u);
  EXPECT_EQ(back->redirects[0].status, 301);
  ASSERT_EQ(back->headers.size(), 1u);
  EXPECT_EQ(back->headers[0].headers[1].second, "no-store");
  EXPECT_TRUE(back->clean_urls);
  EXPECT_EQ(back->trailing_slash, "remove");
  EXPECT_EQ(ServiceConfigToJson(*back), json);
}

TEST(ParseSlipwayTomlTest, ReadsDeployPoliciesAndAutoRollback) {
  auto config = ParseSlipwayToml(R"(
project = "shop"
[services.web]
startCommand = "python3 server.py"
preDeployCommand = "python3 migrate.py"
restartPolicyType = "NEVER"
drainingSeconds = 5
overlapSeconds = 2
keepReleases = 4
[services.web.autoRollback]
watchSeconds = 60
errorRatePercent = 2.5
errorRateMinRequests = 10
p95Ms = 500
)",
                                 "slipway.toml", "x");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const ServiceConfig& web = config->services.at(0);
  EXPECT_EQ(web.pre_deploy_command, "python3 migrate.py");
  EXPECT_EQ(web.restart_policy, "NEVER");
  EXPECT_EQ(web.draining_seconds, 5);
  EXPECT_EQ(web.overlap_seconds, 2);
  EXPECT_EQ(web.keep_releases, 4);
  EXPECT_TRUE(web.auto_rollback.enabled);
  EXPECT_EQ(web.auto_rollback.watch_seconds, 60);
  EXPECT_EQ(web.auto_rollback.error_rate_percent, 2.5);
  EXPECT_EQ(web.auto_rollback.error_rate_min_requests, 10);
  EXPECT_EQ(web.auto_rollback.p95_ms, 500);
  EXPECT_EQ(web.auto_rollback.failed_health_checks, 3);  // default kept
}

TEST(ParseSlipwayTomlTest, DeployPolicyErrorsNameTheKeyAndSuggest) {
  auto policy = ParseSlipwayToml("restartPolicyType = \"ON_FAILUR\"\n", "slipway.toml", "x");
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.status().message(),
            "slipway.toml:1:21: \"restartPolicyType\" must be one of \"ON_FAILURE\", "
            "\"ALWAYS\", \"NEVER\" (got \"ON_FAILUR\"; did you mean \"ON_FAILURE\"?)");
  auto key = ParseSlipwayToml("[autoRollback]\nerrorRatePercnt = 5\n", "slipway.toml", "x");
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().message(),
            "slipway.toml:2:1: unknown key \"errorRatePercnt\" in [autoRollback] (did you mean "
            "\"errorRatePercent\"?)");
}

TEST(ServiceConfigJsonTest, MissingKeysKeepDefaults) {
  auto config = ServiceConfigFromJson(R"({"name": "worker"})");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->name, "worker");
  EXPECT_EQ(config->root_directory, ".");
  EXPECT_EQ(config->healthcheck_timeout, 60);
  EXPECT_EQ(config->num_replicas, 1);
  EXPECT_TRUE(config->variables.empty());
}

TEST(ServiceConfigJsonTest, RejectsMalformedJson) {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {"{", "service config JSON: not valid JSON"},
      {"[]", "service config JSON: expected an object"},
      {R"({"name": 5})", "service config JSON: \"name\" must be a string"},
      {R"({"numReplicas": "2"})",
       "service config JSON: \"numReplicas\" must be an integer from 1 to 32"},
      {R"({"numReplicas": 33})",
       "service config JSON: \"numReplicas\" must be an integer from 1 to 32"},
      {R"({"healthcheckTimeout": 0})",
       "service config JSON: \"healthcheckTimeout\" must be an integer from 1 to 3600"},
      {R"({"variables": {"A": 1}})", "service config JSON: variable \"A\" must be a string"},
      {R"({"variables": []})", "service config JSON: \"variables\" must be an object"},
  };
  for (const auto& c : cases) {
    auto config = ServiceConfigFromJson(c.json);
    ASSERT_FALSE(config.ok()) << c.json;
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(config.status().message(), c.message) << c.json;
  }
  auto bad_name = ServiceConfigFromJson(R"({"name": "Bad Name"})");
  ASSERT_FALSE(bad_name.ok());
  EXPECT_NE(bad_name.status().message().find("service name \"Bad Name\""), std::string::npos);
}

}  // namespace
}  // namespace slipway
