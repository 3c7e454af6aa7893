#include "deploy/watch.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/fs.h"

namespace slipway {
namespace {

// A monorepo with an api and a web service and a shared library.
class WatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "slipway_watch_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    Write("api/main.py", "print('api')\n");
    Write("api/README.md", "the api\n");
    Write("web/index.html", "<h1>web</h1>\n");
    Write("shared/util.py", "X = 1\n");
  }
  void TearDown() override { EXPECT_TRUE(RemoveTree(dir_).ok()); }

  void Write(const std::string& relative, const std::string& text) {
    std::string path = dir_ + "/" + relative;
    ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
    ASSERT_TRUE(WriteFileAtomic(path, text, 0644).ok());
  }

  std::string Digest(const std::vector<std::string>& patterns, const std::string& config = "{}") {
    auto d = WatchDigest(dir_, patterns, config);
    EXPECT_TRUE(d.ok()) << d.status().message();
    return d.ok() ? *d : "";
  }

  std::string dir_;
};

TEST_F(WatchTest, OnlyMatchedFilesChangeTheDigest) {
  const std::vector<std::string> api = {"/api/**", "/shared/", "!**/*.md"};
  const std::string before = Digest(api);
  EXPECT_EQ(before.size(), 64u);
  EXPECT_EQ(Digest(api), before) << "stable";

  Write("web/index.html", "<h1>web v2</h1>\n");
  EXPECT_EQ(Digest(api), before) << "a change outside the patterns";
  Write("api/README.md", "docs only\n");
  EXPECT_EQ(Digest(api), before) << "a negated file";

  Write("shared/util.py", "X = 2\n");
  const std::string shared_changed = Digest(api);
  EXPECT_NE(shared_changed, before);
  Write("api/new.py", "");
  EXPECT_NE(Digest(api), shared_changed) << "a new matched file";
  ASSERT_EQ(unlink((dir_ + "/api/new.py").c_str()), 0);
  EXPECT_EQ(Digest(api), shared_changed) << "removing it again";
  ASSERT_EQ(rename((dir_ + "/api/main.py").c_str(), (dir_ + "/api/app.py").c_str()), 0);
  EXPECT_NE(Digest(api), shared_changed) << "a rename";
}

TEST_F(WatchTest, ConfigIsPartOfTheDigest) {
  EXPECT_NE(Digest({"/api/**"}, R"({"startCommand":"a"})"),
            Digest({"/api/**"}, R"({"startCommand":"b"})"));
}

TEST_F(WatchTest, BadPatternIsNamed) {
  auto d = WatchDigest(dir_, {"api/[x"}, "{}");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("api/[x"), std::string::npos);
}

TEST_F(WatchTest, DigestIsKeptInTheManifestJson) {
  const std::string manifest = R"({"kind":"python","app_dir":"/r/app"})";
  EXPECT_FALSE(RecordedWatchDigest(manifest).has_value());
  const std::string with = WithWatchDigest(manifest, "abc");
  EXPECT_EQ(RecordedWatchDigest(with), "abc");
  EXPECT_NE(with.find("\"app_dir\":\"/r/app\""), std::string::npos) << "the rest is kept";
  EXPECT_FALSE(RecordedWatchDigest("not json").has_value());
}

}  // namespace
}  // namespace slipway
