#pragma once

// Edge: the HTTP(S) proxy every request to every app goes through.
//
// It owns a routing table that the control plane replaces as a whole with Swap();
// requests in flight keep the table they started with. A request is matched by host,
// then by the longest path prefix among that host's routes:
//   - "api.example.com" matches that host exactly (case-insensitive, port ignored);
//   - "*.example.com" matches exactly ONE more label, like a TLS wildcard certificate:
//     "a.example.com" but neither "example.com" nor "a.b.example.com". An exact host
//     wins over a wildcard; when none of an exact host's prefixes match, its wildcard's
//     routes are tried.
//   - path_prefix "/api" matches "/api", "/api/..." and "/api?..." but not "/apix"; a
//     trailing slash is ignored ("/api/" is "/api"). The path is forwarded unchanged; a
//     static route serves the path under its prefix from its root (its base path).
// Unknown hosts get a 404 page; a route with no reachable upstream a 502 page naming the
// service. Static routes (files, validators, ranges, precompressed variants, rules) are
// described in proxy/static_site.h and docs/static.md.
//
// HTTP/1.1 on both sides: client keep-alive, per-thread keep-alive pools to replicas,
// bodies streamed both ways (never buffered whole), chunked in and out, HTTP/1.0
// clients, WebSocket (any Upgrade) tunnels, Server-Sent Events forwarded as written.
// Requests with ambiguous framing (Content-Length with Transfer-Encoding, repeated or
// listed Content-Length, a Transfer-Encoding other than exactly "chunked", repeated
// Host) are answered 400 and the connection closed.
//
// Replicas: round-robin or least-connections per route. A replica that refuses (or
// times out) a connection is ejected on every thread for `eject_duration`, then tried
// again. A failed connect moves the request to the next replica (nothing was sent yet);
// an idempotent request without a body (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) whose
// upstream connection dies before any response byte is retried: on a fresh connection
// when the dead one came from the pool, else on another replica.
//
// Handing over to another process (an upgrade without a dropped connection): the old
// edge gives dups of its listening sockets (DuplicateListeners) to the new one, which is
// created with them (EdgeOptions::inherited_*) and starts accepting on the very same
// sockets, so connections waiting in their accept queues are taken by one process or the
// other, never lost. The old edge then Drain()s: it stops accepting, answers every further
// request with "Connection: close", closes keep-alive connections that stay idle past
// drain_idle_grace, and lets requests in flight finish; OpenConnections() says when it is
// done.
//
// Thread-safety: Swap() and Metrics() may be called from any thread while traffic flows;
// the hot path takes no lock (a request reads one atomic version number; each thread
// re-fetches the shared_ptr to the new table once per Swap).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace slipway {

class TlsContextProvider;   // proxy/tls.h
class AcmeChallengeSource;  // proxy/tls.h

struct Upstream {
  std::string host = "127.0.0.1";
  int port = 0;
};

enum class Balance {
  kRoundRobin,        // JSON "round_robin"
  kLeastConnections,  // JSON "least_connections": fewest requests in flight (all threads)
};

// Routing rules of a static route (docs/static.md), as vercel.json declares them. Sources
// are RoutePattern syntax (common/route_pattern.h), matched against the path under the
// route's path_prefix; destinations use what they captured.
struct StaticRedirect {
  std::string source;       // "/old-docs/:path*"
  std::string destination;  // "/docs/:path*" (inside the site) or "https://..."
  int status = 308;         // 301, 302, 303, 307 or 308
};
struct StaticRewrite {
  std::string source;       // "/blog/:slug"
  std::string destination;  // "/news/:slug" (a file of the site), or an absolute URL:
                            // proxied when its host is a route of this edge, else 502
};
struct StaticHeaders {
  std::string source;                                        // "/assets/(.*)"
  std::vector<std::pair<std::string, std::string>> headers;  // set on matching answers
};
enum class TrailingSlash {
  kLeave,   // JSON "": as requested (a directory without its slash redirects to it)
  kAdd,     // JSON "add": "/about" -> 308 "/about/" (not for names with an extension)
  kRemove,  // JSON "remove": "/about/" -> 308 "/about"
};

struct Route {
  std::string host;                 // lowercase, no port: "api.bytomorrow.localhost" or
                                    // "*.bytomorrow.localhost" (one label)
  std::string service_label;        // for pages and logs: "bytomorrow/api"
  std::vector<Upstream> upstreams;  // empty with no static_root -> 502
  // Non-empty: serve files from this directory. The path_prefix is the site's base path:
  // "/shop/assets/a.js" under path_prefix "/shop" is <static_root>/assets/a.js, and
  // "/shop" itself redirects to "/shop/".
  std::string static_root;
  std::string path_prefix = "/";  // longest prefix wins among the host's routes
  Balance balance = Balance::kRoundRobin;
  // Largest request body accepted, in bytes: 0 uses EdgeOptions::max_body_bytes, a
  // negative value means no limit. Larger bodies get 413 (at once for a Content-Length,
  // when the limit is passed for a chunked body).
  int64_t max_body_bytes = 0;
  // Plain-HTTP requests get "308 Permanent Redirect" to https://host[:https port]/path.
  // ACME HTTP-01 challenges are still answered on plain HTTP.
  bool redirect_to_https = false;
  // Static routes only (ignored with an empty static_root). Evaluated in Vercel's order:
  // headers (collected for the answer), clean_urls and trailing_slash redirects, then
  // redirects, the filesystem (clean_urls: "/about" is about.html), rewrites, the SPA
  // fallback, then 404.html or the edge's 404 page. A rule that cannot be compiled is
  // left out with a warning in the edge's log (config loading reports it first).
  std::vector<StaticHeaders> headers;
  std::vector<StaticRedirect> redirects;
  std::vector<StaticRewrite> rewrites;
  bool clean_urls = false;
  TrailingSlash trailing_slash = TrailingSlash::kLeave;
  // A path that matched nothing and whose last segment has no '.' gets /index.html with
  // 200 (a single-page app's client-side routes); "/missing.js" stays a 404.
  bool spa_fallback = false;
};

struct RouteTable {
  std::vector<Route> routes;
};

// One line of the access log: one finished request (also the edge's own answers).
struct AccessLogEntry {
  std::chrono::system_clock::time_point time;  // when the request's header was read
  std::string request_id;                      // as sent upstream and set on the response
  std::string client_ip;
  std::string method;
  std::string host;        // as the client sent it, without port
  std::string path;        // the request target, query included
  unsigned status = 0;     // 0: the client went away before an answer was sent
  uint64_t bytes_in = 0;   // request body bytes read from the client
  uint64_t bytes_out = 0;  // response body bytes written to the client
  double duration_ms = 0;  // header read to last byte written
  std::string upstream;    // "127.0.0.1:9000"; empty when no replica was involved
  std::string route;       // "host/path_prefix" key of the matched route; empty if none
  std::string service;     // the route's service label
  bool tls = false;
  std::string note;  // why a request failed, when it did ("upstream: end of stream")
};

// One JSON object per entry, no newline: {"time":"2024-05-01T12:00:00.123Z",
// "request_id":"...","client":"...","method":"GET","host":"...","path":"/",
// "status":200,"bytes_in":0,"bytes_out":12,"ms":0.8,"upstream":"...","route":"...",
// "service":"...","tls":false[,"note":"..."]}.
std::string FormatAccessLogLine(const AccessLogEntry& entry);

struct LatencyBucket {
  double upper_ms = 0;  // requests that took less than this (and more than the previous)
  uint64_t count = 0;
};

// Counters of one route since it first appeared in a table (kept across Swap() while
// a route with the same host and path_prefix stays in the table).
struct RouteMetrics {
  std::string host;
  std::string path_prefix;
  std::string service_label;
  uint64_t requests = 0;
  std::array<uint64_t, 5> status_classes{};  // [0] 1xx, [1] 2xx, ... [4] 5xx
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  // Estimated from fixed log-scale buckets (4 per doubling, so within 25%): the bucket's
  // upper bound.
  double p50_ms = 0;
  double p95_ms = 0;
  double p99_ms = 0;
  std::vector<LatencyBucket> latency;  // non-empty buckets only, ascending
};

// Requests being served by one replica address right now, across every table still in
// use (a replica taken out of the table stays listed while requests to it finish).
struct UpstreamLoad {
  std::string address;
  int port = 0;
  int in_flight = 0;
};

struct EdgeOptions {
  std::string listen_address = "0.0.0.0";
  int port = 8080;  // 0: pick a free port (see Edge::port())
  // HTTPS listener: off when https_port is -1; 0 picks a free port. Needs `tls`. An
  // empty https_address uses listen_address.
  std::string https_address;
  int https_port = -1;
  TlsContextProvider* tls = nullptr;  // not owned; outlives the Edge
  // Answers GET /.well-known/acme-challenge/<token> on plain HTTP for any host when set.
  AcmeChallengeSource* acme = nullptr;  // not owned; outlives the Edge
  int threads = 1;  // event loops, each with its own listening socket (SO_REUSEPORT)
  size_t max_header_bytes = 64 * 1024;
  int64_t max_body_bytes = 100LL << 20;  // default per route; negative: no limit
  // The whole request header must arrive within this, however slowly bytes trickle.
  std::chrono::seconds header_timeout{30};
  std::chrono::seconds idle_timeout{75};  // client silent between requests or mid-body
  std::chrono::seconds upstream_connect_timeout{5};
  std::chrono::seconds upstream_response_timeout{300};  // also between body reads
  // Keep-alive pool, per thread and replica.
  size_t upstream_max_idle = 64;
  std::chrono::seconds upstream_idle_timeout{30};
  std::chrono::milliseconds eject_duration{5000};
  // Called once per finished request from the edge's threads (must be thread-safe).
  // Unset: no entry is built.
  std::function<void(const AccessLogEntry&)> access_log;
  // Listening TCP sockets to serve on instead of binding new ones (a takeover, see
  // above): the Edge owns them from Create() on, also when it fails. Their bound address
  // and port replace listen_address/port (https_address/https_port); threads beyond
  // their number get new sockets bound to the same address with SO_REUSEPORT.
  std::vector<int> inherited_http_fds;
  std::vector<int> inherited_https_fds;
  // While draining, how long a keep-alive connection may wait for its next request.
  std::chrono::milliseconds drain_idle_grace{1000};
};

// Dups of an edge's listening sockets (close-on-exec), owned by the caller.
struct ListenerFds {
  std::vector<int> http;
  std::vector<int> https;
};

class Edge {
 public:
  // Binds the listeners, one socket per thread with SO_REUSEPORT (connections queue from
  // here on). Errors: kFailedPrecondition "cannot listen on 0.0.0.0:8080: address already
  // in use (choose another with --http)" (--https for the HTTPS listener; also permission
  // denied / address not on this machine); kInvalidArgument for an address that is not
  // an IP, a port out of range, or an HTTPS port without a TlsContextProvider.
  static Result<std::unique_ptr<Edge>> Create(const EdgeOptions& options);
  virtual ~Edge() = default;

  // Starts serving on the option's threads; returns at once. Once per Edge.
  virtual void Start() = 0;
  // Stops accepting, closes connections (in-flight requests are cut), joins threads and
  // releases the ports. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
  virtual int port() const = 0;
  virtual int https_port() const = 0;  // -1 when there is no HTTPS listener
  virtual void Swap(std::shared_ptr<const RouteTable> table) = 0;
  // A snapshot per route of the current table, in table order.
  virtual std::vector<RouteMetrics> Metrics() const = 0;
  // Every replica address the edge knows, with its in-flight count.
  virtual std::vector<UpstreamLoad> UpstreamLoads() const = 0;

  // Dups of the listening sockets, for a new edge process to serve on. Errors:
  // kFailedPrecondition before Start() or once draining or stopped; the errno of dup.
  virtual Result<ListenerFds> DuplicateListeners() = 0;
  // Stops accepting (closes this edge's listening sockets: one shared with another
  // process keeps listening there), answers with "Connection: close" from now on, and
  // closes keep-alive connections idle for drain_idle_grace. Requests in flight go on.
  // Idempotent; Stop() still has to be called (it cuts whatever is left).
  virtual void Drain() = 0;
  // Client connections accepted and not yet closed (in flight or idle).
  virtual int OpenConnections() const = 0;
};

}  // namespace slipway
