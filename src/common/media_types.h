#pragma once

// Media types of static files by extension, and which of them are worth compressing:
// one table for the edge (Content-Type, which files may have precompressed variants) and
// the builder (which files it precompresses).
//
// Thread-safety: pure functions.

#include <string_view>

namespace slipway {

// "text/css; charset=utf-8" for "a/b.css" (the extension after the last '.' of the last
// segment, case-insensitive); "application/octet-stream" when unknown or absent.
std::string_view ContentTypeFor(std::string_view path);

// True for text-like types that compress well (HTML, CSS, JavaScript, JSON, source maps,
// SVG, XML, plain text, WebAssembly, fonts other than WOFF/WOFF2, ...); false for
// already-compressed formats (images other than SVG, WOFF2, archives, audio, video) and
// unknown extensions.
bool IsCompressible(std::string_view path);

}  // namespace slipway
