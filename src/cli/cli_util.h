#pragma once

// Small pieces every `slipway` command shares.

#include <signal.h>

#include <string>

#include "common/status.h"

namespace slipway {

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
