// Static path resolution and the HTTP semantics of static files (types, validators,
// ranges, content codings, caching), from the cases in testdata/.

#include "proxy/static_files.h"

#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "case_file.h"
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

using testing_cases::SplitBar;

TEST(StaticHttpTest, CasesFromTestdata) {
  std::ifstream in(std::string(SLIPWAY_PROXY_TESTDATA) + "/static_http.txt");
  ASSERT_TRUE(in.good());
  int line_number = 0, cases = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    SCOPED_TRACE("static_http.txt:" + std::to_string(line_number) + ": " + line);
    const size_t space = line.find(' ');
    ASSERT_NE(space, std::string::npos);
    const std::string kind = line.substr(0, space);
    const auto f = SplitBar(line.substr(space + 1));
    ++cases;
    if (kind == "type") {
      ASSERT_EQ(f.size(), 2u);
      EXPECT_EQ(ContentTypeFor(f[0]), f[1]);
    } else if (kind == "compressible") {
      ASSERT_EQ(f.size(), 2u);
      EXPECT_EQ(IsCompressible(f[0]), f[1] == "yes");
    } else if (kind == "fingerprint") {
      ASSERT_EQ(f.size(), 2u);
      EXPECT_EQ(IsFingerprinted(f[0]), f[1] == "yes");
      EXPECT_EQ(CacheControlFor(f[0]), f[1] == "yes" ? "public, max-age=31536000, immutable"
                                                     : "public, max-age=0, must-revalidate");
    } else if (kind == "range") {
      ASSERT_EQ(f.size(), 3u);
      const ByteRange r = ParseRange(f[0], std::stoull(f[1]));
      if (f[2] == "ignored") {
        EXPECT_EQ(r.kind, ByteRange::kIgnored);
      } else if (f[2] == "unsatisfiable") {
        EXPECT_EQ(r.kind, ByteRange::kUnsatisfiable);
      } else {
        ASSERT_EQ(r.kind, ByteRange::kPartial);
        EXPECT_EQ(std::to_string(r.first) + "-" + std::to_string(r.first + r.length - 1), f[2]);
      }
    } else if (kind == "ifrange") {
      ASSERT_EQ(f.size(), 4u);
      EXPECT_EQ(IfRangeAllows(f[0], f[1], std::stoll(f[2])), f[3] == "yes");
    } else if (kind == "encoding") {
      ASSERT_EQ(f.size(), 2u);
      const EncodingChoice choice = PreferredEncodings(f[0]);
      std::string got;
      for (int i = 0; i < choice.count; ++i) {
        if (!got.empty()) got += " ";
        got += choice.order[i];
      }
      EXPECT_EQ(got.empty() ? "-" : got, f[1]);
    } else if (kind == "notmodified") {
      ASSERT_EQ(f.size(), 5u);
      EXPECT_EQ(NotModified(f[0], f[1], f[2], std::stoll(f[3])), f[4] == "yes");
    } else if (kind == "date") {
      ASSERT_EQ(f.size(), 2u);
      const auto got = ParseHttpDate(f[0]);
      EXPECT_EQ(got ? std::to_string(*got) : "-", f[1]);
    } else {
      ADD_FAILURE() << "unknown kind " << kind;
    }
  }
  EXPECT_GT(cases, 100);
}

TEST(StaticHttpTest, ETagsAreStrongAndDifferPerEncoding) {
  EXPECT_EQ(MakeETag(1500, 0x17a2b3c4d5e6f708, ""), "\"5dc-17a2b3c4d5e6f708\"");
  EXPECT_EQ(MakeETag(1500, 0x17a2b3c4d5e6f708, "br"), "\"5dc-17a2b3c4d5e6f708-br\"");
  EXPECT_EQ(MakeETag(1500, 0x17a2b3c4d5e6f708, "gzip"), "\"5dc-17a2b3c4d5e6f708-gz\"");
}

}  // namespace
}  // namespace slipway::proxy
