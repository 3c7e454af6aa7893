#pragma once

// Small filesystem helpers with Status errors that name the path.

#include <string>
#include <vector>

#include "common/status.h"

namespace slipway {

Result<std::string> ReadFile(const std::string& path);
// Writes to a temp file beside `path`, fsyncs, renames over it: readers see old or new.
Status WriteFileAtomic(const std::string& path, const std::string& content, int mode = 0644);
Status AppendFile(const std::string& path, const std::string& content);
Status MakeDirs(const std::string& path, int mode = 0755);
Status RemoveTree(const std::string& path);
bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);
// The last `max_lines` lines of a file (fewer if it is shorter); reads at most the
// final 1 MiB.
Result<std::vector<std::string>> TailLines(const std::string& path, size_t max_lines);
// Copies a directory tree (regular files, dirs, symlinks), preserving modes.
Status CopyTree(const std::string& from, const std::string& to);
// Absolute, normalised form of `path` (need not exist).
std::string AbsolutePath(const std::string& path);

}  // namespace slipway
