#pragma once

// Static routes: mapping a request target to a file under the route's root, safely, and
// the HTTP semantics of serving it (validators, conditional requests, ranges, content
// coding, caching). docs/static.md describes the behaviour for users.
//
// Paths. The target's path is percent-decoded first; then any ".." segment, NUL byte or
// invalid escape makes it a bad request, and dot-files (".env", ".git/...") other than
// under "/.well-known/" are not served. A file is opened beneath the root's descriptor
// with openat2(RESOLVE_BENEATH); a path with an absolute symlink is resolved with
// realpath() instead, so a symlink may point anywhere inside the root but nothing
// outside it is ever served. "/" and directories serve their index.html; a directory
// named without its trailing slash redirects to it, so relative links in its index.html
// work.
//
// Thread-safety: pure functions (those taking paths or descriptors read the filesystem).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/media_types.h"

namespace slipway::proxy {

using slipway::ContentTypeFor;

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

// A request path made relative to the root: decoded, checked, "." and empty segments
// dropped.
struct CleanPath {
  enum Kind { kOk, kHidden, kBad };
  Kind kind = kOk;
  std::string relative;  // kOk: "a/b/c", no leading or trailing slash; "" for the root
  std::string reason;    // kBad: why, for the 400 page
};
// `path` is a request path without query ("/docs/a%20b.html").
CleanPath CleanStaticPath(std::string_view path);

// An open regular file or directory beneath a root. Move-only; closes its descriptor.
class StaticFile {
 public:
  StaticFile() = default;
  ~StaticFile() { Reset(); }
  StaticFile(StaticFile&& other) noexcept { *this = std::move(other); }
  StaticFile& operator=(StaticFile&& other) noexcept;
  StaticFile(const StaticFile&) = delete;
  StaticFile& operator=(const StaticFile&) = delete;

  bool open() const { return fd >= 0; }
  void Reset();

  int fd = -1;
  bool directory = false;
  uint64_t size = 0;
  int64_t mtime_ns = 0;  // nanoseconds since the epoch
  std::string relative;  // below the root, as opened ("assets/app.js"; "" for the root)
};

// Opens `relative` (a CleanPath's) beneath the root: `root_fd` an O_PATH descriptor of
// it, or -1 to open `root_real` (its realpath) for this call. False when it does not
// exist, is neither a regular file nor a directory, or resolves outside the root.
bool OpenBeneath(int root_fd, const std::string& root_real, const std::string& relative,
                 StaticFile* out);

// Percent-decodes `in`; false on a malformed escape. '+' is left as is (path, not query).
bool PercentDecode(std::string_view in, std::string* out);

// RFC 9110 IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string HttpDate(int64_t unix_seconds);
// The current time as an IMF-fixdate, formatted once per second per thread.
std::string_view HttpDateNow();
// HttpDate without allocating: the last value formatted on this thread is kept, so a
// file's Last-Modified is formatted once while it is requested again and again. Valid
// until the next call on this thread.
std::string_view HttpDateCached(int64_t unix_seconds);
// Seconds since the epoch of an HTTP date (IMF-fixdate, RFC 850 or asctime form);
// nullopt when it is none of them.
std::optional<int64_t> ParseHttpDate(std::string_view text);

// A strong entity tag from a representation's size and mtime, and its content coding:
// "\"5f3-17a2b3c4d5e6f708\"", "\"5f3-17a2b3c4d5e6f708-br\"". Files of a release never
// change in place, so size+mtime identify their content.
std::string MakeETag(uint64_t size, int64_t mtime_ns, std::string_view encoding);
// The same in a buffer (the hot path's form: no allocation).
struct ETagText {
  char data[48];
  size_t size = 0;
  std::string_view view() const { return {data, size}; }
};
ETagText FormatETag(uint64_t size, int64_t mtime_ns, std::string_view encoding);

// If-None-Match against `etag`: "*", or a list of tags of which one matches by the weak
// comparison (W/"x" matches "x"), as RFC 9110 13.1.2 says for GET and HEAD.
bool NoneMatchHits(std::string_view if_none_match, std::string_view etag);

// Whether a GET or HEAD may be answered 304: If-None-Match when present (it wins over
// If-Modified-Since), else If-Modified-Since not older than the mtime (whole seconds).
bool NotModified(std::string_view if_none_match, std::string_view if_modified_since,
                 std::string_view etag, int64_t mtime_s);

// A Range header against a representation of `size` bytes. Only one "bytes" range is
// served: "a-b", "a-" or "-n" (clamped to the size). A malformed header, another unit or
// several ranges are kIgnored (the whole representation is sent, which RFC 9110 allows);
// a range starting at or past the end, or "-0", is kUnsatisfiable (416).
struct ByteRange {
  enum Kind { kIgnored, kPartial, kUnsatisfiable };
  Kind kind = kIgnored;
  uint64_t first = 0;
  uint64_t length = 0;
};
ByteRange ParseRange(std::string_view range, uint64_t size);

// If-Range: true when the range may be served, i.e. the header is absent, names exactly
// this strong `etag`, or is an HTTP date equal to the mtime.
bool IfRangeAllows(std::string_view if_range, std::string_view etag, int64_t mtime_s);

// The content codings to try for Accept-Encoding, best first: "br" and/or "gzip" with a
// q-value above 0 (explicitly or through "*"), higher q first, "br" before "gzip" at equal
// q ("x-gzip" counts as "gzip"). Empty: identity only.
struct EncodingChoice {
  std::string_view order[2];
  int count = 0;
};
EncodingChoice PreferredEncodings(std::string_view accept_encoding);

// True for a file name that carries a content hash, so the file at this URL never
// changes (docs/static.md, "Caching"):
//   <name>-<h>.<ext> with <h> exactly 8 characters of [A-Za-z0-9_-], among them a letter
//     and a digit or an uppercase letter (Vite and Rollup: "index-BXmP9dcA.js",
//     "index-4f3a9c2b.css"; not "my-pictures.png" or "report-20241201.pdf");
//   or a "-"/"."-separated part of 8 to 64 lowercase hex digits with at least one digit
//     and one letter (webpack, Create React App, Parcel: "main.4f3a9c2b.chunk.js");
//   or any file under "/_next/static/" (Next.js static export).
bool IsFingerprinted(std::string_view path);

// "public, max-age=31536000, immutable" for fingerprinted names, else
// "public, max-age=0, must-revalidate" (HTML and everything else: revalidated with
// If-None-Match each time, answered 304 while unchanged).
std::string_view CacheControlFor(std::string_view path);

}  // namespace slipway::proxy
