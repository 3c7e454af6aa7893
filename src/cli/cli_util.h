#pragma once

// Small pieces every `slipway` command shares.

#include <signal.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace slipway {

// The last component of `dir` (made absolute): the project name of a directory without
// a config naming one.
std::string BaseName(const std::string& dir);

// The project a command acts on: `flag` (--project), else the config's name in `dir`.
Result<std::string> ResolveProject(const std::string& flag, const std::string& dir);

// True when `dir` holds something `slipway up` would deploy.
bool LooksLikeAppDir(const std::string& dir);

// "2026-11-21 23:31:53" (UTC) for unix millis; "-" for 0.
std::string FormatTime(int64_t unix_millis);

std::string FirstLine(const std::string& s);

// Prints rows as left-aligned columns, two spaces apart.
void PrintTable(const std::vector<std::vector<std::string>>& rows);

// Prints "error: <message>" to stderr; returns the exit code 1.
int PrintError(const Status& st);

// ":8080" -> default_host:8080, "8080" -> default_host:8080, "127.0.0.1:9000" as
// given. kInvalidArgument naming `flag` otherwise.
Status ParseListenAddress(const std::string& text, const std::string& default_host,
                          std::string* host, int* port, const char* flag);

// For a foreground daemon (server, edge): restores the default disposition of SIGINT,
// SIGTERM and SIGHUP (a shell starts background jobs with SIGINT ignored, and an
// ignored signal is discarded even while blocked), blocks them in this thread and every
// thread started after, ignores SIGPIPE, and returns the set for sigwait(). Call before
// starting any thread.
sigset_t TakeTerminationSignals();

}  // namespace slipway
