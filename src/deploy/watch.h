#pragma once

// Watch patterns of a monorepo's services: a service whose watchPatterns are set is
// redeployed by `slipway up` only when a file they match, or its config, changed since
// its active deployment. What was deployed is remembered as a digest in the release's
// manifest JSON (key "watchDigest"), so no schema change is needed and a rollback
// brings back the digest of the code it brings back.
//
// Thread-safety: free functions; safe from any thread.

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace slipway {

inline constexpr const char* kWatchDigestKey = "watchDigest";

// A digest (64 hex digits) of the files under `project_dir` matched by `patterns`
// (gitignore-style, relative to project_dir; see common/glob.h) — their paths,
// contents and symlink targets — and of `config_json`. kInvalidArgument naming a bad
// pattern; I/O errors naming the file.
Result<std::string> WatchDigest(const std::string& project_dir,
                                const std::vector<std::string>& patterns,
                                const std::string& config_json);

// The digest recorded in a release manifest's JSON, if any.
std::optional<std::string> RecordedWatchDigest(const std::string& manifest_json);

// `manifest_json` with `digest` recorded in it.
std::string WithWatchDigest(const std::string& manifest_json, const std::string& digest);

}  // namespace slipway
