#pragma once

// The tree the railway.json/railway.toml, render.yaml and app.json importers read: one
// shape for JSON, YAML and TOML, every node knowing where it was written ("FILE:L:C"),
// and a FieldReader that turns a node into a checked value or a one-line error naming
// that place. Internal to the config subsystem.
//
// Thread-safety: plain values; a FieldReader is used by one importer call at a time.

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "config/config.h"

namespace slipway {

struct ImportMember;

struct ImportNode {
  enum class Kind { kNull, kScalar, kSequence, kMap };
  Kind kind = Kind::kNull;
  std::string text;               // scalars: the value as written, without quotes
  bool quoted = false;            // a JSON/YAML quoted scalar or a TOML string: never a number
  std::string where;              // "FILE:LINE:COL", or "FILE" when the parser gave no position
  std::vector<ImportNode> items;  // sequences
  using Member = ImportMember;
  std::vector<Member> members;  // maps, in file order

  bool IsMap() const { return kind == Kind::kMap; }
  bool IsSequence() const { return kind == Kind::kSequence; }
  bool IsScalar() const { return kind == Kind::kScalar; }
  // The member named `key`, or nullptr.
  const ImportNode* Find(std::string_view key) const;
};

struct ImportMember {
  std::string key;
  std::string key_where;
  ImportNode value;
};

// From yaml-cpp's tree (JSON and YAML files). Fails for trees nested more than 64 deep
// or larger than 100,000 nodes (an alias bomb), naming the place.
Result<ImportNode> ImportTreeFromYaml(const YAML::Node& node, const std::string& filename);
// Parses TOML text; a syntax error is "FILE:LINE:COL: <toml++'s description>".
Result<ImportNode> ImportTreeFromToml(std::string_view text, const std::string& filename);

// JSON-style quoting, so a value in a message stays on one line.
std::string QuoteForMessage(std::string_view s);

// The candidate the user most likely meant by `word`: one equal ignoring case, '_' and
// '-', else the closest within 3 edits, else none.
std::optional<std::string> ClosestKey(std::string_view word,
                                      const std::vector<std::string>& candidates);

// Reads values out of an ImportNode for one file, collecting warnings and origins into
// the ProjectConfig being built. Every error is kInvalidArgument "WHERE: message".
class FieldReader {
 public:
  FieldReader(const std::string& filename, ProjectConfig& config)
      : filename_(filename), config_(config) {}

  const std::string& filename() const { return filename_; }
  ProjectConfig& config() { return config_; }

  Status Error(const std::string& where, const std::string& message) const {
    return InvalidArgument(where + ": " + message);
  }
  void Warn(const std::string& where, const std::string& message) {
    config_.warnings.push_back(where + ": " + message);
  }
  // `WHERE: "field" is not supported and is ignored[ (why)]`; when the key is close to
  // one of `known` (a likely typo), `WHERE: "field" is not a field Slipway knows (did you
  // mean "startCommand"?); it is ignored`.
  void Unsupported(const ImportNode::Member& member, const std::string& field,
                   const std::string& why = "", const std::vector<std::string>& known = {});
  void Origin(const std::string& key, const ImportNode& node) { config_.origins[key] = node.where; }

  Status ExpectMap(const ImportNode& node, const std::string& field) const;
  Status ExpectSequence(const ImportNode& node, const std::string& field) const;
  // Any scalar but null, as text (a number given for a string is accepted as written).
  Result<std::string> String(const ImportNode& node, const std::string& field) const;
  // A string holding more than blanks.
  Result<std::string> Command(const ImportNode& node, const std::string& field) const;
  // An unquoted integer within [lo, hi].
  Result<int> Int(const ImportNode& node, const std::string& field, int lo, int hi) const;
  Result<bool> Bool(const ImportNode& node, const std::string& field) const;
  Result<std::vector<std::string>> Strings(const ImportNode& node, const std::string& field) const;
  // A relative path that stays inside the project ("./api/" -> "api").
  Result<std::string> RelativePath(const ImportNode& node, const std::string& field) const;
  // An HTTP path starting with '/', no blanks.
  Result<std::string> HealthPath(const ImportNode& node, const std::string& field) const;
  // A cron expression CronSchedule accepts (CheckCronExpression, importers.h).
  Result<std::string> CronSchedule(const ImportNode& node, const std::string& field) const;
  // A service or add-on name made a DNS label; a warning says what it became when it
  // changed; an error when nothing usable is left.
  Result<std::string> Name(const ImportNode& node, const std::string& what);
  // An environment variable name: letters, digits, '_', not starting with a digit.
  Status VariableName(const std::string& name, const std::string& where) const;

 private:
  const std::string& filename_;
  ProjectConfig& config_;
};

// "${{ shared.KEY }}" and friends, as the variables contract spells them.
std::string Reference(const std::string& owner, const std::string& key);

}  // namespace slipway
