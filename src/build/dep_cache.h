#pragma once

// Internal to the builder: the dependency cache's directory, shared by every build that
// is given the same cache_dir (several threads and processes at once).
//
// Layout of cache_dir:
//   <key>/                        a committed entry, trusted only with its marker file
//                                 (kEntryMarker) naming the key; its mtime is when a
//                                 build last used it; nothing in it changes after commit
//   <key>.tmp-<pid>-<n>/          an entry being built by process <pid>; never trusted
//   .trash/                       entries being removed
//   .lock                         flock(2): shared while a build looks an entry up or
//                                 commits one, exclusive while PruneDependencyCache
//                                 decides what to remove (so an entry a build has just
//                                 chosen and touched is never removed under it)
//
// A build creates its entry under a temp name and renames it to <key> when complete, so
// a failed or killed build leaves only a temp directory, which no build reads and which
// pruning removes once its process is gone. Two builds of one key at once each build
// their own temp entry; the first rename wins, the other build drops its own and uses
// the winner's.

#include <string>
#include <string_view>

#include "common/status.h"

namespace slipway::build_internal {

inline constexpr char kEntryMarker[] = "slipway-cache-entry";

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

class DependencyCache {
 public:
  explicit DependencyCache(std::string dir) : dir_(std::move(dir)) {}

  // Where the entry for `key` is (or will be) once committed.
  std::string EntryPath(const std::string& key) const { return dir_ + "/" + key; }

  // The committed entry for `key`, marked as used now; "" when there is none. An entry
  // without its marker (damaged) is removed and reported as missing.
  Result<std::string> Lookup(const std::string& key);

  // Creates an empty temp directory to build the entry for `key` in.
  Result<std::string> StartEntry(const std::string& key);

  // Marks `temp_dir` complete and renames it to the entry path. When another build
  // committed `key` first, `temp_dir` is removed and the existing entry is returned.
  Result<std::string> Commit(const std::string& key, const std::string& temp_dir);

 private:
  std::string dir_;
};

// Hardlinks the regular files of `from` into a new tree `to` (directories are created,
// symlinks copied as links). Falls back to copying a file where a link is impossible
// (another filesystem, link limit).
Status LinkTree(const std::string& from, const std::string& to);

}  // namespace slipway::build_internal
