#pragma once

// Shared pieces of the proxy fuzz targets: a static site on disk with files the edge must
// never serve (a dot-file and a file outside the root reached through a symlink), and a
// way to fail a fuzz input with a message libFuzzer keeps next to the crash input.
//
// Thread-safety: MakeStaticSite() once, from LLVMFuzzerInitialize; FuzzFail from any thread.

#include <string>
#include <string_view>

namespace slipway::fuzz {

// Markers inside files that must never appear in anything the edge sends.
inline constexpr std::string_view kOutsideSecret = "SLIPWAY-FUZZ-OUTSIDE-SECRET";
inline constexpr std::string_view kDotfileSecret = "SLIPWAY-FUZZ-DOTFILE-SECRET";

struct StaticSite {
  std::string base;       // temp dir owning everything below; removed by RemoveStaticSite
  std::string root;       // the static root (canonical)
  std::string outside;    // a directory next to the root holding the outside secret
  std::string big_file;   // "/big.bin" under the root: larger than the edge's relay buffer
  std::string dir_named;  // a directory under the root whose name looks like a host
};

// Creates under $TMPDIR (or /tmp), named after this process (stale ones of dead processes
// are removed first): root/{index.html, style.css, app.js, big.bin,
// sub/index.html, sub/page.txt, assets.example/index.html, .env (dot secret),
// .well-known/security.txt, leak -> ../outside/secret.txt, leakdir -> ../outside,
// loop -> loop}, outside/secret.txt. Aborts when the filesystem refuses.
StaticSite MakeStaticSite();
void RemoveStaticSite(const StaticSite& site);

// Prints "slipway-fuzz: <what>" to stderr and aborts, so libFuzzer records the input.
[[noreturn]] void FuzzFail(std::string_view what);

// True when SLIPWAY_FUZZ_SKIP (a comma-separated list) names `check`: a way to keep
// exploring past a failure already reported and not fixed yet. The suite never sets it.
bool Skipped(std::string_view check);

}  // namespace slipway::fuzz
