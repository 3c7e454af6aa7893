#pragma once

// RoutePattern: the `source` of a static site's redirect, rewrite or header rule, in the
// syntax vercel.json uses (path-to-regexp 6, case-sensitive, strict: a trailing slash is
// significant), matched against a whole request path (query excluded, as sent:
// percent-encoded).
//
//   /about           the literal path
//   /blog/:slug      ":name" is one segment ([^/#?]+); "/:name?" an optional one
//   /docs/:path*     "/:name*" zero or more segments, "/:name+" one or more
//   /post/:id(\d+)   a parameter with its own regular expression
//   /(.*)            an unnamed group: a regular expression, numbered ($1, $2, ...)
//   /((?!api/).*)    lookahead and non-capturing groups are fine; a capturing group
//                    inside a parameter's expression is an error (use "(?:...)")
//   {/:lang}?/home   braces group a prefix, a parameter and a suffix under one modifier
//   \(               a backslash makes the next character literal
// Every other character is literal. A "*", "+" or "?" that follows no parameter is an
// error, as in path-to-regexp ("/api/*" is written "/api/(.*)" or "/api/:path*").
//
// Destinations use what the source captured: ":name" (a "*" or "+" after it is dropped:
// ":path*" is the same as ":path") and "$1", "$2"... for the groups in order, named or not,
// anywhere in the destination (path, query, host). An empty optional parameter takes
// its leading "/" with it: "/docs/:path*" with no segments gives "/docs".
//
// Thread-safety: immutable after Compile(); safe to share and to match from any thread.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace slipway {

// What one match captured: per group, in order, its name ("" for an unnamed group) and
// the text it matched ("" for an optional group that matched nothing).
struct RouteCaptures {
  std::vector<std::pair<std::string, std::string>> groups;
};

class RoutePattern {
 public:
  // kInvalidArgument with the reason and the position (1-based character):
  //   "unbalanced \"(\" at character 4", "\"*\" at character 6 follows no parameter"
  static Result<RoutePattern> Compile(std::string_view source);

  // True when the whole `path` matches; fills `captures` (may be null). A match that
  // exceeds the regular expression engine's complexity limit counts as no match.
  bool Match(std::string_view path, RouteCaptures* captures) const;

  const std::string& source() const { return source_; }
  // The regular expression the source compiled to (anchored ^...$; tests and docs).
  const std::string& regex() const { return regex_; }
  // The group names in order ("" for unnamed groups).
  const std::vector<std::string>& names() const { return names_; }

 private:
  struct Compiled;
  std::string source_;
  std::string regex_;
  std::vector<std::string> names_;
  std::shared_ptr<const Compiled> compiled_;
};

// kInvalidArgument when `destination` uses a ":name" that `pattern` does not capture:
//   "\"destination\" uses \":slug\", which \"source\" does not capture"
// (Vercel rejects such rules too.) Names start with a letter or "_", so ports in
// absolute URLs ("http://h:8080/") are not parameters.
Status CheckDestination(const RoutePattern& pattern, std::string_view destination);

// `destination` with ":name" and "$N" replaced by what was captured. With
// `unused_to_query` (rewrites, as Vercel does), when the destination uses none of the
// captured names, the named ones are appended to its query ("?slug=x").
std::string SubstituteCaptures(std::string_view destination, const RouteCaptures& captures,
                               bool unused_to_query = false);

}  // namespace slipway
