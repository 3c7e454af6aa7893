#pragma once

// `slipway server`: composes the store, supervisor, deploy engine and control API into
// the daemon (the control plane) and runs it in the foreground until a signal. The edge
// proxy (the data plane) is a `slipway edge` process of its own that the server finds
// or starts and then feeds (cli/edge_link.h).
//
// SIGINT (Ctrl-C) stops the apps and the edge with the daemon. SIGTERM (what a service
// manager or an upgrade sends) leaves the edge serving and the apps running under their
// shims: the next `slipway server` uses the edge (or hands its sockets to a new binary's
// edge) and re-adopts the apps.

#include <string>

namespace slipway {

struct ServerOptions {
  std::string http = ":8080";
  std::string https;  // "" : no HTTPS listener
  std::string api = "127.0.0.1:7788";
  int edge_threads = 1;
  bool redirect_https = false;  // plain HTTP requests to apps get 308 to https://
  std::string acme_directory;   // ACME server directory URL; "" : no ACME
  std::string acme_email;
  std::string acme_ca_bundle;  // PEM bundle trusted for the ACME server's HTTPS
  bool access_log = true;      // <home>/logs/access.log, one JSON line per request
};

int RunServer(const ServerOptions& options);

}  // namespace slipway
