#pragma once

// PathPatterns: gitignore-style patterns over relative file paths, for a service's
// watchPatterns (does a change to these files redeploy it?) and for git push
// (issue 7). Pure: no filesystem access.
//
// Syntax, as in .gitignore:
//   *        anything but '/';   ?  one character but '/';   [a-z] [!a-z]  a class
//   **       leading "**/" any directories, trailing "/**" everything inside,
//            "/**/" zero or more directories
//   /x       anchored at the root; a pattern with a '/' before its end is anchored too,
//            one without matches at any depth ("*.py" matches "a/b/c.py")
//   x/       matches directories only (so every file under a directory named x)
//   !x       negation: a path matched by an earlier pattern is excluded again
//   \x       x literally (for a leading '!' or '#', or a wildcard character)
//   # ...    a comment; blank patterns are ignored
// A pattern that matches a directory matches every file under it ("api" matches
// "api/main.py"). Unlike git, the last pattern that matches a path decides even when a
// parent directory was matched: ["api/", "!api/README.md"] leaves out api/README.md.
//
// Thread-safety: immutable after Parse(); safe to share.

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace slipway {

class PathPatterns {
 public:
  // kInvalidArgument naming the pattern for an unterminated '[' or a lone "!".
  static Result<PathPatterns> Parse(const std::vector<std::string>& patterns);

  // True when `path` ("a/b/c.py", relative, '/'-separated, no leading "./") is matched
  // by the patterns: the last pattern that matches it or one of its parent directories
  // is not a negation.
  bool Matches(std::string_view path) const;

  bool empty() const { return rules_.empty(); }

 private:
  struct Rule {
    std::vector<std::string> segments;  // split on '/'; "**" is its own segment
    bool negated = false;
    bool directory_only = false;
  };
  std::vector<Rule> rules_;
};

// One path segment against one pattern segment: '*', '?', classes, '\' escapes; no '/'.
bool GlobMatchSegment(std::string_view pattern, std::string_view name);

}  // namespace slipway
