#include "proxy/static_files.h"

#include <fmt/format.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <array>
#include <cctype>
#include <cstring>
#include <utility>

namespace slipway::proxy {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool RealPath(const std::string& path, std::string* out) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return false;
  *out = buf;
  return true;
}

bool Inside(const std::string& root, const std::string& path) {
  if (path == root) return true;
  if (root == "/") return true;
  return path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
         path[root.size()] == '/';
}

StaticLookup Bad(std::string reason) {
  StaticLookup out;
  out.kind = StaticLookup::kBadPath;
  out.reason = std::move(reason);
  return out;
}

StaticLookup NotFound() { return {}; }

// Resolves `candidate` (root + clean relative path) and checks it stays inside the root.
// Returns false when missing or escaping.
bool ResolveInside(const std::string& root, const std::string& candidate, std::string* real,
                   struct stat* st) {
  if (!RealPath(candidate, real)) return false;
  if (!Inside(root, *real)) return false;
  return ::stat(real->c_str(), st) == 0;
}

}  // namespace

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = HexValue(in[i + 1]);
    int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

StaticLookup ResolveStaticPath(const std::string& root_real, std::string_view target) {
  std::string_view raw_path = target.substr(0, target.find_first_of("?#"));
  std::string_view query = raw_path.size() < target.size() && target[raw_path.size()] == '?'
                               ? target.substr(raw_path.size())
                               : std::string_view();
  if (raw_path.empty() || raw_path.front() != '/') return Bad("the path must start with /");
  std::string decoded;
  if (!PercentDecode(raw_path, &decoded)) return Bad("the path has a malformed %-escape");
  if (decoded.find('\0') != std::string::npos) return Bad("the path contains a NUL byte");

  std::string relative;  // "a/b/c", no leading or trailing slash
  size_t pos = 1;
  bool well_known = false;
  while (pos <= decoded.size()) {
    size_t slash = decoded.find('/', pos);
    if (slash == std::string::npos) slash = decoded.size();
    std::string_view segment(decoded.data() + pos, slash - pos);
    pos = slash + 1;
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") return Bad("the path must not contain \"..\"");
    if (relative.empty() && segment == ".well-known") well_known = true;
    if (segment.front() == '.' && !(well_known && relative.empty())) return NotFound();
    if (!relative.empty()) relative += '/';
    relative += segment;
  }

  std::string candidate = relative.empty() ? root_real : root_real + "/" + relative;
  std::string real;
  struct stat st {};
  if (!ResolveInside(root_real, candidate, &real, &st)) return NotFound();
  if (S_ISDIR(st.st_mode)) {
    if (decoded.back() != '/') {
      StaticLookup out;
      out.kind = StaticLookup::kRedirect;
      // Built from the checked, decoded path and percent-encoded again: the raw path
      // could start with "//" (another host to a browser) or decode to CR/LF.
      out.path = "/";
      for (unsigned char c : relative) {
        if (std::isalnum(c) || std::strchr("-._~/!$&'()*+,;=:@", c) != nullptr) {
          out.path.push_back(static_cast<char>(c));
        } else {
          out.path += fmt::format("%{:02X}", static_cast<unsigned>(c));
        }
      }
      if (!relative.empty()) out.path += "/";
      out.path += std::string(query);
      return out;
    }
    if (!ResolveInside(root_real, real + "/index.html", &real, &st)) return NotFound();
  }
  if (!S_ISREG(st.st_mode)) return NotFound();
  StaticLookup out;
  out.kind = StaticLookup::kFile;
  out.path = std::move(real);
  out.size = static_cast<uint64_t>(st.st_size);
  out.mtime = static_cast<int64_t>(st.st_mtime);
  return out;
}

std::string_view ContentTypeFor(std::string_view path) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 36> kTypes{{
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"cjs", "text/javascript; charset=utf-8"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"webmanifest", "application/manifest+json"},
      {"xml", "application/xml"},
      {"txt", "text/plain; charset=utf-8"},
      {"md", "text/markdown; charset=utf-8"},
      {"csv", "text/csv; charset=utf-8"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"avif", "image/avif"},
      {"ico", "image/x-icon"},
      {"bmp", "image/bmp"},
      {"wasm", "application/wasm"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"ttf", "font/ttf"},
      {"otf", "font/otf"},
      {"pdf", "application/pdf"},
      {"zip", "application/zip"},
      {"gz", "application/gzip"},
      {"mp4", "video/mp4"},
      {"webm", "video/webm"},
      {"mp3", "audio/mpeg"},
      {"wav", "audio/wav"},
      {"ogg", "audio/ogg"},
      {"yaml", "application/yaml"},
  }};
  auto slash = path.rfind('/');
  auto name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  auto dot = name.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == name.size()) {
    return "application/octet-stream";
  }
  auto ext = name.substr(dot + 1);
  std::string lower(ext);
  for (auto& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  for (const auto& [e, type] : kTypes) {
    if (e == lower) return type;
  }
  return "application/octet-stream";
}

std::string HttpDate(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

}  // namespace slipway::proxy
