#include <nlohmann/json.hpp>
#include <string>

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

}  // namespace slipway
