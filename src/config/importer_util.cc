#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/cron.h"
#include "common/route_pattern.h"
#include "config/import_tree.h"
#include "config/importers.h"

namespace slipway {

std::string Where(const std::string& filename, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null() || mark.line < 0) return filename;
  return filename + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

Result<YAML::Node> LoadYaml(std::string_view text, const std::string& filename) {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    std::string where = filename;
    if (!e.mark.is_null()) {
      where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    }
    return InvalidArgument(where + ": " + e.msg);
  }
}

namespace {

// Line and column (1-based) of byte `offset` in `text`.
std::pair<int, int> LineColumn(std::string_view text, size_t offset) {
  int line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

}  // namespace

Result<YAML::Node> LoadJson(std::string_view text, const std::string& filename) {
  try {
    nlohmann::json parsed = nlohmann::json::parse(text);
    if (!parsed.is_object()) return InvalidArgument(filename + ":1:1: expected a JSON object");
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is 1-based and points just past the offending character.
    auto [line, column] = LineColumn(text, e.byte == 0 ? 0 : e.byte - 1);
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 3, column 5: syntax error ..."
    if (size_t colon = what.find(": "); colon != std::string::npos) what = what.substr(colon + 2);
    return InvalidArgument(filename + ":" + std::to_string(line) + ":" + std::to_string(column) +
                           ": " + what);
  }
  return LoadYaml(text, filename);
}

Result<std::string> CheckCronExpression(std::string_view text, const std::string& field,
                                        const std::string& where) {
  std::vector<std::string> words;
  std::string word;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) words.push_back(std::move(word));

  auto cron_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("*,-/").find(c) != std::string_view::npos;
  };
  bool shaped = words.size() == 5;
  for (const std::string& w : words) {
    shaped = shaped && std::all_of(w.begin(), w.end(), cron_char);
  }
  // A macro: "@daily" and friends; the parser says which ones it knows.
  const bool macro = words.size() == 1 && words[0].size() > 1 && words[0][0] == '@' &&
                     std::all_of(words[0].begin() + 1, words[0].end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c));
                     });
  if (!shaped && !macro) {
    return InvalidArgument(where + ": " + QuoteForMessage(field) +
                           " must be a 5-field cron expression (minute hour day-of-month month "
                           "day-of-week, in UTC) like \"0 2 * * *\" (got " +
                           QuoteForMessage(text) + ")");
  }

  std::string normalised;
  for (const std::string& w : words) normalised += (normalised.empty() ? "" : " ") + w;
  auto parsed = CronSchedule::Parse(normalised);
  if (!parsed.ok()) {
    // The parser names the expression first; the file's place names it here.
    std::string reason = parsed.status().message();
    const std::string prefix = "cron schedule \"" + normalised + "\": ";
    if (reason.rfind(prefix, 0) == 0) reason.erase(0, prefix.size());
    return InvalidArgument(where + ": " + QuoteForMessage(field) + ": " + reason);
  }
  return normalised;
}

Status CheckRouteRule(std::string_view kind, const std::string& source,
                      const std::string& source_where, const std::string* destination,
                      const std::string& destination_where) {
  auto pattern = RoutePattern::Compile(source);
  if (!pattern.ok()) {
    return InvalidArgument(source_where + ": \"source\" " + QuoteForMessage(source) +
                           " is not a valid pattern: " + pattern.status().message());
  }
  if (destination == nullptr) return Status::Ok();
  const std::string& d = *destination;
  const auto reference = ParseServiceUrlReference(d);
  if (!reference && d.find("${{") != std::string::npos) {
    return InvalidArgument(
        destination_where +
        ": \"destination\" may refer only to ${{ <service>.SLIPWAY_PRIVATE_URL }} "
        "or ${{ <service>.SLIPWAY_PUBLIC_URL }}, at its start, followed by a "
        "path (got " +
        QuoteForMessage(d) + ")");
  }
  // What the edge will see once the reference is resolved.
  const std::string resolved = reference ? "http://service.localhost" + reference->rest : d;
  auto starts = [&](std::string_view prefix) {
    if (resolved.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(resolved[i])) != prefix[i]) return false;
    }
    return true;
  };
  const bool http = starts("http://") || starts("https://");
  if (kind == "rewrites" && resolved.front() != '/' && !http) {
    return InvalidArgument(
        destination_where +
        ": a rewrite's \"destination\" must be a path of the site like "
        "\"/index.html\", an http(s) URL or ${{ <service>.SLIPWAY_PRIVATE_URL }}/path "
        "(got " +
        QuoteForMessage(d) + ")");
  }
  if (kind == "redirects" && resolved.front() != '/' && resolved.find(':') == std::string::npos) {
    return InvalidArgument(destination_where +
                           ": a redirect's \"destination\" must be a path like \"/new\" or a URL "
                           "like \"https://example.com/new\" (got " +
                           QuoteForMessage(d) + ")");
  }
  if (Status st = CheckDestination(*pattern, resolved); !st.ok()) {
    return InvalidArgument(destination_where + ": " + st.message());
  }
  return Status::Ok();
}

Status CheckHeaderName(std::string_view name, const std::string& where) {
  const bool token = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
  if (!token) {
    return InvalidArgument(where + ": header name " + QuoteForMessage(name) +
                           " is not a valid header name (letters, digits and !#$%&'*+-.^_`|~)");
  }
  std::string lower(name);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view reserved :
       {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
        "trailer", "proxy-connection", "content-range", "content-encoding"}) {
    if (lower == reserved) {
      return InvalidArgument(where + ": header " + QuoteForMessage(name) +
                             " cannot be set by a rule: the edge sets it for each answer");
    }
  }
  return Status::Ok();
}

}  // namespace slipway
