#pragma once

// Static routes: mapping a request target to a file under the route's root, safely.
//
// The target's path is percent-decoded first; then any ".." segment, NUL byte or
// invalid escape makes it a bad request, and dot-files (".env", ".git/...") other than
// under "/.well-known/" are not served. The decoded path is resolved with realpath(), so
// a symlink may point anywhere inside the root but nothing outside it is ever served.
// "/" and directories serve their index.html; a directory named without its trailing
// slash redirects to it, so relative links in its index.html work.
//
// Thread-safety: pure functions (they read the filesystem).

#include <cstdint>
#include <string>
#include <string_view>

namespace slipway::proxy {

struct StaticLookup {
  enum Kind { kFile, kRedirect, kNotFound, kBadPath };
  Kind kind = kNotFound;
  std::string path;    // kFile: the resolved file; kRedirect: the Location
  uint64_t size = 0;   // kFile
  int64_t mtime = 0;   // kFile: seconds since the epoch
  std::string reason;  // kBadPath: why, for the 400 page
};

// `root_real` must already be canonical (realpath). `target` is the raw request target.
StaticLookup ResolveStaticPath(const std::string& root_real, std::string_view target);

// Percent-decodes `in`; false on a malformed escape. '+' is left as is (path, not query).
bool PercentDecode(std::string_view in, std::string* out);

// "text/css; charset=utf-8" for "a/b.css"; application/octet-stream when unknown.
std::string_view ContentTypeFor(std::string_view path);

// RFC 9110 IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string HttpDate(int64_t unix_seconds);

}  // namespace slipway::proxy
