#include "cli/server_command.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "api/api_server.h"
#include "certs/certs.h"
#include "cli/api_client.h"
#include "cli/cli_util.h"
#include "common/clock.h"
#include "common/fs.h"
#include "deploy/engine.h"
#include "proxy/edge.h"
#include "store/store.h"
#include "supervisor/supervisor.h"

namespace slipway {

namespace {

// The access log: one JSON line per request, appended by the edge's threads under a
// short lock, flushed once a second and rotated at 64 MiB (one old file kept).
class AccessLogFile {
 public:
  explicit AccessLogFile(std::string path) : path_(std::move(path)) {
    file_ = std::fopen(path_.c_str(), "a");
    flusher_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!stopping_) {
        cv_.wait_for(lock, std::chrono::seconds(1));
        if (file_ != nullptr) std::fflush(file_);
      }
    });
  }
  ~AccessLogFile() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    flusher_.join();
    if (file_ != nullptr) std::fclose(file_);
  }

  void Write(const AccessLogEntry& entry) {
    std::string line = FormatAccessLogLine(entry);
    line.push_back('\n');
    std::lock_guard<std::mutex> lock(mu_);
    if (file_ == nullptr) return;
    std::fwrite(line.data(), 1, line.size(), file_);
    if (std::ftell(file_) > (64L << 20)) {
      std::fclose(file_);
      std::rename(path_.c_str(), (path_ + ".1").c_str());
      file_ = std::fopen(path_.c_str(), "a");
    }
  }

 private:
  std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  FILE* file_ = nullptr;
  bool stopping_ = false;
  std::thread flusher_;
};

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

nlohmann::json CertsJson(const CertStore& certs) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : certs.List()) {
    auto expires =
        std::chrono::duration_cast<std::chrono::milliseconds>(c.not_after.time_since_epoch())
            .count();
    list.push_back({{"name", c.name},
                    {"source", CertSourceName(c.source)},
                    {"issuer", c.issuer},
                    {"expires_at", expires},
                    {"cert_path", c.cert_path}});
  }
  return nlohmann::json{{"ca_path", certs.CaCertificatePath()},
                        {"instructions", certs.TrustInstructions()},
                        {"certificates", list}};
}

// Obtains and renews ACME certificates for the domains added with --acme, on a
// thread of its own: at start, when a domain is added, and twice a day.
class AcmeRenewer {
 public:
  AcmeRenewer(AcmeClient& client, Store& store) : client_(client), store_(store) {
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
  void Kick() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      kicked_ = true;
    }
    cv_.notify_all();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      lock.unlock();
      if (auto domains = store_.ListDomains(0); domains.ok()) {
        for (const auto& d : *domains) {
          if (!d.acme) continue;
          auto cert = client_.EnsureCertificate(d.host);
          if (!cert.ok()) {
            spdlog::error("{}", cert.status().message());
          }
        }
      }
      lock.lock();
      cv_.wait_for(lock, std::chrono::hours(12), [this] { return stopping_ || kicked_; });
      kicked_ = false;
    }
  }

  AcmeClient& client_;
  Store& store_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool kicked_ = false;
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

  RealClock clock;
  auto store = Store::Open(home + "/state.db", clock);
  if (!store.ok()) return PrintError(store.status());

  // Certificates: the local CA issues for *.localhost and the configured domains only,
  // so a client cannot make it sign any name it sends.
  Store* store_ptr = store->get();
  CertStoreOptions cert_options;
  cert_options.dir = home + "/certs";
  cert_options.local_ca_allows = [store_ptr](std::string_view name) {
    if (name == "localhost" ||
        (name.size() > 10 && name.substr(name.size() - 10) == ".localhost")) {
      return true;
    }
    auto domains = store_ptr->ListDomains(0);
    if (!domains.ok()) return false;
    for (const auto& d : *domains) {
      if (d.host == name) return true;
      if (d.host.rfind("*.", 0) == 0) {
        std::string_view suffix = std::string_view(d.host).substr(1);  // ".example.com"
        auto dot = name.find('.');
        if (dot != std::string_view::npos && name.substr(dot) == suffix) return true;
      }
    }
    return false;
  };
  auto certs = CertStore::Open(cert_options);
  if (!certs.ok()) return PrintError(certs.status());
  ChallengeStore challenges;
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

  std::unique_ptr<AccessLogFile> access_log;
  if (options.access_log) {
    if (Status st = MakeDirs(home + "/logs"); !st.ok()) return PrintError(st);
    access_log = std::make_unique<AccessLogFile>(home + "/logs/access.log");
  }

  EdgeOptions edge_options;
  edge_options.listen_address = http_host;
  edge_options.port = http_port;
  edge_options.threads = std::max(1, options.edge_threads);
  edge_options.acme = &challenges;
  if (https_port >= 0) {
    edge_options.https_address = https_host;
    edge_options.https_port = https_port;
    edge_options.tls = certs->get();
  }
  if (access_log) {
    AccessLogFile* log = access_log.get();
    edge_options.access_log = [log](const AccessLogEntry& entry) { log->Write(entry); };
  }
  auto edge = Edge::Create(edge_options);
  if (!edge.ok()) return PrintError(edge.status());
  (*edge)->Start();

  Supervisor supervisor(SelfExe(), clock);
  EngineOptions engine_options;
  engine_options.home = home;
  engine_options.edge_port = (*edge)->port();
  engine_options.redirect_to_https = options.redirect_https;
  Edge* edge_ptr = edge->get();
  engine_options.edge_stats = [edge_ptr]() -> Result<EdgeStats> {
    return EdgeStats{edge_ptr->Metrics(), edge_ptr->UpstreamLoads()};
  };
  auto engine = DeployEngine::Create(
      **store, supervisor, clock,
      [edge_ptr](std::shared_ptr<const RouteTable> table) {
        edge_ptr->Swap(std::move(table));
        return Status::Ok();
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
  auto api = ApiServer::Create(api_options, **store, **engine);
  if (!api.ok()) {
    (*engine)->Shutdown(false);
    (*edge)->Stop();
    return PrintError(api.status());
  }
  std::unique_ptr<AcmeRenewer> renewer;
  if (acme) renewer = std::make_unique<AcmeRenewer>(*acme, **store);
  CertStore* cert_store = certs->get();
  AcmeRenewer* renewer_ptr = renewer.get();
  (*api)->SetDomainHook([cert_store, renewer_ptr](const DomainRecord& d, bool added) -> Status {
    if (!added) {
      (void)cert_store->RemoveUserCertificate(d.host);
      return Status::Ok();
    }
    if (d.acme && renewer_ptr == nullptr) {
      return FailedPrecondition("--acme needs the server started with --acme-directory URL");
    }
    if (!d.cert_path.empty()) {
      RETURN_IF_ERROR(cert_store->AddUserCertificate(d.host, d.cert_path, d.key_path));
    }
    if (d.acme) renewer_ptr->Kick();
    return Status::Ok();
  });
  (*api)->AddInfoSource("metrics", [edge_ptr] { return MetricsJson(edge_ptr->Metrics()); });
  (*api)->AddInfoSource("certs", [cert_store] { return CertsJson(*cert_store); });
  (*api)->Start();

  std::printf("Slipway is running (data in %s)\n", home.c_str());
  std::printf("  control API  http://%s:%d\n", api_host.c_str(), (*api)->port());
  std::printf("  apps         http://<service>.<project>.localhost:%d\n", (*edge)->port());
  if ((*edge)->https_port() >= 0) {
    std::printf("  https        https://<service>.<project>.localhost:%d (local CA: %s)\n",
                (*edge)->https_port(), (*certs)->CaCertificatePath().c_str());
  }
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
  renewer.reset();
  (*engine)->Shutdown(stop_apps);
  (*edge)->Stop();
  return 0;
}

}  // namespace slipway
