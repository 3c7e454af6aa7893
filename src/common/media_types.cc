#include "common/media_types.h"

#include <array>
#include <cctype>

namespace slipway {

namespace {

struct MediaType {
  std::string_view extension;
  std::string_view type;
  bool compressible;
};

// Extensions in lowercase. The types are those of the IANA registry (and of nginx's
// mime.types where the registry has none, like image/x-icon).
constexpr std::array<MediaType, 60> kTypes{{
    {"html", "text/html; charset=utf-8", true},
    {"htm", "text/html; charset=utf-8", true},
    {"xhtml", "application/xhtml+xml", true},
    {"css", "text/css; charset=utf-8", true},
    {"js", "text/javascript; charset=utf-8", true},
    {"mjs", "text/javascript; charset=utf-8", true},
    {"cjs", "text/javascript; charset=utf-8", true},
    {"json", "application/json", true},
    {"map", "application/json", true},
    {"jsonld", "application/ld+json", true},
    {"webmanifest", "application/manifest+json", true},
    {"xml", "application/xml", true},
    {"rss", "application/rss+xml", true},
    {"atom", "application/atom+xml", true},
    {"txt", "text/plain; charset=utf-8", true},
    {"md", "text/markdown; charset=utf-8", true},
    {"csv", "text/csv; charset=utf-8", true},
    {"tsv", "text/tab-separated-values; charset=utf-8", true},
    {"ics", "text/calendar; charset=utf-8", true},
    {"vtt", "text/vtt; charset=utf-8", true},
    {"yaml", "application/yaml", true},
    {"yml", "application/yaml", true},
    {"toml", "application/toml", true},
    {"svg", "image/svg+xml", true},
    {"wasm", "application/wasm", true},
    {"ttf", "font/ttf", true},
    {"otf", "font/otf", true},
    {"eot", "application/vnd.ms-fontobject", true},
    {"ico", "image/x-icon", true},
    {"bmp", "image/bmp", true},
    {"pdf", "application/pdf", false},
    {"woff", "font/woff", false},
    {"woff2", "font/woff2", false},
    {"png", "image/png", false},
    {"apng", "image/apng", false},
    {"jpg", "image/jpeg", false},
    {"jpeg", "image/jpeg", false},
    {"gif", "image/gif", false},
    {"webp", "image/webp", false},
    {"avif", "image/avif", false},
    {"jxl", "image/jxl", false},
    {"heic", "image/heic", false},
    {"tif", "image/tiff", false},
    {"tiff", "image/tiff", false},
    {"mp4", "video/mp4", false},
    {"webm", "video/webm", false},
    {"mov", "video/quicktime", false},
    {"mp3", "audio/mpeg", false},
    {"m4a", "audio/mp4", false},
    {"wav", "audio/wav", false},
    {"ogg", "audio/ogg", false},
    {"opus", "audio/ogg", false},
    {"flac", "audio/flac", false},
    {"zip", "application/zip", false},
    {"gz", "application/gzip", false},
    {"br", "application/octet-stream", false},
    {"zst", "application/zstd", false},
    {"tar", "application/x-tar", false},
    {"glb", "model/gltf-binary", false},
    {"gltf", "model/gltf+json", true},
}};

const MediaType* Find(std::string_view path) {
  const auto slash = path.rfind('/');
  const auto name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == name.size()) return nullptr;
  const auto ext = name.substr(dot + 1);
  if (ext.size() > 16) return nullptr;
  char lower[16];
  for (size_t i = 0; i < ext.size(); ++i) {
    lower[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(ext[i])));
  }
  const std::string_view key(lower, ext.size());
  for (const MediaType& t : kTypes) {
    if (t.extension == key) return &t;
  }
  return nullptr;
}

}  // namespace

std::string_view ContentTypeFor(std::string_view path) {
  const MediaType* t = Find(path);
  return t == nullptr ? "application/octet-stream" : t->type;
}

bool IsCompressible(std::string_view path) {
  const MediaType* t = Find(path);
  return t != nullptr && t->compressible;
}

}  // namespace slipway
