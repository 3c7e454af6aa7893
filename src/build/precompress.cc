#include <brotli/encode.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <string_view>

#include "build/builder.h"
#include "common/fs.h"
#include "common/media_types.h"

namespace slipway {

namespace {

namespace fs = std::filesystem;

// Brotli's best quality costs about a second per MiB: worth it for what browsers load on
// every visit, not for multi-megabyte data files, which get a faster setting.
constexpr uint64_t kBestQualityUpTo = 4ull << 20;

std::string Gzip(std::string_view in) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) return "";
  std::string out(deflateBound(&z, static_cast<uLong>(in.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : "";
}

std::string Brotli(std::string_view in, std::string_view name) {
  size_t size = BrotliEncoderMaxCompressedSize(in.size());
  if (size == 0) return "";
  std::string out(size, '\0');
  const bool font = name.ends_with(".ttf") || name.ends_with(".otf") || name.ends_with(".eot");
  const bool binary = font || name.ends_with(".wasm") || name.ends_with(".ico");
  const int quality = in.size() <= kBestQualityUpTo ? BROTLI_MAX_QUALITY : 9;
  if (!BrotliEncoderCompress(quality, BROTLI_DEFAULT_WINDOW,
                             font     ? BROTLI_MODE_FONT
                             : binary ? BROTLI_MODE_GENERIC
                                      : BROTLI_MODE_TEXT,
                             in.size(), reinterpret_cast<const uint8_t*>(in.data()), &size,
                             reinterpret_cast<uint8_t*>(out.data()))) {
    return "";
  }
  out.resize(size);
  return out;
}

// Writes `data` to `path` with the file's mtime, so the edge sees the variant as no
// older than the file it was made from.
Status WriteVariant(const std::string& path, const std::string& data, const struct stat& of) {
  RETURN_IF_ERROR(WriteFileAtomic(path, data, 0644));
  const struct timespec times[2] = {of.st_atim, of.st_mtim};
  if (utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) return ErrnoStatus(path, errno);
  return Status::Ok();
}

}  // namespace

Result<PrecompressSummary> PrecompressStaticSite(const std::string& root,
                                                 const std::function<bool()>& cancelled) {
  PrecompressSummary summary;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
  if (ec) return ErrnoStatus("cannot list " + root, ec.value());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return ErrnoStatus("cannot list " + root, ec.value());
    const fs::directory_entry& entry = *it;
    const std::string name = entry.path().filename().string();
    std::error_code type_ec;
    const auto status = entry.symlink_status(type_ec);
    if (fs::is_directory(status)) {
      // Dependencies and dot-directories are not served (dot-files never are).
      if (name == "node_modules" || name.front() == '.') it.disable_recursion_pending();
      continue;
    }
    if (!fs::is_regular_file(status) || name.front() == '.' || name.ends_with(".br") ||
        name.ends_with(".gz") || !IsCompressible(name)) {
      continue;
    }
    const std::string path = entry.path().string();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size < kPrecompressMinBytes || size > kPrecompressMaxBytes) continue;
    if (cancelled && cancelled()) return FailedPrecondition("build cancelled while precompressing");
    // A variant the build wrote itself (vite-plugin-compression and co) is kept.
    const bool have_br = PathExists(path + ".br");
    const bool have_gz = PathExists(path + ".gz");
    if (have_br && have_gz) continue;
    ASSIGN_OR_RETURN(std::string data, ReadFile(path));
    ++summary.files;
    summary.bytes += data.size();
    if (!have_br) {
      const std::string br = Brotli(data, name);
      if (!br.empty() && br.size() < data.size()) {
        RETURN_IF_ERROR(WriteVariant(path + ".br", br, st));
        ++summary.brotli;
        summary.brotli_bytes += br.size();
      } else {
        summary.brotli_bytes += data.size();
      }
    }
    if (!have_gz) {
      const std::string gz = Gzip(data);
      if (!gz.empty() && gz.size() < data.size()) {
        RETURN_IF_ERROR(WriteVariant(path + ".gz", gz, st));
        ++summary.gzip;
        summary.gzip_bytes += gz.size();
      } else {
        summary.gzip_bytes += data.size();
      }
    }
  }
  return summary;
}

}  // namespace slipway
