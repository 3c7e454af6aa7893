#include "common/route_pattern.h"

#include <boost/regex.hpp>
#include <cctype>
#include <exception>
#include <optional>

namespace slipway {

struct RoutePattern::Compiled {
  boost::regex re;
};

namespace {

// path-to-regexp's default for a parameter: one segment, lazily.
constexpr std::string_view kSegment = R"([^\/#\?]+?)";

bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }

std::string At(size_t index) { return " at character " + std::to_string(index + 1); }

void AppendEscaped(std::string_view text, std::string* out) {
  for (char c : text) {
    if (std::string_view(".+*?=^!:${}()[]|/\\").find(c) != std::string_view::npos) {
      out->push_back('\\');
    }
    out->push_back(c);
  }
}

enum class TokenKind { kChar, kEscaped, kName, kPattern, kModifier, kOpen, kClose, kEnd };

struct Token {
  TokenKind kind;
  size_t index;
  std::string value;
};

Result<std::vector<Token>> Lex(std::string_view s) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '*' || c == '+' || c == '?') {
      tokens.push_back({TokenKind::kModifier, i, std::string(1, c)});
      ++i;
    } else if (c == '\\') {
      if (i + 1 >= s.size()) return InvalidArgument("a \"\\\" ends the pattern" + At(i));
      tokens.push_back({TokenKind::kEscaped, i, std::string(1, s[i + 1])});
      i += 2;
    } else if (c == '{' || c == '}') {
      tokens.push_back({c == '{' ? TokenKind::kOpen : TokenKind::kClose, i, ""});
      ++i;
    } else if (c == ':') {
      size_t j = i + 1;
      while (j < s.size() && IsNameChar(s[j])) ++j;
      if (j == i + 1) return InvalidArgument("\":\" without a parameter name" + At(i));
      tokens.push_back({TokenKind::kName, i, std::string(s.substr(i + 1, j - i - 1))});
      i = j;
    } else if (c == '(') {
      int depth = 1;
      size_t j = i + 1;
      if (j < s.size() && s[j] == '?') {
        return InvalidArgument("a group cannot start with \"?\"" + At(j) +
                               " (write \"((?!x).*)\", not \"(?!x)\")");
      }
      std::string pattern;
      while (j < s.size()) {
        if (s[j] == '\\') {
          if (j + 1 >= s.size()) break;
          pattern.append(s.substr(j, 2));
          j += 2;
          continue;
        }
        if (s[j] == ')') {
          if (--depth == 0) {
            ++j;
            break;
          }
        } else if (s[j] == '(') {
          ++depth;
          if (j + 1 >= s.size() || s[j + 1] != '?') {
            return InvalidArgument("capturing groups are not allowed inside a group" + At(j) +
                                   " (use \"(?:...)\")");
          }
        }
        pattern.push_back(s[j]);
        ++j;
      }
      if (depth != 0) return InvalidArgument("unbalanced \"(\"" + At(i));
      if (pattern.empty()) return InvalidArgument("empty group \"()\"" + At(i));
      tokens.push_back({TokenKind::kPattern, i, std::move(pattern)});
      i = j;
    } else {
      tokens.push_back({TokenKind::kChar, i, std::string(1, c)});
      ++i;
    }
  }
  tokens.push_back({TokenKind::kEnd, s.size(), ""});
  return tokens;
}

struct Param {
  std::string name;  // "" unnamed
  bool capturing = true;
  std::string prefix, suffix, pattern, modifier;
};

struct Piece {
  std::string text;            // a literal, when !param
  std::optional<Param> param;  // a parameter or a brace group
};

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Result<std::vector<Piece>> Parse() {
    std::vector<Piece> pieces;
    std::string path;
    for (;;) {
      const Token* ch = TryConsume(TokenKind::kChar);
      const Token* name = TryConsume(TokenKind::kName);
      const Token* pattern = TryConsume(TokenKind::kPattern);
      if (name != nullptr || pattern != nullptr) {
        std::string prefix = ch != nullptr ? ch->value : "";
        if (prefix != "/" && prefix != ".") {
          path += prefix;
          prefix.clear();
        }
        if (!path.empty()) pieces.push_back({std::move(path), std::nullopt});
        path.clear();
        Param p;
        p.name = name != nullptr ? name->value : "";
        p.prefix = std::move(prefix);
        p.pattern = pattern != nullptr ? pattern->value : std::string(kSegment);
        if (const Token* m = TryConsume(TokenKind::kModifier)) p.modifier = m->value;
        pieces.push_back({"", std::move(p)});
        continue;
      }
      const Token* value = ch != nullptr ? ch : TryConsume(TokenKind::kEscaped);
      if (value != nullptr) {
        path += value->value;
        continue;
      }
      if (!path.empty()) pieces.push_back({std::move(path), std::nullopt});
      path.clear();
      if (const Token* open = TryConsume(TokenKind::kOpen)) {
        Param p;
        p.prefix = Text();
        const Token* group_name = TryConsume(TokenKind::kName);
        const Token* group_pattern = TryConsume(TokenKind::kPattern);
        p.name = group_name != nullptr ? group_name->value : "";
        if (group_pattern != nullptr) {
          p.pattern = group_pattern->value;
        } else if (group_name != nullptr) {
          p.pattern = std::string(kSegment);
        }
        p.capturing = !p.pattern.empty();
        p.suffix = Text();
        if (TryConsume(TokenKind::kClose) == nullptr) {
          return InvalidArgument("unbalanced \"{\"" + At(open->index));
        }
        if (const Token* m = TryConsume(TokenKind::kModifier)) p.modifier = m->value;
        pieces.push_back({"", std::move(p)});
        continue;
      }
      const Token& next = tokens_[pos_];
      switch (next.kind) {
        case TokenKind::kEnd:
          return pieces;
        case TokenKind::kModifier:
          return InvalidArgument("\"" + next.value + "\"" + At(next.index) +
                                 " follows no parameter (write \"(.*)\" or \":path*\" for any "
                                 "rest of the path)");
        case TokenKind::kClose:
          return InvalidArgument("unbalanced \"}\"" + At(next.index));
        default:
          return InvalidArgument("unexpected character" + At(next.index));
      }
    }
  }

 private:
  const Token* TryConsume(TokenKind kind) {
    if (tokens_[pos_].kind != kind) return nullptr;
    return &tokens_[pos_++];
  }
  std::string Text() {
    std::string out;
    for (;;) {
      const Token* t = TryConsume(TokenKind::kChar);
      if (t == nullptr) t = TryConsume(TokenKind::kEscaped);
      if (t == nullptr) return out;
      out += t->value;
    }
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
};

// The position right after a leading URL scheme ("https:" -> 6), or 0.
size_t SchemeEnd(std::string_view s) {
  if (s.empty() || !std::isalpha(static_cast<unsigned char>(s[0]))) return 0;
  for (size_t i = 1; i < s.size(); ++i) {
    const char c = s[i];
    if (c == ':') return i + 1;
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') return 0;
  }
  return 0;
}

void AppendQueryValue(std::string_view value, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '%') {
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    }
  }
}

}  // namespace

Result<RoutePattern> RoutePattern::Compile(std::string_view source) {
  if (source.empty()) return InvalidArgument("the pattern is empty");
  ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(source));
  Parser parser(std::move(tokens));
  ASSIGN_OR_RETURN(std::vector<Piece> pieces, parser.Parse());

  RoutePattern out;
  out.source_ = std::string(source);
  std::string& re = out.regex_;
  re = "^";
  for (const Piece& piece : pieces) {
    if (!piece.param) {
      AppendEscaped(piece.text, &re);
      continue;
    }
    const Param& p = *piece.param;
    std::string prefix, suffix;
    AppendEscaped(p.prefix, &prefix);
    AppendEscaped(p.suffix, &suffix);
    if (!p.capturing) {
      re += "(?:" + prefix + suffix + ")" + p.modifier;
      continue;
    }
    out.names_.push_back(p.name);
    const bool repeated = p.modifier == "*" || p.modifier == "+";
    if (!prefix.empty() || !suffix.empty()) {
      if (repeated) {
        re += "(?:" + prefix + "((?:" + p.pattern + ")(?:" + suffix + prefix + "(?:" + p.pattern +
              "))*)" + suffix + ")" + (p.modifier == "*" ? "?" : "");
      } else {
        re += "(?:" + prefix + "(" + p.pattern + ")" + suffix + ")" + p.modifier;
      }
    } else if (repeated) {
      re += "((?:" + p.pattern + ")" + p.modifier + ")";
    } else {
      re += "(" + p.pattern + ")" + p.modifier;
    }
  }
  re += "$";

  auto compiled = std::make_shared<Compiled>();
  try {
    compiled->re.assign(re, boost::regex::perl);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("not a valid regular expression (") + e.what() + ")");
  }
  if (compiled->re.mark_count() != out.names_.size()) {
    return InvalidArgument(
        "capturing groups are not allowed inside a group (use \"(?:...)\" instead of "
        "\"(...)\" or \"(?<name>...)\")");
  }
  out.compiled_ = std::move(compiled);
  return out;
}

bool RoutePattern::Match(std::string_view path, RouteCaptures* captures) const {
  if (!compiled_) return false;
  boost::match_results<std::string_view::const_iterator> m;
  try {
    if (!boost::regex_match(path.begin(), path.end(), m, compiled_->re)) return false;
  } catch (const std::exception&) {
    return false;  // too complex to decide: treated as no match
  }
  if (captures != nullptr) {
    captures->groups.clear();
    for (size_t i = 0; i < names_.size(); ++i) {
      const auto& sub = m[static_cast<int>(i + 1)];
      captures->groups.emplace_back(names_[i], sub.matched ? sub.str() : std::string());
    }
  }
  return true;
}

Status CheckDestination(const RoutePattern& pattern, std::string_view destination) {
  for (size_t i = SchemeEnd(destination); i < destination.size(); ++i) {
    if (destination[i] != ':' || i + 1 >= destination.size() || !IsNameStart(destination[i + 1])) {
      continue;
    }
    size_t j = i + 1;
    while (j < destination.size() && IsNameChar(destination[j])) ++j;
    const std::string name(destination.substr(i + 1, j - i - 1));
    bool known = false;
    for (const auto& n : pattern.names()) known = known || n == name;
    if (!known) {
      return InvalidArgument("\"destination\" uses \":" + name + "\", which \"source\" (\"" +
                             pattern.source() + "\") does not capture");
    }
    i = j - 1;
  }
  return Status::Ok();
}

std::string SubstituteCaptures(std::string_view destination, const RouteCaptures& captures,
                               bool unused_to_query) {
  std::string out;
  out.reserve(destination.size() + 32);
  const size_t scheme = SchemeEnd(destination);
  out.append(destination.substr(0, scheme));
  bool used_name = false;
  for (size_t i = scheme; i < destination.size(); ++i) {
    const char c = destination[i];
    std::optional<std::string_view> value;
    size_t end = i + 1;
    if (c == ':' && i + 1 < destination.size() && IsNameStart(destination[i + 1])) {
      size_t j = i + 1;
      while (j < destination.size() && IsNameChar(destination[j])) ++j;
      const std::string_view name = destination.substr(i + 1, j - i - 1);
      for (const auto& [n, v] : captures.groups) {
        if (n == name) {
          value = v;
          break;
        }
      }
      if (value) {
        used_name = true;
        // "/:path*" as in the source; a '?' after a name starts the query instead.
        if (j < destination.size() && (destination[j] == '*' || destination[j] == '+')) ++j;
      }
      end = j;
    } else if (c == '$' && i + 1 < destination.size() &&
               std::isdigit(static_cast<unsigned char>(destination[i + 1]))) {
      size_t j = i + 1;
      size_t index = 0;
      while (j < destination.size() && std::isdigit(static_cast<unsigned char>(destination[j])) &&
             index < 1000) {
        index = index * 10 + static_cast<size_t>(destination[j] - '0');
        ++j;
      }
      if (index >= 1 && index <= captures.groups.size()) value = captures.groups[index - 1].second;
      end = j;
    }
    if (!value) {
      out.append(destination.substr(i, end - i));
      i = end - 1;
      continue;
    }
    // An empty optional segment takes its slash along ("/docs/:path*" -> "/docs").
    if (value->empty() && out.size() > 1 && out.back() == '/') out.pop_back();
    out.append(*value);
    i = end - 1;
  }
  if (unused_to_query && !used_name) {
    std::string query;
    for (const auto& [name, value] : captures.groups) {
      if (name.empty()) continue;
      if (!query.empty()) query.push_back('&');
      query += name;
      query.push_back('=');
      AppendQueryValue(value, &query);
    }
    if (!query.empty()) {
      const size_t hash = out.find('#');
      const size_t at = hash == std::string::npos ? out.size() : hash;
      const bool has_query = out.find('?') < at;
      out.insert(at, (has_query ? "&" : "?") + query);
    }
  }
  return out;
}

}  // namespace slipway
