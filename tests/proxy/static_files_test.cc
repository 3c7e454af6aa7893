// Static path resolution and content types, from the cases in testdata/.

#include "proxy/static_files.h"

#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"

namespace slipway::proxy {
namespace {

struct PathCase {
  int line;
  std::string target;
  std::string kind;
  std::string expected;
};

std::vector<PathCase> LoadPathCases() {
  std::ifstream in(std::string(SLIPWAY_PROXY_TESTDATA) + "/static_paths.txt");
  std::vector<PathCase> cases;
  std::string text;
  int line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (text.empty() || text[0] == '#') continue;
    std::istringstream fields(text);
    PathCase c{line, "", "", ""};
    fields >> c.target >> c.kind;
    std::getline(fields, c.expected);
    c.expected.erase(0, c.expected.find_first_not_of(' '));
    cases.push_back(c);
  }
  return cases;
}

TEST(StaticPathsTest, CasesFromTestdata) {
  proxy_test::TempDir dir;
  dir.Write("root/index.html", "home");
  dir.Write("root/notes.txt", "notes");
  dir.Write("root/my file.txt", "spaced");
  dir.Write("root/docs/index.html", "docs");
  dir.Write("root/docs/.git/config", "git");
  dir.Write("root/.env", "SECRET=1");
  dir.Write("root/.well-known/acme.txt", "token");
  dir.Write("secret.txt", "outside");
  dir.Write("outside/secret.txt", "outside");
  std::filesystem::create_directories(dir.path() + "/root/empty");
  std::filesystem::create_symlink(dir.path() + "/secret.txt", dir.path() + "/root/escape");
  std::filesystem::create_symlink(dir.path() + "/outside", dir.path() + "/root/escape-dir");
  std::filesystem::create_symlink("notes.txt", dir.path() + "/root/inner-link");
  char real[PATH_MAX];
  ASSERT_NE(::realpath((dir.path() + "/root").c_str(), real), nullptr);
  const std::string root = real;

  auto cases = LoadPathCases();
  ASSERT_GT(cases.size(), 20u);
  for (const auto& c : cases) {
    SCOPED_TRACE("static_paths.txt:" + std::to_string(c.line) + ": " + c.target);
    StaticLookup got = ResolveStaticPath(root, c.target);
    if (c.kind == "file") {
      EXPECT_EQ(got.kind, StaticLookup::kFile);
      EXPECT_EQ(got.path, root + "/" + c.expected);
    } else if (c.kind == "redirect") {
      EXPECT_EQ(got.kind, StaticLookup::kRedirect);
      EXPECT_EQ(got.path, c.expected);
    } else if (c.kind == "notfound") {
      EXPECT_EQ(got.kind, StaticLookup::kNotFound) << got.path;
    } else if (c.kind == "bad") {
      EXPECT_EQ(got.kind, StaticLookup::kBadPath) << got.path;
      EXPECT_FALSE(got.reason.empty());
    } else {
      ADD_FAILURE() << "unknown kind " << c.kind;
    }
  }
}

TEST(StaticFilesTest, ContentTypes) {
  EXPECT_EQ(ContentTypeFor("/a/index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("x.CSS"), "text/css; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("x.mjs"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("x.webp"), "image/webp");
  EXPECT_EQ(ContentTypeFor("favicon.ico"), "image/x-icon");
  EXPECT_EQ(ContentTypeFor("Makefile"), "application/octet-stream");
  EXPECT_EQ(ContentTypeFor("dir.d/noext"), "application/octet-stream");
  EXPECT_EQ(ContentTypeFor("trailing."), "application/octet-stream");
}

TEST(StaticFilesTest, PercentDecode) {
  std::string out;
  EXPECT_TRUE(PercentDecode("/a%20b%2Fc", &out));
  EXPECT_EQ(out, "/a b/c");
  EXPECT_FALSE(PercentDecode("%2", &out));
  EXPECT_FALSE(PercentDecode("%g0", &out));
  EXPECT_TRUE(PercentDecode("a+b", &out));
  EXPECT_EQ(out, "a+b");
}

TEST(StaticFilesTest, HttpDate) { EXPECT_EQ(HttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT"); }

}  // namespace
}  // namespace slipway::proxy
