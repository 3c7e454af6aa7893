#pragma once

// EdgeLink: how `slipway server` (the control plane) drives the edge (the data plane),
// a `slipway edge --home` process of its own that outlives the server (DESIGN.md,
// "Process model").
//
// Start() finds the edge running for the data dir through its control socket
// (cli/edge_control.h) and
//   - uses it when it listens where the server is told to and runs the same binary with
//     the same settings;
//   - starts a new edge with --takeover when only the binary (or the thread count or
//     access log setting) differs: the new edge serves on the old one's listening
//     sockets, and the old one drains and exits (an upgrade without a refused
//     connection);
//   - stops it and starts a new one when it listens elsewhere (logged as a warning);
//   - starts one when none runs.
// A started edge is detached from the server (its own session and process group, stdio
// to <home>/logs/edge.log, not the server's child), so the server can stop, crash or be
// replaced while the edge serves on.
//
// While the link lives, a monitor thread restarts the edge when it dies (the new one
// serves its saved table at once and is sent the last table and the pending ACME
// challenges again). Requests reconnect (and restart a dead edge) when needed.
//
// Thread-safety: every method may be called from any thread; calls are serialized.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/status.h"
#include "deploy/engine.h"
#include "proxy/edge.h"

namespace slipway {

struct EdgeLinkOptions {
  std::string home;  // the data dir
  std::string exe;   // the slipway binary new edges run (this server's own)
  std::string http_address = "0.0.0.0";
  int http_port = 8080;
  std::string https_address;
  int https_port = -1;  // -1: no HTTPS listener
  int threads = 1;
  bool access_log = true;
  std::chrono::milliseconds request_timeout{10000};  // one request on the control socket
  std::chrono::milliseconds start_timeout{30000};    // a new edge until it answers
  std::chrono::milliseconds stop_timeout{40000};     // a stopped edge until it exits
  std::chrono::milliseconds monitor_interval{250};
};

class EdgeLink {
 public:
  // Errors: the edge cannot be started (its error from edge.log, e.g. "cannot listen on
  // 0.0.0.0:8080: address already in use (choose another with --http)"), or an edge runs
  // for the data dir but does not answer.
  static Result<std::unique_ptr<EdgeLink>> Start(const EdgeLinkOptions& options);
  // Stops the monitor and closes the connection; the edge keeps running.
  ~EdgeLink();
  EdgeLink(const EdgeLink&) = delete;
  EdgeLink& operator=(const EdgeLink&) = delete;

  int http_port() const;
  int https_port() const;  // -1 without HTTPS
  pid_t edge_pid() const;

  // The RouteSink: returns once the edge serves `table` (restarting the edge first if it
  // died), or kUnavailable / kDeadlineExceeded naming the edge and its log.
  Status PublishRoutes(std::shared_ptr<const RouteTable> table);
  Result<EdgeStats> Stats();
  // What GET /v1/certs shows: the edge's certificates.
  Result<nlohmann::json> Certs();
  // Publishes (or, with nullopt, withdraws) an ACME HTTP-01 answer; returns once the edge
  // serves it.
  Status SetChallenge(const std::string& token,
                      const std::optional<std::string>& key_authorization);
  // The edge re-reads user and ACME certificates from <home>/certs.
  Status ReloadCerts();
  // Stops the edge gracefully (it finishes what is in flight) and waits for it to exit
  // (killing it past stop_timeout). The monitor no longer restarts it.
  Status StopEdge();

 private:
  struct State;
  explicit EdgeLink(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace slipway
