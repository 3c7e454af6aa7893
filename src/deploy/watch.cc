#include "deploy/watch.h"

#include <openssl/evp.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/glob.h"

namespace slipway {

namespace fs = std::filesystem;

namespace {

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

}  // namespace

Result<std::string> WatchDigest(const std::string& project_dir,
                                const std::vector<std::string>& patterns,
                                const std::string& config_json) {
  ASSIGN_OR_RETURN(PathPatterns matcher, PathPatterns::Parse(patterns));
  std::vector<std::pair<std::string, std::string>> files;  // relative path -> content digest
  std::error_code ec;
  fs::recursive_directory_iterator it(project_dir, fs::directory_options::none, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::directory_entry& entry = *it;
    const bool is_link = entry.is_symlink(ec);
    if (!is_link && !entry.is_regular_file(ec)) continue;
    std::string relative = entry.path().lexically_relative(project_dir).generic_string();
    if (!matcher.Matches(relative)) continue;
    if (is_link) {
      files.emplace_back(relative, "symlink:" + fs::read_symlink(entry.path(), ec).string());
      continue;
    }
    ASSIGN_OR_RETURN(std::string content, ReadFile(entry.path().string()));
    files.emplace_back(relative, Sha256Hex(content));
  }
  if (ec) return Internal("reading " + project_dir + " for watchPatterns: " + ec.message());
  std::sort(files.begin(), files.end());
  std::string summary = "config\n" + config_json + "\n";
  for (const auto& [path, digest] : files) summary += path + '\0' + digest + '\n';
  return Sha256Hex(summary);
}

std::optional<std::string> RecordedWatchDigest(const std::string& manifest_json) {
  auto doc = nlohmann::json::parse(manifest_json, nullptr, false);
  if (!doc.is_object()) return std::nullopt;
  auto it = doc.find(kWatchDigestKey);
  if (it == doc.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::string WithWatchDigest(const std::string& manifest_json, const std::string& digest) {
  auto doc = nlohmann::json::parse(manifest_json, nullptr, false);
  if (!doc.is_object()) return manifest_json;
  doc[kWatchDigestKey] = digest;
  return doc.dump();
}

}  // namespace slipway
