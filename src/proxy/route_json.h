#pragma once

// The routing table as JSON: how the control plane hands a table to an edge running as
// its own process (`slipway edge --routes FILE`), and how benchmarks describe theirs.
//
//   {"routes": [{"host": "api.demo.localhost", "service": "demo/api",
//                "path_prefix": "/", "balance": "round_robin",
//                "upstreams": [{"host": "127.0.0.1", "port": 9000}],
//                "static_root": "", "max_body_bytes": 0, "redirect_to_https": false}]}
//
// A static route (a non-empty "static_root") also has its rules:
//   "headers": [{"source": "/assets/(.*)", "headers": [["X-Frame-Options", "DENY"]]}],
//   "redirects": [{"source": "/old", "destination": "/new", "status": 308}],
//   "rewrites": [{"source": "/api/:p*", "destination": "http://api.demo.localhost:8080/:p*"}],
//   "clean_urls": false, "trailing_slash": "" | "add" | "remove", "spa_fallback": false
//
// Only "host" is required; every other key may be left out and takes the Route default
// ("service": the host, "path_prefix": "/", "balance": "round_robin" or
// "least_connections", "max_body_bytes": 0 = the edge's default, negative = no limit).
// Every Route field has a JSON key; keep these functions in step with edge.h.
//
// Also the metrics snapshot and the in-flight counts per replica as JSON, for the edge's
// control socket.

#include <string>
#include <vector>

#include "common/status.h"
#include "proxy/edge.h"

namespace slipway {

std::string RouteTableToJson(const RouteTable& table);
// kInvalidArgument naming the route index and field for malformed input.
Result<RouteTable> RouteTableFromJson(const std::string& json);

// {"routes": [{"host": ..., "path_prefix": ..., "service": ..., "requests": N,
//   "status": {"1xx": N, "2xx": N, "3xx": N, "4xx": N, "5xx": N}, "bytes_in": N,
//   "bytes_out": N, "latency_ms": {"p50": x, "p95": x, "p99": x,
//   "buckets": [[upper_ms, count], ...]}}]}
std::string RouteMetricsToJson(const std::vector<RouteMetrics>& metrics);
// The inverse (p50/p95/p99 and the buckets as sent). kInvalidArgument for malformed input.
Result<std::vector<RouteMetrics>> RouteMetricsFromJson(const std::string& json);

// {"upstreams": [{"address": "127.0.0.1", "port": 9000, "in_flight": 2}]}
std::string UpstreamLoadsToJson(const std::vector<UpstreamLoad>& loads);
Result<std::vector<UpstreamLoad>> UpstreamLoadsFromJson(const std::string& json);

}  // namespace slipway
