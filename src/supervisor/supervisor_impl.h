#pragma once

// Internals shared by the supervisor (server side) and the shim (replica side).

#include <cstddef>
#include <string>

namespace slipway::supervisor_impl {

// Files in a replica's run directory (see supervisor.h).
inline constexpr const char* kShimPidFile = "shim.pid";
inline constexpr const char* kAppPidFile = "app.pid";
inline constexpr const char* kExitFile = "exit";
// Written by the shim when it cannot start the app, so Start can say why.
inline constexpr const char* kShimErrorFile = "shim.error";

// A log file passing this size is renamed to "<log>.1" and a new one is started.
inline constexpr size_t kDefaultLogMaxBytes = 32u << 20;
// Longer output lines are split into several log lines.
inline constexpr size_t kMaxLogLineBytes = 16u << 10;

// The `/bin/sh -c` script that runs `command`: "exec <command>" when the command is a
// single simple command (so the app replaces the shell and gets its signals directly);
// the command unchanged when exec would break it (`cd x && y`, `A=1 y`, `exit 3`, ...).
std::string ShellScriptFor(const std::string& command);

}  // namespace slipway::supervisor_impl
