#pragma once

// `slipway server`: composes the store, edge, supervisor, deploy engine and control
// API into the daemon and runs it in the foreground until a signal.
//
// SIGINT (Ctrl-C) stops the apps with the daemon. SIGTERM (what a service manager
// or an upgrade sends) leaves the apps running under their shims: the next
// `slipway server` re-adopts them.

#include <string>

namespace slipway {

struct ServerOptions {
  std::string http = ":8080";
  std::string https;
  std::string api = "127.0.0.1:7788";
  int edge_threads = 1;
};

int RunServer(const ServerOptions& options);

}  // namespace slipway
