#include "proxy/static_files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
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

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Fills `out` from an open descriptor; false (closing it) unless a file or directory.
bool Adopt(int fd, const std::string& relative, StaticFile* out) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
    ::close(fd);
    return false;
  }
  out->Reset();
  out->fd = fd;
  out->directory = S_ISDIR(st.st_mode);
  out->size = static_cast<uint64_t>(st.st_size);
  out->mtime_ns = MtimeNs(st);
  out->relative = relative;
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool ParseUnsigned(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// The opaque part of an entity tag, without W/ and quotes; nullopt when malformed.
std::optional<std::string_view> Opaque(std::string_view tag, bool* weak) {
  *weak = false;
  if (tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/') {
    *weak = true;
    tag.remove_prefix(2);
  }
  if (tag.size() < 2 || tag.front() != '"' || tag.back() != '"') return std::nullopt;
  return tag.substr(1, tag.size() - 2);
}

bool IsHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

}  // namespace

StaticFile& StaticFile::operator=(StaticFile&& other) noexcept {
  if (this != &other) {
    Reset();
    fd = std::exchange(other.fd, -1);
    directory = other.directory;
    size = other.size;
    mtime_ns = other.mtime_ns;
    relative = std::move(other.relative);
  }
  return *this;
}

void StaticFile::Reset() {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

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

CleanPath CleanStaticPath(std::string_view raw_path) {
  CleanPath out;
  auto bad = [&](const char* reason) {
    out.kind = CleanPath::kBad;
    out.reason = reason;
    out.relative.clear();
    return out;
  };
  if (raw_path.empty() || raw_path.front() != '/') return bad("the path must start with /");
  std::string decoded;
  std::string_view path = raw_path;
  if (raw_path.find('%') != std::string_view::npos) {
    if (!PercentDecode(raw_path, &decoded)) return bad("the path has a malformed %-escape");
    if (decoded.find('\0') != std::string::npos) return bad("the path contains a NUL byte");
    path = decoded;
  }
  size_t pos = 1;
  bool well_known = false;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view segment = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") return bad("the path must not contain \"..\"");
    if (out.relative.empty() && segment == ".well-known") well_known = true;
    if (segment.front() == '.' && !(well_known && out.relative.empty())) {
      // Keep checking: a ".." further on still makes the path a bad request.
      out.kind = CleanPath::kHidden;
    }
    if (!out.relative.empty()) out.relative += '/';
    out.relative += segment;
  }
  if (out.kind == CleanPath::kHidden) out.relative.clear();
  return out;
}

bool OpenBeneath(int root_fd, const std::string& root_real, const std::string& relative,
                 StaticFile* out) {
  int own_root = -1;
  if (root_fd < 0) {
    own_root = ::open(root_real.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (own_root < 0) return false;
    root_fd = own_root;
  }
  struct open_how how {};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const char* name = relative.empty() ? "." : relative.c_str();
  int fd = static_cast<int>(::syscall(SYS_openat2, root_fd, name, &how, sizeof(how)));
  const int err = fd < 0 ? errno : 0;
  if (own_root >= 0) ::close(own_root);
  if (fd >= 0) {
    // O_NONBLOCK only kept a FIFO from blocking the open; regular files ignore it.
    return Adopt(fd, relative, out);
  }
  if (err != EXDEV && err != ENOSYS && err != EPERM) return false;
  // An absolute symlink (or a kernel without openat2): resolve the path and check where
  // it leads.
  std::string real;
  struct stat st {};
  const std::string candidate = relative.empty() ? root_real : root_real + "/" + relative;
  if (!ResolveInside(root_real, candidate, &real, &st)) return false;
  fd = ::open(real.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return false;
  return Adopt(fd, relative, out);
}

StaticLookup ResolveStaticPath(const std::string& root_real, std::string_view target) {
  std::string_view raw_path = target.substr(0, target.find_first_of("?#"));
  std::string_view query = raw_path.size() < target.size() && target[raw_path.size()] == '?'
                               ? target.substr(raw_path.size())
                               : std::string_view();
  CleanPath clean = CleanStaticPath(raw_path);
  if (clean.kind == CleanPath::kBad) return Bad(clean.reason);
  if (clean.kind == CleanPath::kHidden) return NotFound();
  const std::string& relative = clean.relative;

  std::string candidate = relative.empty() ? root_real : root_real + "/" + relative;
  std::string real;
  struct stat st {};
  if (!ResolveInside(root_real, candidate, &real, &st)) return NotFound();
  if (S_ISDIR(st.st_mode)) {
    if (raw_path.back() != '/') {
      StaticLookup out;
      out.kind = StaticLookup::kRedirect;
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

namespace {

// "Sun, 06 Nov 1994 08:49:37 GMT": 29 characters, without strftime's locale machinery.
constexpr size_t kHttpDateSize = 29;
void FormatHttpDate(int64_t unix_seconds, char* out) {
  static constexpr char kDays[] = "SunMonTueWedThuFriSat";
  static constexpr char kMonths[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  auto two = [](char* at, int v) {
    at[0] = static_cast<char>('0' + v / 10 % 10);
    at[1] = static_cast<char>('0' + v % 10);
  };
  std::memcpy(out, kDays + 3 * tm.tm_wday, 3);
  out[3] = ',';
  out[4] = ' ';
  two(out + 5, tm.tm_mday);
  out[7] = ' ';
  std::memcpy(out + 8, kMonths + 3 * tm.tm_mon, 3);
  out[11] = ' ';
  const int year = (tm.tm_year + 1900) % 10000;
  two(out + 12, year / 100);
  two(out + 14, year % 100);
  out[16] = ' ';
  two(out + 17, tm.tm_hour);
  out[19] = ':';
  two(out + 20, tm.tm_min);
  out[22] = ':';
  two(out + 23, tm.tm_sec);
  std::memcpy(out + 25, " GMT", 4);
}

struct DateCache {
  int64_t seconds = INT64_MIN;
  char text[kHttpDateSize];
};

std::string_view Cached(DateCache& cache, int64_t unix_seconds) {
  if (cache.seconds != unix_seconds) {
    FormatHttpDate(unix_seconds, cache.text);
    cache.seconds = unix_seconds;
  }
  return std::string_view(cache.text, kHttpDateSize);
}

}  // namespace

std::string HttpDate(int64_t unix_seconds) {
  char buf[kHttpDateSize];
  FormatHttpDate(unix_seconds, buf);
  return std::string(buf, kHttpDateSize);
}

std::string_view HttpDateNow() {
  thread_local DateCache now;
  return Cached(now, static_cast<int64_t>(::time(nullptr)));
}

std::string_view HttpDateCached(int64_t unix_seconds) {
  thread_local DateCache last;
  return Cached(last, unix_seconds);
}

std::optional<int64_t> ParseHttpDate(std::string_view text) {
  text = Trim(text);
  if (text.empty() || text.size() > 64) return std::nullopt;
  const std::string s(text);
  // IMF-fixdate, obsolete RFC 850, asctime (RFC 9110 5.6.7); all are GMT.
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    struct tm tm {};
    const char* end = strptime(s.c_str(), format, &tm);
    if (end != nullptr && *end == '\0') return static_cast<int64_t>(timegm(&tm));
  }
  return std::nullopt;
}

ETagText FormatETag(uint64_t size, int64_t mtime_ns, std::string_view encoding) {
  ETagText tag;
  char* out = tag.data;
  *out++ = '"';
  out = std::to_chars(out, tag.data + sizeof(tag.data), size, 16).ptr;
  *out++ = '-';
  out = std::to_chars(out, tag.data + sizeof(tag.data), static_cast<uint64_t>(mtime_ns), 16).ptr;
  if (encoding == "br" || encoding == "gzip") {
    std::memcpy(out, encoding == "br" ? "-br" : "-gz", 3);
    out += 3;
  }
  *out++ = '"';
  tag.size = static_cast<size_t>(out - tag.data);
  return tag;
}

std::string MakeETag(uint64_t size, int64_t mtime_ns, std::string_view encoding) {
  return std::string(FormatETag(size, mtime_ns, encoding).view());
}

bool NoneMatchHits(std::string_view header, std::string_view etag) {
  header = Trim(header);
  if (header == "*") return true;
  bool weak = false;
  const auto mine = Opaque(etag, &weak);
  if (!mine) return false;
  size_t pos = 0;
  while (pos < header.size()) {
    size_t comma = header.find(',', pos);
    if (comma == std::string_view::npos) comma = header.size();
    const auto theirs = Opaque(Trim(header.substr(pos, comma - pos)), &weak);
    if (theirs && *theirs == *mine) return true;
    pos = comma + 1;
  }
  return false;
}

bool NotModified(std::string_view if_none_match, std::string_view if_modified_since,
                 std::string_view etag, int64_t mtime_s) {
  if (!Trim(if_none_match).empty()) return NoneMatchHits(if_none_match, etag);
  if (Trim(if_modified_since).empty()) return false;
  const auto since = ParseHttpDate(if_modified_since);
  return since && mtime_s <= *since;
}

ByteRange ParseRange(std::string_view range, uint64_t size) {
  ByteRange out;
  range = Trim(range);
  if (range.size() < 6 || !IEquals(range.substr(0, 6), "bytes=")) return out;
  std::string_view spec = Trim(range.substr(6));
  if (spec.find(',') != std::string_view::npos) return out;  // several ranges
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return out;
  const std::string_view first_text = Trim(spec.substr(0, dash));
  const std::string_view last_text = Trim(spec.substr(dash + 1));
  uint64_t first = 0, last = 0;
  if (first_text.empty()) {
    // "-n": the last n bytes.
    if (!ParseUnsigned(last_text, &last)) return out;
    if (last == 0 || size == 0) {
      out.kind = ByteRange::kUnsatisfiable;
      return out;
    }
    out.kind = ByteRange::kPartial;
    out.length = std::min(last, size);
    out.first = size - out.length;
    return out;
  }
  if (!ParseUnsigned(first_text, &first)) return out;
  if (!last_text.empty()) {
    if (!ParseUnsigned(last_text, &last) || last < first) return out;
  } else {
    last = UINT64_MAX;
  }
  if (first >= size) {
    out.kind = ByteRange::kUnsatisfiable;
    return out;
  }
  out.kind = ByteRange::kPartial;
  out.first = first;
  out.length = std::min(last, size - 1) - first + 1;
  return out;
}

bool IfRangeAllows(std::string_view if_range, std::string_view etag, int64_t mtime_s) {
  if_range = Trim(if_range);
  if (if_range.empty()) return true;
  if (if_range.front() == '"' || if_range.starts_with("W/")) {
    // Strong comparison: a weak tag never matches.
    return if_range == etag;
  }
  const auto date = ParseHttpDate(if_range);
  return date && *date == mtime_s;
}

EncodingChoice PreferredEncodings(std::string_view accept) {
  // q in thousandths; -1: not mentioned.
  int br = -1, gzip = -1, star = -1;
  size_t pos = 0;
  while (pos < accept.size()) {
    size_t comma = accept.find(',', pos);
    if (comma == std::string_view::npos) comma = accept.size();
    std::string_view item = Trim(accept.substr(pos, comma - pos));
    pos = comma + 1;
    const size_t semi = item.find(';');
    const std::string_view coding = Trim(item.substr(0, semi));
    int q = 1000;
    if (semi != std::string_view::npos) {
      std::string_view params = item.substr(semi + 1);
      const size_t at = params.find_first_of("qQ");
      if (at != std::string_view::npos) {
        std::string_view value = Trim(params.substr(at + 1));
        if (!value.empty() && value.front() == '=') {
          value = Trim(value.substr(1));
          // "0", "0.5", "1", "1.000": three decimals at most.
          q = 0;
          size_t i = 0;
          if (i < value.size() && (value[i] == '0' || value[i] == '1')) {
            q = (value[i] - '0') * 1000;
            ++i;
            if (i < value.size() && value[i] == '.') {
              ++i;
              int scale = 100;
              while (i < value.size() && scale > 0 &&
                     std::isdigit(static_cast<unsigned char>(value[i]))) {
                q += (value[i] - '0') * scale;
                scale /= 10;
                ++i;
              }
            }
          }
          q = std::min(q, 1000);
        }
      }
    }
    if (IEquals(coding, "br")) {
      br = q;
    } else if (IEquals(coding, "gzip") || IEquals(coding, "x-gzip")) {
      gzip = std::max(gzip, q);
    } else if (coding == "*") {
      star = q;
    }
  }
  if (br < 0) br = star;
  if (gzip < 0) gzip = star;
  EncodingChoice out;
  if (br > 0 && br >= gzip) {
    out.order[out.count++] = "br";
    if (gzip > 0) out.order[out.count++] = "gzip";
  } else if (gzip > 0) {
    out.order[out.count++] = "gzip";
    if (br > 0) out.order[out.count++] = "br";
  }
  return out;
}

bool IsFingerprinted(std::string_view path) {
  if (path.find("/_next/static/") != std::string_view::npos) return true;
  const size_t slash = path.rfind('/');
  const std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  const std::string_view stem = name.substr(0, dot);
  // Vite / Rollup: "<name>-<8 characters>".
  if (stem.size() >= 10 && stem[stem.size() - 9] == '-') {
    const std::string_view hash = stem.substr(stem.size() - 8);
    bool charset = true, marked = false, letter = false;
    for (char c : hash) {
      const bool digit = c >= '0' && c <= '9';
      const bool upper = c >= 'A' && c <= 'Z';
      const bool lower = c >= 'a' && c <= 'z';
      charset = charset && (digit || upper || lower || c == '_' || c == '-');
      marked = marked || digit || upper;
      letter = letter || upper || lower;
    }
    if (charset && marked && letter) return true;
  }
  // webpack and co: a "-" or "." separated part of lowercase hex digits.
  size_t pos = 0;
  while (pos < stem.size()) {
    size_t end = stem.find_first_of("-.", pos);
    if (end == std::string_view::npos) end = stem.size();
    const std::string_view part = stem.substr(pos, end - pos);
    if (pos > 0 && part.size() >= 8 && part.size() <= 64) {
      bool hex = true, digit = false, letter = false;
      for (char c : part) {
        hex = hex && IsHexDigit(c);
        digit = digit || (c >= '0' && c <= '9');
        letter = letter || (c >= 'a' && c <= 'f');
      }
      if (hex && digit && letter) return true;
    }
    pos = end + 1;
  }
  return false;
}

std::string_view CacheControlFor(std::string_view path) {
  return IsFingerprinted(path) ? "public, max-age=31536000, immutable"
                               : "public, max-age=0, must-revalidate";
}

}  // namespace slipway::proxy
