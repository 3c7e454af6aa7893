#pragma once

// StaticSite: a static route compiled for the hot path (its root's descriptor, its rules
// compiled), and Resolve(), which decides what a request to it gets, in Vercel's order
// (edge.h Route, docs/static.md):
//
//   1. base path   the route's path_prefix is cut off ("/shop/a.css" -> "/a.css"); the
//                  prefix itself redirects to prefix + "/"
//   2. headers     every matching rule's headers are collected for the answer, whatever
//                  it turns out to be (a later rule's value wins for the same name)
//   3. redirects   clean_urls ("/about.html" and "/about/index.html" -> "/about"), then
//                  trailing_slash, then the route's redirects, first match wins; the
//                  query is kept
//   4. filesystem  GET and HEAD: the file; with clean_urls "/about" is about.html; a
//                  directory its index.html
//   5. rewrites    first match whose destination exists: a path of the site is served
//                  (200); an absolute URL is proxied (any method)
//   6. SPA         spa_fallback: an extension-less path gets /index.html (200)
//   7. not found   /404.html with status 404 when the site has one, else the edge's page
//
// Methods other than GET and HEAD only go through redirects and rewrites to absolute
// URLs; otherwise they are answered 405.
//
// Thread-safety: immutable after Build(); Resolve() may run on any thread.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/route_pattern.h"
#include "proxy/edge.h"
#include "proxy/static_files.h"

namespace slipway::proxy {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct StaticAnswer {
  enum Kind {
    kFile,              // serve `file` with `status` (200, or 404 for 404.html)
    kRedirect,          // `status` with Location: `location`
    kProxy,             // forward to `url` (absolute, query merged)
    kNotFound,          // the edge's 404 page
    kBadPath,           // 400 with `reason`
    kMethodNotAllowed,  // 405, Allow: GET, HEAD
    kRootMissing,       // the root directory does not exist (yet)
  };
  Kind kind = kNotFound;
  unsigned status = 200;
  StaticFile file;       // kFile: an open regular file
  std::string location;  // kRedirect
  std::string url;       // kProxy
  std::string reason;    // kBadPath
  HeaderList headers;    // from the header rules, for every kind of answer
};

class StaticSite {
 public:
  // Compiles the route's rules and opens its root (a missing root is looked for again
  // per request). Rules that do not compile are left out, each with a warning logged.
  // `prefix` is the route's canonical path prefix ("/" or "/shop").
  static std::unique_ptr<const StaticSite> Build(const Route& route, std::string_view prefix);
  ~StaticSite();
  StaticSite(const StaticSite&) = delete;
  StaticSite& operator=(const StaticSite&) = delete;

  // `target` is the raw request target (origin form), matched by the route.
  StaticAnswer Resolve(bool get_or_head, std::string_view target) const;

  // The precompressed variant of `identity` for `encoding` ("br" -> "<file>.br",
  // "gzip" -> "<file>.gz"), when it exists as a regular file at least as new as the file.
  bool OpenVariant(const StaticFile& identity, std::string_view encoding, StaticFile* out) const;

  const std::string& root_real() const { return root_real_; }

 private:
  struct Redirect {
    RoutePattern source;
    std::string destination;
    unsigned status;
  };
  struct Rewrite {
    RoutePattern source;
    std::string destination;
    bool absolute;
  };
  struct Headers {
    RoutePattern source;
    HeaderList headers;
  };
  enum class Found { kFile, kRedirect, kMissing, kBad };

  StaticSite() = default;
  // Looks `path` (a site path, as requested) up in the filesystem.
  Found Lookup(std::string_view path, bool redirect_directories, StaticFile* file,
               std::string* location, std::string* reason) const;
  bool Open(const std::string& relative, StaticFile* file) const;
  // prefix + a site path, with the query appended.
  std::string Location(std::string_view site_path, std::string_view query) const;

  std::string root_;       // as configured
  std::string root_real_;  // realpath at Build(); "" when missing then
  int root_fd_ = -1;       // O_PATH descriptor of the root; -1 when missing at Build()
  std::string prefix_;     // "" for "/", else "/shop"
  std::vector<Headers> headers_;
  std::vector<Redirect> redirects_;
  std::vector<Rewrite> rewrites_;
  bool clean_urls_ = false;
  TrailingSlash trailing_slash_ = TrailingSlash::kLeave;
  bool spa_fallback_ = false;
};

// The head of a file answer (200, 206, 304, or 404 for a site's 404.html), as the edge
// writes it: Content-Type, Content-Length (not for 304), Content-Encoding, Content-Range,
// Accept-Ranges, ETag, Last-Modified, Cache-Control, Vary, Date, then the header rules'
// fields (each replacing the edge's field of the same name), Connection as needed and
// X-Request-Id.
struct FileHead {
  unsigned status = 200;
  std::string_view content_type;
  uint64_t content_length = 0;
  std::string_view encoding;       // "", "br", "gzip"
  std::string_view content_range;  // "bytes 0-99/1000" for 206
  std::string_view etag;
  int64_t last_modified = 0;  // seconds since the epoch
  std::string_view cache_control;
  bool vary = false;  // Vary: Accept-Encoding
  const HeaderList* headers = nullptr;
  unsigned client_version = 11;
  bool keep_alive = true;
  std::string_view request_id;
};
void WriteFileHead(const FileHead& head, std::string* out);

// Header names a header rule may not set (framing, hop-by-hop): Content-Length,
// Transfer-Encoding, Connection, Keep-Alive, Upgrade, TE, Trailer, Proxy-Connection,
// Content-Range, Content-Encoding.
bool IsReservedHeader(std::string_view name);

}  // namespace slipway::proxy
