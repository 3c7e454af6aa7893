#pragma once

// Source-tree archives: what `slipway up` uploads (a gzip'd tar of the app
// directory) and what the daemon unpacks, through libarchive.

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace slipway {

// Directory names never uploaded: they are rebuilt by the builder or are VCS data.
const std::vector<std::string>& DefaultArchiveExcludes();

// Packs `dir` into a gzip'd tar in memory, skipping entries whose name is in
// `excludes` at any depth. kResourceExhausted when the archive passes `max_bytes`,
// naming the limit and the largest directories is not attempted; the message says
// which directory was being packed.
Result<std::string> PackDirectory(const std::string& dir, const std::vector<std::string>& excludes,
                                  uint64_t max_bytes);

// Unpacks a gzip'd tar file into `dest` (created), refusing absolute paths, ".."
// components and symlinks that lead out of `dest`. kInvalidArgument for a corrupt
// or unsafe archive, kResourceExhausted when the unpacked size passes `max_bytes`
// or the disk is full.
Status UnpackArchive(const std::string& archive_path, const std::string& dest, uint64_t max_bytes);

}  // namespace slipway
