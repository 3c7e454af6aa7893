#pragma once

// `slipway edge`: the edge proxy alone, serving a routing table read from a JSON file
// (proxy/route_json.h). Benchmarks run it this way; SIGHUP re-reads the file.

#include <string>

namespace slipway {

struct EdgeCommandOptions {
  std::string http = ":8080";
  std::string routes_file;
  int threads = 1;
};

int RunEdge(const EdgeCommandOptions& options);

}  // namespace slipway
