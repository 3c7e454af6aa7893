#include "common/glob.h"

#include <gtest/gtest.h>

namespace slipway {
namespace {

// Whether `path` is matched by `patterns`.
bool M(const std::vector<std::string>& patterns, const std::string& path) {
  auto parsed = PathPatterns::Parse(patterns);
  EXPECT_TRUE(parsed.ok()) << parsed.status().message();
  return parsed.ok() && parsed->Matches(path);
}

TEST(GlobTest, SegmentWildcards) {
  EXPECT_TRUE(GlobMatchSegment("*.py", "main.py"));
  EXPECT_TRUE(GlobMatchSegment("*.py", ".py"));
  EXPECT_FALSE(GlobMatchSegment("*.py", "main.pyc"));
  EXPECT_TRUE(GlobMatchSegment("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(GlobMatchSegment("a*b*c", "aXXbYY"));
  EXPECT_TRUE(GlobMatchSegment("?.txt", "a.txt"));
  EXPECT_FALSE(GlobMatchSegment("?.txt", "ab.txt"));
  EXPECT_TRUE(GlobMatchSegment("file[0-9].txt", "file7.txt"));
  EXPECT_FALSE(GlobMatchSegment("file[0-9].txt", "fileX.txt"));
  EXPECT_TRUE(GlobMatchSegment("file[!0-9].txt", "fileX.txt"));
  EXPECT_TRUE(GlobMatchSegment("[]]", "]"));
  EXPECT_TRUE(GlobMatchSegment("\\*", "*"));
  EXPECT_FALSE(GlobMatchSegment("\\*", "x"));
  EXPECT_TRUE(GlobMatchSegment("***", "anything"));
}

TEST(GlobTest, UnanchoredPatternsMatchAtAnyDepth) {
  EXPECT_TRUE(M({"*.py"}, "main.py"));
  EXPECT_TRUE(M({"*.py"}, "api/app/main.py"));
  EXPECT_FALSE(M({"*.py"}, "api/app/main.js"));
  // A name matches a directory of that name and so every file under it.
  EXPECT_TRUE(M({"api"}, "api/main.py"));
  EXPECT_TRUE(M({"api"}, "services/api/main.py"));
  EXPECT_FALSE(M({"api"}, "apis/main.py"));
  // '*' never crosses a '/'.
  EXPECT_FALSE(M({"/a*c"}, "ab/c"));
}

TEST(GlobTest, SlashesAnchorPatterns) {
  EXPECT_TRUE(M({"/api"}, "api/main.py"));
  EXPECT_FALSE(M({"/api"}, "services/api/main.py"));
  EXPECT_TRUE(M({"api/*.py"}, "api/main.py"));
  EXPECT_FALSE(M({"api/*.py"}, "x/api/main.py"));  // a middle slash anchors too
  EXPECT_FALSE(M({"api/*.py"}, "api/sub/main.py"));
  EXPECT_TRUE(M({"/README.md"}, "README.md"));
  EXPECT_FALSE(M({"/README.md"}, "docs/README.md"));
}

TEST(GlobTest, DoubleStar) {
  EXPECT_TRUE(M({"**/*.py"}, "main.py"));
  EXPECT_TRUE(M({"**/*.py"}, "a/b/c/main.py"));
  EXPECT_TRUE(M({"api/**"}, "api/a/b/c.txt"));
  EXPECT_FALSE(M({"api/**"}, "web/api/c.txt"));
  EXPECT_TRUE(M({"a/**/b"}, "a/b"));
  EXPECT_TRUE(M({"a/**/b"}, "a/x/y/b"));
  EXPECT_TRUE(M({"a/**/b"}, "a/x/y/b/file"));
  EXPECT_FALSE(M({"a/**/b"}, "a/x/y/c"));
  EXPECT_TRUE(M({"/backend/**"}, "backend/app.py"));
  EXPECT_TRUE(M({"/**"}, "anything/at/all"));
}

TEST(GlobTest, TrailingSlashMatchesDirectoriesOnly) {
  EXPECT_TRUE(M({"build/"}, "build/out.js"));
  EXPECT_TRUE(M({"build/"}, "web/build/out.js"));
  EXPECT_FALSE(M({"build/"}, "build"));  // a file named build
  EXPECT_FALSE(M({"build/"}, "web/build"));
  EXPECT_TRUE(M({"/shared/lib/"}, "shared/lib/x.py"));
  EXPECT_FALSE(M({"/shared/lib/"}, "shared/lib"));
}

TEST(GlobTest, NegationAndOrder) {
  EXPECT_FALSE(M({"*.md", "!README.md"}, "README.md"));
  EXPECT_TRUE(M({"*.md", "!README.md"}, "CHANGES.md"));
  // The last pattern that matches decides.
  EXPECT_TRUE(M({"!README.md", "*.md"}, "README.md"));
  EXPECT_FALSE(M({"api/", "!api/README.md"}, "api/README.md"));
  EXPECT_TRUE(M({"api/", "!api/README.md"}, "api/main.py"));
  EXPECT_FALSE(M({"api/**", "!api/tests/"}, "api/tests/test_x.py"));
  EXPECT_TRUE(M({"api/**", "!api/tests/", "api/tests/conftest.py"}, "api/tests/conftest.py"));
  // A negation alone matches nothing.
  EXPECT_FALSE(M({"!*.md"}, "x.py"));
}

TEST(GlobTest, CommentsBlanksAndEscapes) {
  EXPECT_FALSE(M({"# api", "", "   "}, "# api"));
  EXPECT_TRUE(M({"\\#notes"}, "#notes"));
  EXPECT_TRUE(M({"\\!important"}, "!important"));
  EXPECT_TRUE(M({"  *.py  "}, "a.py"));  // surrounding blanks trimmed
  EXPECT_FALSE(M({}, "a.py"));
  EXPECT_FALSE(M({"*.py"}, ""));
}

TEST(GlobTest, BadPatternsAreNamed) {
  auto st = PathPatterns::Parse({"src/[abc"});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.status().message().find("\"src/[abc\""), std::string::npos);
  EXPECT_FALSE(PathPatterns::Parse({"!"}).ok());
}

}  // namespace
}  // namespace slipway
