#include "cli/cli_util.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "common/clock.h"
#include "common/fs.h"
#include "config/config.h"

namespace slipway {

std::string BaseName(const std::string& dir) {
  std::filesystem::path p = std::filesystem::path(AbsolutePath(dir)).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "/x/app/" names "app"
  return p.filename().string();
}

// The project a command acts on: --project, else the config's name in `dir`.
Result<std::string> ResolveProject(const std::string& flag, const std::string& dir) {
  if (!flag.empty()) return flag;
  ASSIGN_OR_RETURN(ProjectConfig config, LoadProjectConfig(dir, BaseName(dir)));
  return config.name;
}

bool LooksLikeAppDir(const std::string& dir) {
  for (const char* f : {"slipway.toml", "Procfile", "requirements.txt", "pyproject.toml",
                        "package.json", "index.html"}) {
    if (PathExists(dir + "/" + f)) return true;
  }
  return false;
}

std::string FormatTime(int64_t unix_millis) {
  if (unix_millis <= 0) return "-";
  std::string t = FormatTimestamp(unix_millis);  // 2026-11-21T23:31:53.123Z
  return t.substr(0, 10) + " " + t.substr(11, 8);
}

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

int PrintError(const Status& st) {
  std::fprintf(stderr, "error: %s\n", st.message().c_str());
  return 1;
}

Status ParseListenAddress(const std::string& text, const std::string& default_host,
                          std::string* host, int* port, const char* flag) {
  std::string h = default_host;
  std::string p = text;
  auto colon = text.rfind(':');
  if (colon != std::string::npos) {
    h = colon == 0 ? default_host : text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  try {
    size_t used = 0;
    *port = std::stoi(p, &used);
    if (used != p.size() || *port < 0 || *port > 65535) throw std::invalid_argument(p);
  } catch (...) {
    return InvalidArgument(std::string(flag) + " \"" + text +
                           "\" is not an address: use HOST:PORT or :PORT");
  }
  *host = h;
  return Status::Ok();
}

sigset_t TakeTerminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    signal(sig, SIG_DFL);
    sigaddset(&signals, sig);
  }
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signals;
}

}  // namespace slipway
