#include "common/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "common/fs.h"

namespace slipway {

namespace fs = std::filesystem;

const std::vector<std::string>& DefaultArchiveExcludes() {
  static const std::vector<std::string> kExcludes = {".git", "node_modules", ".venv", "__pycache__",
                                                     ".slipway"};
  return kExcludes;
}

namespace {

struct ArchiveWriter {
  std::string* out;
  uint64_t max_bytes;
  bool overflow = false;
};

la_ssize_t WriteToString(struct archive*, void* client, const void* buf, size_t n) {
  auto* w = static_cast<ArchiveWriter*>(client);
  if (w->out->size() + n > w->max_bytes) {
    w->overflow = true;
    return -1;
  }
  w->out->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

}  // namespace

Result<std::string> PackDirectory(const std::string& dir, const std::vector<std::string>& excludes,
                                  uint64_t max_bytes) {
  if (!IsDirectory(dir)) return NotFound(dir + " is not a directory");
  std::string out;
  ArchiveWriter writer{&out, max_bytes};
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(),
                                                            archive_write_free);
  archive_write_add_filter_gzip(a.get());
  archive_write_set_format_pax_restricted(a.get());
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open2(a.get(), &writer, nullptr, WriteToString, nullptr, nullptr) !=
      ARCHIVE_OK) {
    return Internal(std::string("cannot start archive: ") + archive_error_string(a.get()));
  }
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) return ErrnoStatus(dir, ec.value());
  std::vector<char> buf(1 << 16);
  for (; it != end; it.increment(ec)) {
    if (ec) return ErrnoStatus(dir, ec.value());
    const fs::path& p = it->path();
    std::string name = p.filename().string();
    if (std::find(excludes.begin(), excludes.end(), name) != excludes.end()) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    std::string rel = p.lexically_relative(dir).string();  // never resolves symlinks
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0) continue;
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(),
                                                                        archive_entry_free);
    archive_entry_set_pathname(entry.get(), rel.c_str());
    archive_entry_copy_stat(entry.get(), &st);
    archive_entry_set_uid(entry.get(), 0);
    archive_entry_set_gid(entry.get(), 0);
    if (S_ISLNK(st.st_mode)) {
      std::string target = fs::read_symlink(p, ec).string();
      archive_entry_set_symlink(entry.get(), target.c_str());
    } else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
      continue;  // sockets, fifos, devices are not part of an app
    }
    if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK) {
      if (writer.overflow) break;
      return Internal("cannot pack " + rel + ": " + archive_error_string(a.get()));
    }
    if (S_ISREG(st.st_mode)) {
      FILE* f = fopen(p.c_str(), "rb");
      if (f == nullptr) return ErrnoStatus(p.string(), errno);
      size_t n;
      while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) {
        if (archive_write_data(a.get(), buf.data(), n) < 0) break;
      }
      fclose(f);
    }
    if (writer.overflow) break;
  }
  archive_write_close(a.get());
  if (writer.overflow) {
    return ResourceExhausted(dir + " is larger than " + std::to_string(max_bytes >> 20) +
                             " MiB packed; remove build outputs or large data files from it");
  }
  return out;
}

Status UnpackArchive(const std::string& archive_path, const std::string& dest, uint64_t max_bytes) {
  RETURN_IF_ERROR(MakeDirs(dest));
  std::unique_ptr<archive, decltype(&archive_read_free)> in(archive_read_new(), archive_read_free);
  archive_read_support_filter_gzip(in.get());
  archive_read_support_filter_none(in.get());
  archive_read_support_format_tar(in.get());
  if (archive_read_open_filename(in.get(), archive_path.c_str(), 1 << 16) != ARCHIVE_OK) {
    return InvalidArgument("the uploaded archive cannot be read: " +
                           std::string(archive_error_string(in.get())));
  }
  std::unique_ptr<archive, decltype(&archive_write_free)> out(archive_write_disk_new(),
                                                              archive_write_free);
  archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                                ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                ARCHIVE_EXTRACT_SECURE_SYMLINKS);
  uint64_t total = 0;
  archive_entry* entry;
  while (true) {
    int r = archive_read_next_header(in.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) {
      return InvalidArgument("the uploaded archive is corrupt: " +
                             std::string(archive_error_string(in.get())));
    }
    std::string name = archive_entry_pathname(entry);
    // Paths are checked here and then made absolute under dest, so libarchive's own
    // absolute-path refusal cannot be used; ".." and symlink traversal stay refused.
    if (name.empty() || name[0] == '/') {
      return InvalidArgument("the uploaded archive has an absolute path: " + name);
    }
    for (const auto& part : fs::path(name)) {
      if (part == "..") return InvalidArgument("the uploaded archive has an unsafe path: " + name);
    }
    if (archive_entry_hardlink(entry) != nullptr) {
      return InvalidArgument("the uploaded archive has a hard link (" + name +
                             "); Slipway does not unpack hard links");
    }
    std::string full = dest + "/" + name;
    archive_entry_set_pathname(entry, full.c_str());
    int type = archive_entry_filetype(entry);
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) continue;
    if (archive_write_header(out.get(), entry) != ARCHIVE_OK) {
      return InvalidArgument("cannot unpack " + name + ": " + archive_error_string(out.get()));
    }
    const void* block;
    size_t size;
    la_int64_t offset;
    while ((r = archive_read_data_block(in.get(), &block, &size, &offset)) == ARCHIVE_OK) {
      total += size;
      if (total > max_bytes) {
        return ResourceExhausted("the upload unpacks to more than " +
                                 std::to_string(max_bytes >> 20) + " MiB");
      }
      if (archive_write_data_block(out.get(), block, size, offset) != ARCHIVE_OK) {
        int e = archive_errno(out.get());
        if (e == ENOSPC) return ResourceExhausted("disk full while unpacking into " + dest);
        return Internal("cannot unpack " + name + ": " + archive_error_string(out.get()));
      }
    }
    if (r != ARCHIVE_EOF) {
      return InvalidArgument("the uploaded archive is corrupt at " + name + ": " +
                             archive_error_string(in.get()));
    }
    if (archive_write_finish_entry(out.get()) != ARCHIVE_OK) {
      return Internal("cannot finish " + name + ": " + archive_error_string(out.get()));
    }
  }
  archive_write_close(out.get());
  return Status::Ok();
}

}  // namespace slipway
