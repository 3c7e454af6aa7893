#pragma once

// `slipway edge`: the data plane, the edge proxy in a process of its own.
//
// Two modes:
//   slipway edge --routes FILE [--http ADDR] [--threads N]
//       Serves a routing table read from a JSON file (proxy/route_json.h); SIGHUP re-reads
//       it. Benchmarks run it this way.
//   slipway edge --home DIR --http ADDR [--https ADDR] [--threads N] [--no-access-log]
//                [--takeover]
//       What `slipway server` starts (and finds again after its own restart): serves the
//       table the server feeds over the control socket (cli/edge_control.h), keeps
//       serving it while no server runs, and starts with the table it last served
//       (<home>/run/edge-routes.json). It owns the listeners, the access log
//       (<home>/logs/access.log), SNI certificates over <home>/certs and the ACME
//       HTTP-01 answers; it logs to <home>/logs/edge.log and writes <home>/run/edge.pid.
//       --takeover: take the listening sockets over from the edge running for <home>
//       (an upgrade), which then drains and exits; no connection is refused meanwhile.
//       SIGTERM / SIGINT / the "stop" request: stop accepting, finish the requests in
//       flight (at most `drain_timeout`), exit. SIGHUP re-reads the certificates.

#include <chrono>
#include <string>

namespace slipway {

struct EdgeCommandOptions {
  std::string http = ":8080";
  std::string https;        // "": no HTTPS listener
  std::string routes_file;  // non-empty: the standalone mode
  std::string home;         // "": SLIPWAY_HOME or ~/.slipway
  int threads = 1;
  bool access_log = true;
  bool takeover = false;
  std::chrono::seconds drain_timeout{30};
};

int RunEdge(const EdgeCommandOptions& options);

}  // namespace slipway
