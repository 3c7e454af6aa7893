#pragma once

// The routing table as JSON: how the control plane hands a table to an edge running as
// its own process (`slipway edge --routes FILE`), and how benchmarks describe theirs.
//
//   {"routes": [{"host": "api.demo.localhost", "service": "demo/api",
//                "upstreams": [{"host": "127.0.0.1", "port": 9000}],
//                "static_root": ""}]}
//
// Every Route field has a JSON key; keep the two functions in step with edge.h.

#include <string>

#include "common/status.h"
#include "proxy/edge.h"

namespace slipway {

std::string RouteTableToJson(const RouteTable& table);
// kInvalidArgument naming the route index and field for malformed input.
Result<RouteTable> RouteTableFromJson(const std::string& json);

}  // namespace slipway
