#include "cli/server_command.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

#include "api/api_server.h"
#include "cli/api_client.h"
#include "cli/listen_address.h"
#include "common/clock.h"
#include "common/fs.h"
#include "deploy/engine.h"
#include "proxy/edge.h"
#include "store/store.h"
#include "supervisor/supervisor.h"

namespace slipway {

namespace {

int Fail(const Status& st) {
  std::fprintf(stderr, "error: %s\n", st.message().c_str());
  return 1;
}

std::string SelfExe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "slipway";
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

int RunServer(const ServerOptions& options) {
  // Signals are taken synchronously by this thread; every thread started below
  // inherits the mask, and children reset it.
  // A shell starts background jobs with SIGINT ignored; an ignored signal is discarded
  // even while blocked, so the defaults are restored for sigwait() to see it.
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, SIG_DFL);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (!options.https.empty()) {
    return Fail(
        FailedPrecondition("--https is not available in this version yet; "
                           "serve HTTP with --http"));
  }
  std::string http_host, api_host;
  int http_port = 0, api_port = 0;
  if (Status st = ParseListenAddress(options.http, "0.0.0.0", &http_host, &http_port, "--http");
      !st.ok()) {
    return Fail(st);
  }
  if (Status st = ParseListenAddress(options.api, "127.0.0.1", &api_host, &api_port, "--api");
      !st.ok()) {
    return Fail(st);
  }

  std::string home = SlipwayHome();
  if (Status st = MakeDirs(home, 0700); !st.ok()) {
    return Fail(st.WithContext("cannot create the data dir (set SLIPWAY_HOME)"));
  }
  auto token = LoadOrCreateToken(home);
  if (!token.ok()) return Fail(token.status());

  RealClock clock;
  auto store = Store::Open(home + "/state.db", clock);
  if (!store.ok()) return Fail(store.status());

  EdgeOptions edge_options;
  edge_options.listen_address = http_host;
  edge_options.port = http_port;
  edge_options.threads = std::max(1, options.edge_threads);
  auto edge = Edge::Create(edge_options);
  if (!edge.ok()) return Fail(edge.status());
  (*edge)->Start();

  Supervisor supervisor(SelfExe(), clock);
  EngineOptions engine_options;
  engine_options.home = home;
  engine_options.edge_port = (*edge)->port();
  Edge* edge_ptr = edge->get();
  auto engine = DeployEngine::Create(
      **store, supervisor, clock,
      [edge_ptr](std::shared_ptr<const RouteTable> table) { edge_ptr->Swap(std::move(table)); },
      engine_options);
  if (!engine.ok()) return Fail(engine.status());
  if (Status st = (*engine)->Recover(); !st.ok()) {
    spdlog::error("recovering earlier deployments: {}", st.message());
  }

  ApiOptions api_options;
  api_options.address = api_host;
  api_options.port = api_port;
  api_options.token = *token;
  api_options.home = home;
  auto api = ApiServer::Create(api_options, **store, **engine);
  if (!api.ok()) {
    (*engine)->Shutdown(false);
    (*edge)->Stop();
    return Fail(api.status());
  }
  (*api)->Start();

  std::printf("Slipway is running (data in %s)\n", home.c_str());
  std::printf("  control API  http://%s:%d\n", api_host.c_str(), (*api)->port());
  std::printf("  apps         http://<service>.<project>.localhost:%d\n", (*edge)->port());
  std::printf(
      "Deploy an app with `slipway up` in its directory. Ctrl-C stops Slipway and its apps.\n");
  std::fflush(stdout);

  int sig = 0;
  while (true) {
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGINT || sig == SIGTERM) break;
  }
  bool stop_apps = sig == SIGINT;
  spdlog::info("{}: stopping{}", sig == SIGINT ? "SIGINT" : "SIGTERM",
               stop_apps ? " Slipway and its apps" : "; apps keep running for the next start");
  (*api)->Stop();
  (*engine)->Shutdown(stop_apps);
  (*edge)->Stop();
  return 0;
}

}  // namespace slipway
