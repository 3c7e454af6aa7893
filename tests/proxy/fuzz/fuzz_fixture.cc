#include "fuzz_fixture.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace slipway::fuzz {

namespace fs = std::filesystem;

namespace {

void Write(const fs::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  if (!out) FuzzFail("cannot write fixture file " + path.string());
}

}  // namespace

void FuzzFail(std::string_view what) {
  std::fprintf(stderr, "slipway-fuzz: %.*s\n", static_cast<int>(what.size()), what.data());
  std::fflush(stderr);
  std::abort();
}

bool Skipped(std::string_view check) {
  static const std::string skip = [] {
    const char* env = std::getenv("SLIPWAY_FUZZ_SKIP");
    return "," + std::string(env != nullptr ? env : "") + ",";
  }();
  return skip.find("," + std::string(check) + ",") != std::string::npos;
}

// A target that crashes exits without running atexit handlers, leaving its site behind.
// Sites are named after their process, so the next run removes those of dead processes.
void RemoveStaleSites(const std::string& tmp) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(tmp, ec)) {
    const std::string name = entry.path().filename().string();
    static constexpr std::string_view kPrefix = "slipway-fuzz-site-";
    if (name.compare(0, kPrefix.size(), kPrefix) != 0) continue;
    const long pid = std::strtol(name.c_str() + kPrefix.size(), nullptr, 10);
    if (pid <= 0 || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code ignored;
    fs::remove_all(entry.path(), ignored);
  }
}

StaticSite MakeStaticSite() {
  const char* env = std::getenv("TMPDIR");
  const std::string tmp = env != nullptr && *env != '\0' ? env : "/tmp";
  RemoveStaleSites(tmp);
  std::string pattern = tmp + "/slipway-fuzz-site-" + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) FuzzFail("mkdtemp failed for " + pattern);
  StaticSite site;
  site.base = fs::canonical(pattern).string();
  site.root = site.base + "/root";
  site.outside = site.base + "/outside";
  std::error_code ec;
  for (const char* dir :
       {"root", "root/sub", "root/.well-known", "root/assets.example", "outside"}) {
    fs::create_directories(fs::path(site.base) / dir, ec);
    if (ec) FuzzFail("cannot create fixture dir " + site.base + "/" + dir);
  }
  const fs::path root(site.root);
  Write(root / "index.html", "<!doctype html><title>fuzz</title><p>home</p>\n");
  Write(root / "style.css", "body { color: #123; }\n");
  Write(root / "app.js", "console.log('fuzz');\n");
  Write(root / "sub/index.html", "<p>sub</p>\n");
  Write(root / "sub/page.txt", "page\n");
  Write(root / "assets.example/index.html", "<p>assets</p>\n");
  Write(root / ".well-known/security.txt", "Contact: mailto:security@example.com\n");
  Write(root / ".env", "DATABASE_URL=" + std::string(kDotfileSecret) + "\n");
  // Several relay-buffer lengths, so the file loop runs more than once.
  site.big_file = (root / "big.bin").string();
  Write(root / "big.bin", std::string(100 * 1024 + 17, 'b'));
  Write(fs::path(site.outside) / "secret.txt", std::string(kOutsideSecret) + "\n");
  fs::create_symlink("../outside/secret.txt", root / "leak", ec);
  if (!ec) fs::create_directory_symlink("../outside", root / "leakdir", ec);
  if (!ec) fs::create_symlink("loop", root / "loop", ec);
  if (!ec) fs::create_symlink("sub/page.txt", root / "inside-link", ec);
  if (ec) FuzzFail("cannot create fixture symlinks under " + site.root + ": " + ec.message());
  site.dir_named = "assets.example";
  return site;
}

void RemoveStaticSite(const StaticSite& site) {
  std::error_code ec;
  if (!site.base.empty()) fs::remove_all(site.base, ec);
}

}  // namespace slipway::fuzz
