#include "proxy/static_site.h"

#include <fcntl.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstring>

#include "proxy/headers.h"

namespace slipway::proxy {

namespace {

constexpr std::string_view kWellKnown = "/.well-known";
// Paths longer than this are not matched against rules (a pathological source pattern
// costs time with the length of what it is matched against).
constexpr size_t kMaxRulePathBytes = 4096;

bool HasControl(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

bool IsAbsoluteUrl(std::string_view s) {
  auto starts = [&](std::string_view scheme) {
    if (s.size() < scheme.size()) return false;
    for (size_t i = 0; i < scheme.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(s[i])) != scheme[i]) return false;
    }
    return true;
  };
  return starts("http://") || starts("https://");
}

// A scheme other than http(s) ("mailto:", "tel:"): redirects may go there as written.
bool HasScheme(std::string_view s) {
  if (s.empty() || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  for (size_t i = 1; i < s.size(); ++i) {
    const char c = s[i];
    if (c == ':') return true;
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return false;
}

std::string_view LastSegment(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// `url` with the request's query ("?a=1", or "") appended to its own, before any fragment.
std::string WithQuery(std::string url, std::string_view query) {
  if (query.size() <= 1) return url;
  const size_t hash = url.find('#');
  const size_t at = hash == std::string::npos ? url.size() : hash;
  const bool has_query = url.find('?') < at;
  url.insert(at, has_query ? "&" + std::string(query.substr(1)) : std::string(query));
  return url;
}

// "/a b/" -> "/a%20b/": a path built from decoded segments, made safe for Location.
std::string EncodePath(std::string_view decoded) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : decoded) {
    if (std::isalnum(c) || std::strchr("-._~/!$&'()*+,;=:@", c) != nullptr) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The redirect clean_urls and trailing_slash ask for on `path` (a site path), or "".
std::string BuiltinRedirect(std::string_view path, bool clean_urls, TrailingSlash slash) {
  const bool add = slash == TrailingSlash::kAdd;
  if (clean_urls) {
    std::string_view p = path;
    if (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
    for (std::string_view index : {std::string_view("/index"), std::string_view("/index.html")}) {
      if (p.ends_with(index)) {
        std::string base(p.substr(0, p.size() - index.size() + 1));  // ends with '/'
        if (base.size() > 1 && !add) base.pop_back();
        return base;
      }
    }
    if (p.size() > 6 && p.ends_with(".html")) {
      std::string base(p.substr(0, p.size() - 5));
      if (add && base.back() != '/') base.push_back('/');
      return base;
    }
  }
  if (add) {
    if (path == kWellKnown || path.starts_with(std::string(kWellKnown) + "/")) return "";
    if (path.back() != '/') {
      if (LastSegment(path).find('.') == std::string_view::npos) return std::string(path) + "/";
      return "";
    }
    if (path.size() > 1) {
      const std::string_view name = LastSegment(path.substr(0, path.size() - 1));
      const size_t dot = name.rfind('.');
      if (dot != std::string_view::npos && dot > 0 && dot + 1 < name.size()) {
        bool word = true;
        for (char c : name.substr(dot + 1)) word = word && IsWordChar(c);
        if (word) return std::string(path.substr(0, path.size() - 1));
      }
    }
  } else if (slash == TrailingSlash::kRemove && path.size() > 1 && path.back() == '/') {
    return std::string(path.substr(0, path.size() - 1));
  }
  return "";
}

void SetHeader(HeaderList& list, const std::string& name, std::string value) {
  for (auto& [n, v] : list) {
    if (EqualsIgnoreCase(n, name)) {
      v = std::move(value);
      return;
    }
  }
  list.emplace_back(name, std::move(value));
}

}  // namespace

bool IsReservedHeader(std::string_view name) {
  for (std::string_view reserved :
       {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
        "trailer", "proxy-connection", "content-range", "content-encoding"}) {
    if (EqualsIgnoreCase(name, reserved)) return true;
  }
  return false;
}

std::unique_ptr<const StaticSite> StaticSite::Build(const Route& route, std::string_view prefix) {
  std::unique_ptr<StaticSite> site(new StaticSite());
  site->root_ = route.static_root;
  char buf[PATH_MAX];
  if (::realpath(route.static_root.c_str(), buf) != nullptr) {
    site->root_real_ = buf;
    site->root_fd_ = ::open(buf, O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  if (site->root_fd_ < 0) {
    spdlog::warn("edge: {}: static root {} does not exist (yet)", route.service_label,
                 route.static_root);
  }
  site->prefix_ = prefix == "/" ? "" : std::string(prefix);
  site->clean_urls_ = route.clean_urls;
  site->trailing_slash_ = route.trailing_slash;
  site->spa_fallback_ = route.spa_fallback;
  const std::string& label = route.service_label;
  auto skip = [&](const char* kind, const std::string& source, const std::string& why) {
    spdlog::warn("edge: {}: {} rule \"{}\" is left out: {}", label, kind, source, why);
  };
  for (const StaticHeaders& h : route.headers) {
    auto pattern = RoutePattern::Compile(h.source);
    if (!pattern.ok()) {
      skip("header", h.source, pattern.status().message());
      continue;
    }
    Headers compiled{std::move(pattern).value(), {}};
    for (const auto& [name, value] : h.headers) {
      if (name.empty() || HasControl(name) || HasControl(value) ||
          name.find_first_of(" :") != std::string::npos) {
        skip("header", h.source, "\"" + name + "\" is not a valid header");
      } else if (IsReservedHeader(name)) {
        skip("header", h.source, "\"" + name + "\" is set by the edge itself");
      } else {
        compiled.headers.emplace_back(name, value);
      }
    }
    site->headers_.push_back(std::move(compiled));
  }
  for (const StaticRedirect& r : route.redirects) {
    auto pattern = RoutePattern::Compile(r.source);
    Status st = pattern.ok() ? CheckDestination(*pattern, r.destination) : pattern.status();
    if (st.ok() && (r.destination.empty() || HasControl(r.destination))) {
      st = InvalidArgument("the destination is empty or has control characters");
    }
    if (st.ok() && r.status != 301 && r.status != 302 && r.status != 303 && r.status != 307 &&
        r.status != 308) {
      st = InvalidArgument("status " + std::to_string(r.status) + " is not 301-303, 307 or 308");
    }
    if (!st.ok()) {
      skip("redirect", r.source, st.message());
      continue;
    }
    site->redirects_.push_back(
        {std::move(pattern).value(), r.destination, static_cast<unsigned>(r.status)});
  }
  for (const StaticRewrite& r : route.rewrites) {
    auto pattern = RoutePattern::Compile(r.source);
    Status st = pattern.ok() ? CheckDestination(*pattern, r.destination) : pattern.status();
    if (st.ok() && (r.destination.empty() || HasControl(r.destination))) {
      st = InvalidArgument("the destination is empty or has control characters");
    }
    const bool absolute = IsAbsoluteUrl(r.destination);
    if (st.ok() && !absolute && r.destination.front() != '/') {
      st = InvalidArgument("the destination must be a path (\"/...\") or an http(s) URL");
    }
    if (!st.ok()) {
      skip("rewrite", r.source, st.message());
      continue;
    }
    site->rewrites_.push_back({std::move(pattern).value(), r.destination, absolute});
  }
  return site;
}

StaticSite::~StaticSite() {
  if (root_fd_ >= 0) ::close(root_fd_);
}

bool StaticSite::Open(const std::string& relative, StaticFile* file) const {
  if (root_fd_ >= 0) return OpenBeneath(root_fd_, root_real_, relative, file);
  // The root did not exist when the table was built; it may now.
  char buf[PATH_MAX];
  if (::realpath(root_.c_str(), buf) == nullptr) return false;
  return OpenBeneath(-1, buf, relative, file);
}

bool StaticSite::OpenVariant(const StaticFile& identity, std::string_view encoding,
                             StaticFile* out) const {
  if (identity.relative.empty()) return false;
  std::string name = identity.relative;
  name += encoding == "br" ? ".br" : ".gz";
  if (!Open(name, out)) return false;
  if (out->directory || out->mtime_ns < identity.mtime_ns) {
    out->Reset();
    return false;
  }
  return true;
}

std::string StaticSite::Location(std::string_view site_path, std::string_view query) const {
  std::string location = prefix_;
  // Never "//host" (another host to a browser): one leading slash.
  size_t start = 0;
  while (start + 1 < site_path.size() && site_path[start] == '/' && site_path[start + 1] == '/') {
    ++start;
  }
  site_path.remove_prefix(start);
  if (site_path.empty() || site_path.front() != '/') location.push_back('/');
  location.append(site_path);
  return WithQuery(std::move(location), query);
}

StaticSite::Found StaticSite::Lookup(std::string_view path, bool redirect_directories,
                                     StaticFile* file, std::string* location,
                                     std::string* reason) const {
  CleanPath clean = CleanStaticPath(path);
  if (clean.kind == CleanPath::kBad) {
    *reason = std::move(clean.reason);
    return Found::kBad;
  }
  if (clean.kind == CleanPath::kHidden) return Found::kMissing;
  const std::string& rel = clean.relative;
  StaticFile found;
  const bool opened = Open(rel, &found);
  if (opened && !found.directory) {
    *file = std::move(found);
    return Found::kFile;
  }
  found.Reset();
  if (clean_urls_ && !rel.empty() && Open(rel + ".html", file) && !file->directory) {
    return Found::kFile;
  }
  file->Reset();
  if (opened) {
    if (path.back() != '/' && redirect_directories && trailing_slash_ != TrailingSlash::kRemove) {
      *location = EncodePath("/" + rel + (rel.empty() ? "" : "/"));
      return Found::kRedirect;
    }
    if (Open(rel.empty() ? "index.html" : rel + "/index.html", file) && !file->directory) {
      return Found::kFile;
    }
    file->Reset();
  }
  return Found::kMissing;
}

StaticAnswer StaticSite::Resolve(bool get_or_head, std::string_view target) const {
  StaticAnswer answer;
  if (target.empty() || target.front() != '/') {
    answer.kind = StaticAnswer::kBadPath;
    answer.reason = "the path must start with /";
    return answer;
  }
  const size_t path_end = target.find_first_of("?#");
  const std::string_view raw_path = target.substr(0, path_end);
  std::string_view query;
  if (path_end != std::string_view::npos && target[path_end] == '?') {
    query = target.substr(path_end);
    query = query.substr(0, query.find('#'));
  }

  // 1. The base path.
  std::string_view path = raw_path;
  if (!prefix_.empty()) {
    path.remove_prefix(std::min(prefix_.size(), path.size()));
    if (path.empty()) {
      answer.kind = StaticAnswer::kRedirect;
      answer.status = 308;
      answer.location = WithQuery(prefix_ + "/", query);
      return answer;
    }
  }
  if (path.size() > kMaxRulePathBytes &&
      !(headers_.empty() && redirects_.empty() && rewrites_.empty())) {
    answer.kind = StaticAnswer::kBadPath;
    answer.reason = "the path is longer than " + std::to_string(kMaxRulePathBytes) + " bytes";
    return answer;
  }
  if (root_fd_ < 0) {
    char buf[PATH_MAX];
    if (::realpath(root_.c_str(), buf) == nullptr) {
      answer.kind = StaticAnswer::kRootMissing;
      return answer;
    }
  }

  // 2. Headers, for whatever the answer turns out to be.
  RouteCaptures captures;
  for (const Headers& rule : headers_) {
    if (!rule.source.Match(path, &captures)) continue;
    const bool named = !rule.source.names().empty();
    for (const auto& [name, value] : rule.headers) {
      SetHeader(answer.headers, name,
                named && value.find_first_of(":$") != std::string::npos
                    ? SubstituteCaptures(value, captures)
                    : value);
    }
  }

  // 3. Redirects: clean URLs and the trailing slash first, then the route's own.
  std::string builtin = BuiltinRedirect(path, clean_urls_, trailing_slash_);
  if (!builtin.empty()) {
    answer.kind = StaticAnswer::kRedirect;
    answer.status = 308;
    answer.location = Location(builtin, query);
    return answer;
  }
  for (const Redirect& rule : redirects_) {
    if (!rule.source.Match(path, &captures)) continue;
    std::string destination = SubstituteCaptures(rule.destination, captures);
    answer.kind = StaticAnswer::kRedirect;
    answer.status = rule.status;
    answer.location = HasScheme(destination) ? WithQuery(std::move(destination), query)
                                             : Location(destination, query);
    return answer;
  }

  // 4. The filesystem.
  if (get_or_head) {
    std::string location;
    switch (Lookup(path, true, &answer.file, &location, &answer.reason)) {
      case Found::kFile:
        answer.kind = StaticAnswer::kFile;
        return answer;
      case Found::kRedirect:
        answer.kind = StaticAnswer::kRedirect;
        answer.status = 301;
        answer.location = Location(location, query);
        return answer;
      case Found::kBad:
        answer.kind = StaticAnswer::kBadPath;
        return answer;
      case Found::kMissing:
        break;
    }
  }

  // 5. Rewrites.
  for (const Rewrite& rule : rewrites_) {
    if (!rule.source.Match(path, &captures)) continue;
    std::string destination = SubstituteCaptures(rule.destination, captures, true);
    if (rule.absolute) {
      answer.kind = StaticAnswer::kProxy;
      answer.url = WithQuery(std::move(destination), query);
      return answer;
    }
    if (!get_or_head) continue;
    destination = destination.substr(0, destination.find_first_of("?#"));
    if (destination.empty() || destination.front() != '/') destination.insert(0, "/");
    const std::string_view dest_path = destination;
    std::string ignored_location, ignored_reason;
    if (Lookup(dest_path, false, &answer.file, &ignored_location, &ignored_reason) ==
        Found::kFile) {
      answer.kind = StaticAnswer::kFile;
      return answer;
    }
  }
  if (!get_or_head) {
    answer.kind = StaticAnswer::kMethodNotAllowed;
    return answer;
  }

  // 6. A single-page app's client-side routes.
  if (spa_fallback_ && LastSegment(path).find('.') == std::string_view::npos &&
      Open("index.html", &answer.file) && !answer.file.directory) {
    answer.kind = StaticAnswer::kFile;
    return answer;
  }

  // 7. Not found: the site's own 404 page when it has one.
  if (Open("404.html", &answer.file) && !answer.file.directory) {
    answer.kind = StaticAnswer::kFile;
    answer.status = 404;
    return answer;
  }
  answer.file.Reset();
  answer.kind = StaticAnswer::kNotFound;
  return answer;
}

void WriteFileHead(const FileHead& head, std::string* out) {
  out->clear();
  const char* reason = "OK";
  switch (head.status) {
    case 206:
      reason = "Partial Content";
      break;
    case 304:
      reason = "Not Modified";
      break;
    case 404:
      reason = "Not Found";
      break;
    default:
      break;
  }
  char number[24];
  auto append_number = [&](uint64_t n) {
    auto [end, ec] = std::to_chars(number, number + sizeof(number), n);
    out->append(number, end);
  };
  out->append("HTTP/1.1 ");
  append_number(head.status);
  out->push_back(' ');
  out->append(reason);
  out->append("\r\n");
  auto field = [&](std::string_view name, std::string_view value) {
    if (head.headers != nullptr) {
      for (const auto& [n, v] : *head.headers) {
        if (EqualsIgnoreCase(n, name)) return;  // the rule's value is written below
      }
    }
    out->append(name);
    out->append(": ");
    out->append(value);
    out->append("\r\n");
  };
  if (head.status != 304) {
    field("Content-Type", head.content_type);
    out->append("Content-Length: ");
    append_number(head.content_length);
    out->append("\r\n");
  }
  if (!head.encoding.empty()) {
    out->append("Content-Encoding: ");
    out->append(head.encoding);
    out->append("\r\n");
  }
  if (!head.content_range.empty()) {
    out->append("Content-Range: ");
    out->append(head.content_range);
    out->append("\r\n");
  }
  if (head.status == 200 || head.status == 206) field("Accept-Ranges", "bytes");
  field("ETag", head.etag);
  field("Last-Modified", HttpDateCached(head.last_modified));
  field("Cache-Control", head.cache_control);
  if (head.vary) field("Vary", "Accept-Encoding");
  field("Date", HttpDateNow());
  if (head.headers != nullptr) {
    for (const auto& [name, value] : *head.headers) {
      out->append(name);
      out->append(": ");
      out->append(value);
      out->append("\r\n");
    }
  }
  if (!head.keep_alive) {
    out->append("Connection: close\r\n");
  } else if (head.client_version < 11) {
    out->append("Connection: keep-alive\r\n");
  }
  if (!head.request_id.empty()) {
    out->append("X-Request-Id: ");
    out->append(head.request_id);
    out->append("\r\n");
  }
  out->append("\r\n");
}

}  // namespace slipway::proxy
