#include "cli/server_command.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>

#include "addons/addons.h"
#include "api/api_server.h"
#include "certs/certs.h"
#include "cli/api_client.h"
#include "cli/cli_util.h"
#include "cli/edge_link.h"
#include "common/clock.h"
#include "common/fs.h"
#include "deploy/engine.h"
#include "proxy/edge.h"
#include "store/store.h"
#include "supervisor/supervisor.h"

namespace slipway {

namespace {

nlohmann::json MetricsJson(const std::vector<RouteMetrics>& metrics) {
  nlohmann::json routes = nlohmann::json::array();
  for (const auto& m : metrics) {
    routes.push_back({{"host", m.host},
                      {"path_prefix", m.path_prefix},
                      {"service", m.service_label},
                      {"requests", m.requests},
                      {"status_1xx", m.status_classes[0]},
                      {"status_2xx", m.status_classes[1]},
                      {"status_3xx", m.status_classes[2]},
                      {"status_4xx", m.status_classes[3]},
                      {"status_5xx", m.status_classes[4]},
                      {"bytes_in", m.bytes_in},
                      {"bytes_out", m.bytes_out},
                      {"p50_ms", m.p50_ms},
                      {"p95_ms", m.p95_ms},
                      {"p99_ms", m.p99_ms}});
  }
  return nlohmann::json{{"routes", routes}};
}

// Obtains and renews ACME certificates for the domains added with --acme, on a
// thread of its own: at start, when a domain is added, and twice a day.
class AcmeRenewer {
 public:
  // `installed` runs after each certificate obtained or renewed (the edge reloads).
  AcmeRenewer(AcmeClient& client, Store& store, std::function<void()> installed)
      : client_(client), store_(store), installed_(std::move(installed)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~AcmeRenewer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  // Obtains a certificate for `host` now. The domain hook runs before the domain is
  // stored, so the host is named here rather than looked up in the store.
  void Kick(const std::string& host) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.insert(host);
    }
    cv_.notify_all();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      std::set<std::string> hosts;
      hosts.swap(pending_);
      lock.unlock();
      if (auto domains = store_.ListDomains(0); domains.ok()) {
        for (const auto& d : *domains) {
          if (d.acme) hosts.insert(d.host);
        }
      }
      for (const auto& host : hosts) {
        auto cert = client_.EnsureCertificate(host);
        if (!cert.ok()) {
          spdlog::error("{}", cert.status().message());
        } else if (installed_) {
          installed_();
        }
      }
      lock.lock();
      cv_.wait_for(lock, std::chrono::hours(12), [this] { return stopping_ || !pending_.empty(); });
    }
  }

  AcmeClient& client_;
  Store& store_;
  std::function<void()> installed_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::set<std::string> pending_;  // hosts to obtain a certificate for at once
  std::thread thread_;
};

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
  const sigset_t signals = TakeTerminationSignals();

  std::string http_host, api_host, https_host;
  int http_port = 0, api_port = 0, https_port = -1;
  if (!options.https.empty()) {
    if (Status st =
            ParseListenAddress(options.https, "0.0.0.0", &https_host, &https_port, "--https");
        !st.ok()) {
      return PrintError(st);
    }
  }
  if (options.redirect_https && options.https.empty()) {
    return PrintError(
        InvalidArgument("--redirect-https needs an HTTPS listener: add --https :8443"));
  }
  if (Status st = ParseListenAddress(options.http, "0.0.0.0", &http_host, &http_port, "--http");
      !st.ok()) {
    return PrintError(st);
  }
  if (Status st = ParseListenAddress(options.api, "127.0.0.1", &api_host, &api_port, "--api");
      !st.ok()) {
    return PrintError(st);
  }

  std::string home = SlipwayHome();
  if (Status st = MakeDirs(home, 0700); !st.ok()) {
    return PrintError(st.WithContext("cannot create the data dir (set SLIPWAY_HOME)"));
  }
  auto token = LoadOrCreateToken(home);
  if (!token.ok()) return PrintError(token.status());
  // The key that seals variables: refused (and nothing started) when others may read it.
  auto secrets = SecretBox::LoadOrCreate(home);
  if (!secrets.ok()) return PrintError(secrets.status());

  RealClock clock;
  auto store = Store::Open(home + "/state.db", clock);
  if (!store.ok()) return PrintError(store.status());

  // Certificates: this process adds user certificates and obtains ACME ones into
  // <home>/certs; the edge serves them (and issues local-CA leaves) from the same dir.
  CertStoreOptions cert_options;
  cert_options.dir = home + "/certs";
  auto certs = CertStore::Open(cert_options);
  if (!certs.ok()) return PrintError(certs.status());

  // The data plane: the edge runs in a process of its own, found again (or replaced by
  // a newer binary's) when this server starts, and left running on SIGTERM.
  EdgeLinkOptions link_options;
  link_options.home = home;
  link_options.exe = SelfExe();
  link_options.http_address = http_host;
  link_options.http_port = http_port;
  if (https_port >= 0) {
    link_options.https_address = https_host;
    link_options.https_port = https_port;
  }
  link_options.threads = std::max(1, options.edge_threads);
  link_options.access_log = options.access_log;
  auto link = EdgeLink::Start(link_options);
  if (!link.ok()) return PrintError(link.status());
  EdgeLink* edge = link->get();

  // ACME answers are published to the edge before the CA is asked to check them.
  ChallengeStore challenges;
  challenges.SetListener(
      [edge](const std::string& token, const std::optional<std::string>& key_authorization) {
        if (Status st = edge->SetChallenge(token, key_authorization); !st.ok()) {
          spdlog::error("ACME challenge {}: {}", token, st.message());
        }
      });
  std::unique_ptr<AcmeClient> acme;
  if (!options.acme_directory.empty()) {
    AcmeOptions acme_options;
    acme_options.directory_url = options.acme_directory;
    acme_options.email = options.acme_email;
    acme_options.ca_bundle = options.acme_ca_bundle;
    auto client = AcmeClient::Create(acme_options, **certs, challenges);
    if (!client.ok()) return PrintError(client.status());
    acme = std::move(*client);
  }

  Supervisor supervisor(SelfExe(), clock);
  // Add-on servers (PostgreSQL, Redis) come up before the apps that need them.
  AddonOptions addon_options;
  addon_options.home = home;
  addon_options.secrets = *secrets;
  auto addons = AddonManager::Create(**store, supervisor, clock, addon_options);
  if (!addons.ok()) return PrintError(addons.status());
  if (Status st = (*addons)->Start(); !st.ok()) {
    spdlog::error("starting the add-on servers: {}", st.message());
  }

  EngineOptions engine_options;
  engine_options.home = home;
  engine_options.edge_port = edge->http_port();
  engine_options.redirect_to_https = options.redirect_https;
  engine_options.edge_stats = [edge]() { return edge->Stats(); };
  engine_options.secrets = *secrets;
  engine_options.addons = addons->get();
  auto engine = DeployEngine::Create(
      **store, supervisor, clock,
      [edge](std::shared_ptr<const RouteTable> table) {
        return edge->PublishRoutes(std::move(table));
      },
      engine_options);
  if (!engine.ok()) return PrintError(engine.status());
  if (Status st = (*engine)->Recover(); !st.ok()) {
    spdlog::error("recovering earlier deployments: {}", st.message());
  }

  ApiOptions api_options;
  api_options.address = api_host;
  api_options.port = api_port;
  api_options.token = *token;
  api_options.home = home;
  api_options.slipway_exe = SelfExe();  // what the git repositories' hooks run
  auto api = ApiServer::Create(api_options, **store, **engine, addons->get());
  if (!api.ok()) {
    (*engine)->Shutdown(false);
    (*addons)->Shutdown(false);
    return PrintError(api.status());
  }
  std::unique_ptr<AcmeRenewer> renewer;
  if (acme) {
    renewer = std::make_unique<AcmeRenewer>(*acme, **store, [edge] {
      if (Status st = edge->ReloadCerts(); !st.ok()) {
        spdlog::error("the edge did not reload the new certificate: {}", st.message());
      }
    });
  }
  CertStore* cert_store = certs->get();
  AcmeRenewer* renewer_ptr = renewer.get();
  (*api)->SetDomainHook([cert_store, renewer_ptr, edge](const DomainRecord& d,
                                                        bool added) -> Status {
    if (!added) {
      if (cert_store->RemoveUserCertificate(d.host).ok()) {
        if (Status st = edge->ReloadCerts(); !st.ok()) {
          spdlog::error("the edge did not drop the certificate of {}: {}", d.host, st.message());
        }
      }
      return Status::Ok();
    }
    if (d.acme && renewer_ptr == nullptr) {
      return FailedPrecondition("--acme needs the server started with --acme-directory URL");
    }
    if (!d.cert_path.empty()) {
      RETURN_IF_ERROR(cert_store->AddUserCertificate(d.host, d.cert_path, d.key_path));
      RETURN_IF_ERROR(edge->ReloadCerts().WithContext(
          "the certificate for " + d.host + " is installed, but the edge did not load it"));
    }
    if (d.acme) renewer_ptr->Kick(d.host);
    return Status::Ok();
  });
  (*api)->AddInfoSource("metrics", [edge]() -> Result<nlohmann::json> {
    ASSIGN_OR_RETURN(EdgeStats stats, edge->Stats());
    return MetricsJson(stats.routes);
  });
  (*api)->AddInfoSource("certs", [edge] { return edge->Certs(); });
  (*api)->Start();

  std::printf("Slipway is running (data in %s)\n", home.c_str());
  std::printf("  control API  http://%s:%d\n", api_host.c_str(), (*api)->port());
  std::printf("  apps         http://<service>.<project>.localhost:%d\n", edge->http_port());
  if (edge->https_port() >= 0) {
    std::printf("  https        https://<service>.<project>.localhost:%d (local CA: %s)\n",
                edge->https_port(), (*certs)->CaCertificatePath().c_str());
  }
  std::printf("  edge         pid %d, log %s/logs/edge.log\n", static_cast<int>(edge->edge_pid()),
              home.c_str());
  std::printf(
      "Deploy an app with `slipway up` in its directory. Ctrl-C stops Slipway, its edge and its "
      "apps;\nSIGTERM stops this server only (the edge and the apps serve on for the next one).\n");
  std::fflush(stdout);

  int sig = 0;
  while (true) {
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGINT || sig == SIGTERM) break;
  }
  bool stop_apps = sig == SIGINT;
  spdlog::info("{}: stopping{}", sig == SIGINT ? "SIGINT" : "SIGTERM",
               stop_apps ? " Slipway, its edge and its apps"
                         : "; the edge and the apps keep running for the next start");
  (*api)->Stop();
  renewer.reset();
  (*engine)->Shutdown(stop_apps);
  (*addons)->Shutdown(stop_apps);
  if (stop_apps) {
    if (Status st = edge->StopEdge(); !st.ok()) spdlog::error("{}", st.message());
  }
  return 0;
}

}  // namespace slipway
