#include "common/glob.h"

#include <optional>

namespace slipway {

namespace {

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) out.emplace_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

// Matches a class "[...]" starting at pattern[i] against c. Returns the index just past
// the class and whether it matched; nullopt when the class is not terminated.
std::optional<std::pair<size_t, bool>> MatchClass(std::string_view pattern, size_t i, char c) {
  size_t j = i + 1;
  bool negate = false;
  if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) {
    negate = true;
    j++;
  }
  bool matched = false;
  bool first = true;
  while (j < pattern.size() && (first || pattern[j] != ']')) {
    first = false;
    char lo = pattern[j];
    if (lo == '\\' && j + 1 < pattern.size()) lo = pattern[++j];
    char hi = lo;
    if (j + 2 < pattern.size() && pattern[j + 1] == '-' && pattern[j + 2] != ']') {
      hi = pattern[j + 2];
      if (hi == '\\' && j + 3 < pattern.size()) {
        hi = pattern[j + 3];
        j++;
      }
      j += 2;
    }
    if (c >= lo && c <= hi) matched = true;
    j++;
  }
  if (j >= pattern.size()) return std::nullopt;
  return std::make_pair(j + 1, matched != negate);
}

bool MatchSegments(const std::vector<std::string>& pattern, size_t pi,
                   const std::vector<std::string>& path, size_t si, size_t path_end) {
  if (pi == pattern.size()) return si == path_end;
  if (pattern[pi] == "**") {
    for (size_t k = si; k <= path_end; ++k) {
      if (MatchSegments(pattern, pi + 1, path, k, path_end)) return true;
    }
    return false;
  }
  if (si == path_end) return false;
  return GlobMatchSegment(pattern[pi], path[si]) &&
         MatchSegments(pattern, pi + 1, path, si + 1, path_end);
}

}  // namespace

bool GlobMatchSegment(std::string_view pattern, std::string_view name) {
  size_t p = 0, n = 0;
  // Where to resume after the last '*': the pattern just past it, and the name position.
  size_t star_p = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size()) {
      char pc = pattern[p];
      if (pc == '*') {
        while (p < pattern.size() && pattern[p] == '*') p++;
        star_p = p;
        star_n = n;
        continue;
      }
      if (pc == '?') {
        p++;
        n++;
        continue;
      }
      if (pc == '[') {
        auto cls = MatchClass(pattern, p, name[n]);
        if (cls && cls->second) {
          p = cls->first;
          n++;
          continue;
        }
        if (!cls && name[n] == '[') {  // unterminated: a literal '['
          p++;
          n++;
          continue;
        }
      } else {
        if (pc == '\\' && p + 1 < pattern.size()) pc = pattern[++p];
        if (pc == name[n]) {
          p++;
          n++;
          continue;
        }
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p;
    n = ++star_n;
  }
  while (p < pattern.size() && pattern[p] == '*') p++;
  return p == pattern.size();
}

Result<PathPatterns> PathPatterns::Parse(const std::vector<std::string>& patterns) {
  PathPatterns out;
  for (const std::string& original : patterns) {
    std::string_view text = original;
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
      if (text.size() >= 2 && text[text.size() - 2] == '\\') break;  // "\ " keeps its space
      text.remove_suffix(1);
    }
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    if (text.empty() || text.front() == '#') continue;
    Rule rule;
    if (text.front() == '!') {
      rule.negated = true;
      text.remove_prefix(1);
      if (text.empty()) {
        return InvalidArgument("watch pattern \"" + original + "\": \"!\" negates nothing");
      }
    }
    if (text.back() == '/') {
      rule.directory_only = true;
      while (!text.empty() && text.back() == '/') text.remove_suffix(1);
    }
    // A '/' at the start or in the middle anchors the pattern at the root.
    const bool anchored = text.find('/') != std::string_view::npos;
    if (!anchored) rule.segments.push_back("**");
    for (std::string& seg : SplitPath(text)) {
      for (size_t i = 0; i < seg.size(); ++i) {
        if (seg[i] == '\\') {
          i++;
        } else if (seg[i] == '[' && !MatchClass(seg, i, '\0')) {
          return InvalidArgument("watch pattern \"" + original +
                                 "\": '[' has no closing ']' (write \\[ for a literal one)");
        }
      }
      rule.segments.push_back(std::move(seg));
    }
    if (rule.segments.empty() ||
        (rule.segments.size() == 1 && rule.segments[0] == "**" && !anchored && text.empty())) {
      continue;  // "/" alone: nothing to match
    }
    out.rules_.push_back(std::move(rule));
  }
  return out;
}

bool PathPatterns::Matches(std::string_view path) const {
  const std::vector<std::string> segments = SplitPath(path);
  if (segments.empty()) return false;
  bool included = false;
  for (const Rule& rule : rules_) {
    // The file itself, or one of its parent directories.
    for (size_t end = 1; end <= segments.size(); ++end) {
      const bool is_directory = end < segments.size();
      if (rule.directory_only && !is_directory) continue;
      if (MatchSegments(rule.segments, 0, segments, 0, end)) {
        included = !rule.negated;
        break;
      }
    }
  }
  return included;
}

}  // namespace slipway
