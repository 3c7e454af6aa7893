#include "config/import_tree.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <sstream>

#include "common/names.h"
#include "config/importers.h"

namespace slipway {
namespace {

constexpr int kMaxDepth = 64;
constexpr size_t kMaxNodes = 100'000;

std::string Describe(const ImportNode& node) {
  switch (node.kind) {
    case ImportNode::Kind::kNull:
      return "nothing";
    case ImportNode::Kind::kSequence:
      return "a list";
    case ImportNode::Kind::kMap:
      return "a map";
    case ImportNode::Kind::kScalar:
      break;
  }
  std::string text = node.quoted ? QuoteForMessage(node.text) : node.text;
  constexpr size_t kMax = 60;
  if (text.size() > kMax) text = text.substr(0, kMax) + "...";
  if (!node.quoted && text.find_first_of("\r\n\t") != std::string::npos) {
    text = QuoteForMessage(text);
  }
  return text;
}

class YamlConverter {
 public:
  explicit YamlConverter(const std::string& filename) : filename_(filename) {}

  Result<ImportNode> Convert(const YAML::Node& node, int depth) {
    ImportNode out;
    out.where = Where(filename_, node);
    if (++count_ > kMaxNodes) {
      return InvalidArgument(out.where + ": the file holds too many values (aliases?)");
    }
    if (depth > kMaxDepth) return InvalidArgument(out.where + ": values nested too deeply");
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out.kind = ImportNode::Kind::kNull;
        break;
      case YAML::NodeType::Scalar:
        out.kind = ImportNode::Kind::kScalar;
        out.text = node.Scalar();
        // yaml-cpp tags a quoted scalar "!" and a plain one "?".
        out.quoted = node.Tag() == "!";
        break;
      case YAML::NodeType::Sequence:
        out.kind = ImportNode::Kind::kSequence;
        for (const auto& item : node) {
          ASSIGN_OR_RETURN(ImportNode child, Convert(item, depth + 1));
          out.items.push_back(std::move(child));
        }
        break;
      case YAML::NodeType::Map:
        out.kind = ImportNode::Kind::kMap;
        for (const auto& kv : node) {
          ImportNode::Member member;
          member.key_where = Where(filename_, kv.first);
          if (!kv.first.IsScalar()) {
            return InvalidArgument(member.key_where + ": a key must be a plain name");
          }
          member.key = kv.first.Scalar();
          for (const auto& seen : out.members) {
            if (seen.key == member.key) {
              return InvalidArgument(member.key_where + ": " + QuoteForMessage(member.key) +
                                     " is given twice (first at " + seen.key_where + ")");
            }
          }
          ASSIGN_OR_RETURN(member.value, Convert(kv.second, depth + 1));
          out.members.push_back(std::move(member));
        }
        break;
    }
    return out;
  }

 private:
  const std::string& filename_;
  size_t count_ = 0;
};

std::string TomlWhere(const std::string& filename, const toml::source_position& pos) {
  if (!pos) return filename;
  return filename + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
}

ImportNode FromToml(const toml::node& node, const std::string& filename) {
  ImportNode out;
  out.where = TomlWhere(filename, node.source().begin);
  if (const auto* table = node.as_table()) {
    out.kind = ImportNode::Kind::kMap;
    for (const auto& [key, value] : *table) {
      out.members.push_back({std::string(key.str()), TomlWhere(filename, key.source().begin),
                             FromToml(value, filename)});
    }
  } else if (const auto* array = node.as_array()) {
    out.kind = ImportNode::Kind::kSequence;
    for (const auto& item : *array) out.items.push_back(FromToml(item, filename));
  } else {
    out.kind = ImportNode::Kind::kScalar;
    if (const auto* s = node.as_string()) {
      out.text = s->get();
      out.quoted = true;
    } else {
      std::ostringstream text;
      node.visit([&text](const auto& n) { text << n; });
      out.text = text.str();
    }
  }
  return out;
}

// Orders "F:L:C" positions: line, then column (numerically).
bool WhereBefore(const std::string& a, const std::string& b) {
  auto second_last_colon = [](const std::string& s) {
    size_t last = s.rfind(':');
    return last == std::string::npos || last == 0 ? std::string::npos : s.rfind(':', last - 1);
  };
  int la = 0, ca = 0, lb = 0, cb = 0;
  size_t ia = second_last_colon(a), ib = second_last_colon(b);
  if (ia == std::string::npos || ib == std::string::npos) return a < b;
  std::sscanf(a.c_str() + ia, ":%d:%d", &la, &ca);
  std::sscanf(b.c_str() + ib, ":%d:%d", &lb, &cb);
  return la != lb ? la < lb : ca < cb;
}

void SortMembers(ImportNode& node) {
  std::stable_sort(node.members.begin(), node.members.end(),
                   [](const ImportNode::Member& a, const ImportNode::Member& b) {
                     return WhereBefore(a.key_where, b.key_where);
                   });
  for (auto& m : node.members) SortMembers(m.value);
  for (auto& i : node.items) SortMembers(i);
}

}  // namespace

namespace {

std::string Lower(std::string_view s) {
  std::string out;
  for (char c : s) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Squash(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != '_' && c != '-') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

size_t Levenshtein(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

// The candidate the user most likely meant: one equal ignoring case, '_' and '-', else
// the closest within 3 edits (case-insensitive), else none.
std::optional<std::string> ClosestKey(std::string_view word,
                                      const std::vector<std::string>& candidates) {
  for (const auto& c : candidates) {
    if (Squash(c) == Squash(word)) return c;
  }
  std::optional<std::string> best;
  size_t best_distance = 4;
  std::string lower = Lower(word);
  for (const auto& c : candidates) {
    size_t d = Levenshtein(lower, Lower(c));
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

const ImportNode* ImportNode::Find(std::string_view key) const {
  for (const auto& m : members) {
    if (m.key == key) return &m.value;
  }
  return nullptr;
}

std::string QuoteForMessage(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

Result<ImportNode> ImportTreeFromYaml(const YAML::Node& node, const std::string& filename) {
  YamlConverter converter(filename);
  return converter.Convert(node, 0);
}

Result<ImportNode> ImportTreeFromToml(std::string_view text, const std::string& filename) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(filename));
  } catch (const toml::parse_error& e) {
    std::string description(e.description());
    std::replace(description.begin(), description.end(), '\n', ' ');
    return InvalidArgument(TomlWhere(filename, e.source().begin) + ": " + description);
  }
  ImportNode tree = FromToml(root, filename);
  tree.where = filename + ":1:1";
  SortMembers(tree);
  return tree;
}

void FieldReader::Unsupported(const ImportNode::Member& member, const std::string& field,
                              const std::string& why, const std::vector<std::string>& known) {
  if (auto meant = ClosestKey(member.key, known)) {
    Warn(member.key_where, QuoteForMessage(field) + " is not a field Slipway knows (did you mean " +
                               QuoteForMessage(*meant) + "?); it is ignored");
    return;
  }
  Warn(member.key_where, QuoteForMessage(field) + " is not supported and is ignored" +
                             (why.empty() ? "" : " (" + why + ")"));
}

Status FieldReader::ExpectMap(const ImportNode& node, const std::string& field) const {
  if (node.IsMap()) return Status::Ok();
  return Error(node.where,
               QuoteForMessage(field) + " must be a map of keys (got " + Describe(node) + ")");
}

Status FieldReader::ExpectSequence(const ImportNode& node, const std::string& field) const {
  if (node.IsSequence()) return Status::Ok();
  return Error(node.where, QuoteForMessage(field) + " must be a list (got " + Describe(node) + ")");
}

Result<std::string> FieldReader::String(const ImportNode& node, const std::string& field) const {
  if (!node.IsScalar()) {
    return Error(node.where,
                 QuoteForMessage(field) + " must be a string (got " + Describe(node) + ")");
  }
  return node.text;
}

Result<std::string> FieldReader::Command(const ImportNode& node, const std::string& field) const {
  ASSIGN_OR_RETURN(std::string text, String(node, field));
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Error(node.where, QuoteForMessage(field) + " must not be empty");
  }
  return text;
}

Result<int> FieldReader::Int(const ImportNode& node, const std::string& field, int lo,
                             int hi) const {
  auto bad = [&] {
    return Error(node.where, QuoteForMessage(field) + " must be an integer from " +
                                 std::to_string(lo) + " to " + std::to_string(hi) + " (got " +
                                 Describe(node) + ")");
  };
  if (!node.IsScalar() || node.quoted || node.text.empty() || node.text.size() > 9) return bad();
  size_t start = node.text[0] == '-' || node.text[0] == '+' ? 1 : 0;
  if (start == node.text.size()) return bad();
  for (size_t i = start; i < node.text.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(node.text[i]))) return bad();
  }
  int value = std::stoi(node.text);
  if (value < lo || value > hi) return bad();
  return value;
}

Result<bool> FieldReader::Bool(const ImportNode& node, const std::string& field) const {
  if (node.IsScalar() && !node.quoted) {
    if (node.text == "true" || node.text == "True" || node.text == "TRUE") return true;
    if (node.text == "false" || node.text == "False" || node.text == "FALSE") return false;
  }
  return Error(node.where,
               QuoteForMessage(field) + " must be true or false (got " + Describe(node) + ")");
}

Result<std::vector<std::string>> FieldReader::Strings(const ImportNode& node,
                                                      const std::string& field) const {
  if (!node.IsSequence()) {
    return Error(node.where, QuoteForMessage(field) + " must be a list of strings (got " +
                                 Describe(node) + ")");
  }
  std::vector<std::string> out;
  for (const auto& item : node.items) {
    ASSIGN_OR_RETURN(std::string s, String(item, field + "[]"));
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::string> FieldReader::RelativePath(const ImportNode& node,
                                              const std::string& field) const {
  ASSIGN_OR_RETURN(std::string raw, String(node, field));
  auto bad = [&](const std::string& why) {
    return Error(node.where,
                 QuoteForMessage(field) + " " + why + " (got " + QuoteForMessage(raw) + ")");
  };
  if (raw.empty()) return bad("must not be empty (use \".\" for the project directory)");
  if (raw.front() == '/') return bad("must be relative to the project directory");
  if (std::any_of(raw.begin(), raw.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return bad("must not contain control characters");
  }
  std::vector<std::string> parts;
  std::stringstream in(raw);
  std::string part;
  while (std::getline(in, part, '/')) {
    if (part == "..") {
      if (parts.empty()) return bad("must stay inside the project directory");
      parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
  }
  if (parts.empty()) return std::string(".");
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
  return out;
}

Result<std::string> FieldReader::HealthPath(const ImportNode& node,
                                            const std::string& field) const {
  ASSIGN_OR_RETURN(std::string path, String(node, field));
  if (path.empty() || path.front() != '/' || std::any_of(path.begin(), path.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
      })) {
    return Error(node.where, QuoteForMessage(field) +
                                 " must be a path starting with '/', without spaces (got " +
                                 QuoteForMessage(path) + ")");
  }
  return path;
}

Result<std::string> FieldReader::CronSchedule(const ImportNode& node,
                                              const std::string& field) const {
  ASSIGN_OR_RETURN(std::string text, String(node, field));
  return CheckCronExpression(text, field, node.where);
}

Result<std::string> FieldReader::Name(const ImportNode& node, const std::string& what) {
  ASSIGN_OR_RETURN(std::string raw, String(node, what));
  std::string name = SanitizeName(raw);
  if (name.empty()) {
    return Error(node.where, what + " " + QuoteForMessage(raw) +
                                 " has no letters or digits to make a name from");
  }
  if (name != raw) {
    Warn(node.where, what + " " + QuoteForMessage(raw) + " is not a DNS label; it is named " +
                         QuoteForMessage(name) + " here");
  }
  return name;
}

Status FieldReader::VariableName(const std::string& name, const std::string& where) const {
  bool ok = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
            std::all_of(name.begin(), name.end(), [](char c) {
              return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
            });
  if (ok) return Status::Ok();
  return Error(where, "variable name " + QuoteForMessage(name) +
                          " is not valid: use letters, digits and '_', not starting with a digit");
}

std::string Reference(const std::string& owner, const std::string& key) {
  return "${{ " + owner + "." + key + " }}";
}

}  // namespace slipway
