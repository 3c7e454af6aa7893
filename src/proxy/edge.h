#pragma once

// Edge: the HTTP proxy every request to every app goes through.
//
// It owns a routing table (host -> replicas or static files) that the control plane
// replaces as a whole with Swap(); requests in flight keep the table they started
// with. Requests are streamed both ways (bodies are never buffered whole). Unknown
// hosts get a 404 page; a route with no healthy upstream gets a 502 page naming the
// service.
//
// Thread-safety: Swap() may be called from any thread while traffic flows; the hot
// path takes no lock (a request reads one atomic version number; each thread re-fetches
// the shared_ptr to the new table once per Swap).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace slipway {

struct Upstream {
  std::string host = "127.0.0.1";
  int port = 0;
};

struct Route {
  std::string host;                 // lowercase, no port: "api.bytomorrow.localhost"
  std::string service_label;        // for pages and logs: "bytomorrow/api"
  std::vector<Upstream> upstreams;  // round-robin; empty with no static_root -> 502
  std::string static_root;          // non-empty: serve files from this directory
};

struct RouteTable {
  std::vector<Route> routes;
};

struct EdgeOptions {
  std::string listen_address = "0.0.0.0";
  int port = 8080;  // 0: pick a free port (see Edge::port())
  int threads = 1;
  size_t max_header_bytes = 64 * 1024;
  std::chrono::seconds header_timeout{30};
  std::chrono::seconds idle_timeout{75};
  std::chrono::seconds upstream_connect_timeout{5};
  std::chrono::seconds upstream_response_timeout{300};
};

class Edge {
 public:
  // Binds the listener (SO_REUSEADDR; connections queue from here on). Errors:
  // kFailedPrecondition "cannot listen on 0.0.0.0:8080: address already in use (choose
  // another with --http)" (also permission denied / address not on this machine);
  // kInvalidArgument for an address that is not an IP or a port out of range.
  static Result<std::unique_ptr<Edge>> Create(const EdgeOptions& options);
  virtual ~Edge() = default;

  // Starts serving on the option's threads; returns at once. Once per Edge.
  virtual void Start() = 0;
  // Stops accepting, closes connections (in-flight requests are cut), joins threads and
  // releases the port. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
  virtual int port() const = 0;
  virtual void Swap(std::shared_ptr<const RouteTable> table) = 0;
};

}  // namespace slipway
