#include "cli/edge_command.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "cli/cli_util.h"
#include "common/fs.h"
#include "proxy/edge.h"
#include "proxy/route_json.h"

namespace slipway {

namespace {

Result<std::shared_ptr<const RouteTable>> LoadRoutes(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto table = RouteTableFromJson(text);
  if (!table.ok()) return table.status().WithContext(path);
  return std::shared_ptr<const RouteTable>(std::make_shared<RouteTable>(std::move(*table)));
}

}  // namespace

int RunEdge(const EdgeCommandOptions& options) {
  const sigset_t signals = TakeTerminationSignals();

  if (options.routes_file.empty()) return PrintError(InvalidArgument("--routes FILE is required"));
  auto routes = LoadRoutes(options.routes_file);
  if (!routes.ok()) return PrintError(routes.status());
  EdgeOptions edge_options;
  if (Status st = ParseListenAddress(options.http, "0.0.0.0", &edge_options.listen_address,
                                     &edge_options.port, "--http");
      !st.ok()) {
    return PrintError(st);
  }
  edge_options.threads = std::max(1, options.threads);
  auto edge = Edge::Create(edge_options);
  if (!edge.ok()) return PrintError(edge.status());
  (*edge)->Swap(*routes);
  (*edge)->Start();
  std::printf("slipway edge: serving %zu route(s) on %s:%d\n", (*routes)->routes.size(),
              edge_options.listen_address.c_str(), (*edge)->port());
  std::fflush(stdout);
  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      auto fresh = LoadRoutes(options.routes_file);
      if (fresh.ok()) {
        (*edge)->Swap(*fresh);
        spdlog::info("routes reloaded from {}", options.routes_file);
      } else {
        spdlog::error("keeping the old routes: {}", fresh.status().message());
      }
      continue;
    }
    break;
  }
  (*edge)->Stop();
  return 0;
}

}  // namespace slipway
