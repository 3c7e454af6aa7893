#include "cli/edge_command.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "certs/certs.h"
#include "cli/api_client.h"
#include "cli/cli_util.h"
#include "cli/edge_control.h"
#include "common/fs.h"
#include "common/subprocess.h"
#include "proxy/edge.h"
#include "proxy/route_json.h"

namespace slipway {

namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kTakeoverCallTimeout{10000};
// How long an old edge waits for the new one to confirm a takeover before serving on alone.
constexpr std::chrono::seconds kHandoverConfirmTimeout{60};
constexpr int kMaxControlConnections = 16;

// ---- the standalone mode ------------------------------------------------------------

Result<std::shared_ptr<const RouteTable>> LoadRoutes(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto table = RouteTableFromJson(text);
  if (!table.ok()) return table.status().WithContext(path);
  return std::shared_ptr<const RouteTable>(std::make_shared<RouteTable>(std::move(*table)));
}

int RunStandalone(const EdgeCommandOptions& options, const sigset_t& signals) {
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

// ---- the data plane -----------------------------------------------------------------

// The access log: one JSON line per request, appended by the edge's threads under a
// short lock into a buffer that is written (whole lines only, so two edges appending
// during a takeover never split each other's lines) once a second or at 64 KiB, and
// rotated at 64 MiB (one old file kept).
class AccessLogFile {
 public:
  explicit AccessLogFile(std::string path) : path_(std::move(path)) {
    file_ = std::fopen(path_.c_str(), "a");
    if (file_ == nullptr) spdlog::error("cannot open the access log {}", path_);
    flusher_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!stopping_) {
        cv_.wait_for(lock, std::chrono::seconds(1));
        FlushLocked();
      }
      FlushLocked();
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
    pending_ += line;
    if (pending_.size() >= (64u << 10)) FlushLocked();
  }

 private:
  void FlushLocked() {
    if (file_ == nullptr || pending_.empty()) {
      pending_.clear();
      return;
    }
    std::fwrite(pending_.data(), 1, pending_.size(), file_);
    std::fflush(file_);
    pending_.clear();
    if (std::ftell(file_) > (64L << 20)) {
      std::fclose(file_);
      std::rename(path_.c_str(), (path_ + ".1").c_str());
      file_ = std::fopen(path_.c_str(), "a");
    }
  }

  std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  FILE* file_ = nullptr;
  std::string pending_;
  bool stopping_ = false;
  std::thread flusher_;
};

json CertsJson(const CertStore& certs) {
  json list = json::array();
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
  return json{{"ca_path", certs.CaCertificatePath()},
              {"instructions", certs.TrustInstructions()},
              {"certificates", list}};
}

// True when the local CA may issue for `name`: *.localhost, and the hosts of the table
// served now (exact, or "*.x" for one more label).
bool LocalCaAllows(const RouteTable& table, std::string_view name) {
  if (name == "localhost" || (name.size() > 10 && name.substr(name.size() - 10) == ".localhost")) {
    return true;
  }
  for (const Route& r : table.routes) {
    if (r.host == name) return true;
    if (r.host.rfind("*.", 0) == 0) {
      std::string_view suffix = std::string_view(r.host).substr(1);  // ".example.com"
      auto dot = name.find('.');
      if (dot != std::string_view::npos && dot > 0 && name.substr(dot) == suffix) return true;
    }
  }
  return false;
}

class DataPlane {
 public:
  DataPlane(const EdgeCommandOptions& options, std::string home, const sigset_t& signals)
      : options_(options), home_(std::move(home)), signals_(signals) {}

  int Run();

 private:
  enum Exit { kNone = 0, kStop = 1, kHandedOver = 2 };

  Status Setup();
  Status CheckNoEdgeRuns();
  struct Handover {
    std::unique_ptr<ControlConnection> connection;
    pid_t old_pid = 0;
    std::vector<int> http;
    std::vector<int> https;
  };
  Result<std::optional<Handover>> RequestHandover();
  void LoadSavedRoutes();
  void Shutdown(Exit why);

  void RequestExit(Exit why) {
    int expected = kNone;
    if (exit_.compare_exchange_strong(expected, why)) pthread_kill(main_thread_, SIGUSR1);
  }

  // Control socket.
  void AcceptLoop();
  void ServeControl(int fd);
  json Handle(const json& request);
  json Hello();
  void ServeHandover(ControlConnection& connection);
  void StopControl();

  std::shared_ptr<const RouteTable> CurrentTable() {
    std::lock_guard<std::mutex> lock(table_mu_);
    return table_;
  }

  const EdgeCommandOptions options_;
  const std::string home_;
  const sigset_t signals_;
  pthread_t main_thread_ = pthread_self();
  std::atomic<int> exit_{kNone};

  EdgeAddress http_;
  EdgeAddress https_;
  std::mutex table_mu_;
  std::shared_ptr<const RouteTable> table_ = std::make_shared<RouteTable>();
  std::unique_ptr<CertStore> certs_;
  ChallengeStore challenges_;
  std::unique_ptr<AccessLogFile> access_log_;
  std::unique_ptr<Edge> edge_;
  std::atomic<bool> handing_over_{false};

  int listen_fd_ = -1;
  uint64_t socket_inode_ = 0;
  int wake_pipe_[2] = {-1, -1};
  std::thread accept_thread_;
  std::mutex conn_mu_;
  struct ControlThread {
    int fd;
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<ControlThread> connections_;
};

Status DataPlane::Setup() {
  RETURN_IF_ERROR(MakeDirs(home_, 0700));
  RETURN_IF_ERROR(MakeDirs(home_ + "/run", 0700));
  RETURN_IF_ERROR(MakeDirs(home_ + "/logs"));
  try {
    auto logger = spdlog::basic_logger_mt("edge", EdgeLogPath(home_));
    logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [edge %P] [%l] %v");
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
  } catch (const std::exception& e) {
    return Internal("cannot open the edge log " + EdgeLogPath(home_) + ": " + e.what());
  }
  std::string host;
  int port = 0;
  RETURN_IF_ERROR(ParseListenAddress(options_.http, "0.0.0.0", &host, &port, "--http"));
  http_ = EdgeAddress{host, port};
  if (!options_.https.empty()) {
    RETURN_IF_ERROR(ParseListenAddress(options_.https, "0.0.0.0", &host, &port, "--https"));
    https_ = EdgeAddress{host, port};
  }
  return Status::Ok();
}

Status DataPlane::CheckNoEdgeRuns() {
  auto connection = ControlConnection::Connect(EdgeSocketPath(home_));
  if (!connection.ok()) return Status::Ok();
  auto hello = (*connection)->Call(json{{"op", "hello"}}, kTakeoverCallTimeout);
  if (!hello.ok()) return Status::Ok();
  return FailedPrecondition("an edge already runs for " + home_ + " (pid " +
                            std::to_string(hello->value("pid", 0)) +
                            "): stop it, or start this one with --takeover to replace it");
}

Result<std::optional<DataPlane::Handover>> DataPlane::RequestHandover() {
  auto connection = ControlConnection::Connect(EdgeSocketPath(home_));
  if (!connection.ok()) {
    spdlog::info("no edge to take over from ({}); starting afresh", connection.status().message());
    return std::optional<Handover>();
  }
  ASSIGN_OR_RETURN(json hello, (*connection)->Call(json{{"op", "hello"}}, kTakeoverCallTimeout));
  const EdgeAddress old_http = EdgeAddressFromJson(hello.value("http", json()));
  const EdgeAddress old_https = EdgeAddressFromJson(hello.value("https", json()));
  const pid_t old_pid = hello.value("pid", 0);
  if (!EdgeAddressMatches(http_, old_http) || !EdgeAddressMatches(https_, old_https)) {
    return FailedPrecondition(
        "cannot take over from the edge (pid " + std::to_string(old_pid) +
        "): it listens on http " + DescribeEdgeAddress(old_http) + ", https " +
        DescribeEdgeAddress(old_https) + ", not http " + DescribeEdgeAddress(http_) + ", https " +
        DescribeEdgeAddress(https_) + "; stop it first, then start this edge without --takeover");
  }
  Handover handover;
  std::vector<int> fds;
  auto reply =
      (*connection)->Call(json{{"op", "handover"}, {"pid", getpid()}}, kTakeoverCallTimeout, &fds);
  if (!reply.ok()) {
    for (int fd : fds) ::close(fd);
    return reply.status();
  }
  const size_t http_count = reply->value("http", 0u);
  const size_t https_count = reply->value("https", 0u);
  if (fds.size() != http_count + https_count || http_count == 0 ||
      (https_count == 0) != (https_.port < 0)) {
    for (int fd : fds) ::close(fd);
    return Internal("the edge (pid " + std::to_string(old_pid) + ") handed over " +
                    std::to_string(fds.size()) + " socket(s), not the " +
                    std::to_string(http_count + https_count) + " it announced");
  }
  handover.http.assign(fds.begin(), fds.begin() + static_cast<long>(http_count));
  handover.https.assign(fds.begin() + static_cast<long>(http_count), fds.end());
  handover.connection = std::move(*connection);
  handover.old_pid = old_pid;
  return std::optional<Handover>(std::move(handover));
}

void DataPlane::LoadSavedRoutes() {
  const std::string path = EdgeRoutesPath(home_);
  if (!PathExists(path)) return;
  auto saved = LoadRoutes(path);
  if (!saved.ok()) {
    spdlog::error("not serving the saved routing table: {}", saved.status().message());
    return;
  }
  std::lock_guard<std::mutex> lock(table_mu_);
  table_ = *saved;
}

int DataPlane::Run() {
  if (Status st = Setup(); !st.ok()) return PrintError(st);
  if (!options_.takeover) {
    if (Status st = CheckNoEdgeRuns(); !st.ok()) {
      spdlog::error("{}", st.message());
      return PrintError(st);
    }
  }
  auto fail = [](const Status& st) {
    spdlog::error("{}", st.message());
    return PrintError(st);
  };

  CertStoreOptions cert_options;
  cert_options.dir = home_ + "/certs";
  cert_options.local_ca_allows = [this](std::string_view name) {
    return LocalCaAllows(*CurrentTable(), name);
  };
  auto certs = CertStore::Open(cert_options);
  if (!certs.ok()) return fail(certs.status());
  certs_ = std::move(*certs);
  LoadSavedRoutes();

  std::optional<Handover> handover;
  if (options_.takeover) {
    auto requested = RequestHandover();
    if (!requested.ok()) return fail(requested.status());
    handover = std::move(*requested);
  }

  EdgeOptions edge_options;
  edge_options.listen_address = http_.host;
  edge_options.port = http_.port;
  edge_options.threads = std::max(1, options_.threads);
  edge_options.acme = &challenges_;
  if (https_.port >= 0) {
    edge_options.https_address = https_.host;
    edge_options.https_port = https_.port;
    edge_options.tls = certs_.get();
  }
  if (handover) {
    edge_options.inherited_http_fds = std::move(handover->http);
    edge_options.inherited_https_fds = std::move(handover->https);
  }
  if (options_.access_log) {
    access_log_ = std::make_unique<AccessLogFile>(home_ + "/logs/access.log");
    AccessLogFile* log = access_log_.get();
    edge_options.access_log = [log](const AccessLogEntry& entry) { log->Write(entry); };
  }
  auto edge = Edge::Create(edge_options);
  if (!edge.ok()) return fail(edge.status());
  edge_ = std::move(*edge);
  http_.port = edge_->port();
  if (https_.port >= 0) https_.port = edge_->https_port();
  edge_->Swap(CurrentTable());
  edge_->Start();

  auto listening = ListenUnix(EdgeSocketPath(home_), &socket_inode_);
  if (!listening.ok()) {
    edge_->Stop();
    return fail(listening.status());
  }
  listen_fd_ = *listening;
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) {
    edge_->Stop();
    return fail(ErrnoStatus("pipe", errno));
  }
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  const pid_t me = getpid();
  if (Status st = WriteFileAtomic(
          EdgePidPath(home_),
          std::to_string(me) + " " + std::to_string(ProcessStartTime(me)) + "\n", 0600);
      !st.ok()) {
    spdlog::error("cannot write {}: {}", EdgePidPath(home_), st.message());
  }

  if (handover) {
    auto done = handover->connection->Call(json{{"op", "handover_done"}, {"pid", me}},
                                           kTakeoverCallTimeout);
    if (done.ok()) {
      spdlog::info("took the listeners over from the edge pid {}, which now drains",
                   handover->old_pid);
    } else {
      spdlog::error("took the listeners over from pid {}, but it did not confirm: {}",
                    handover->old_pid, done.status().message());
    }
    handover.reset();
  }
  const size_t routes = CurrentTable()->routes.size();
  spdlog::info("slipway edge serving {} route(s) on http {}{} (control {})", routes,
               DescribeEdgeAddress(http_),
               https_.port >= 0 ? ", https " + DescribeEdgeAddress(https_) : "",
               EdgeSocketPath(home_));
  std::printf("slipway edge: serving %zu route(s) on http %s%s (pid %d)\n", routes,
              DescribeEdgeAddress(http_).c_str(),
              https_.port >= 0 ? (", https " + DescribeEdgeAddress(https_)).c_str() : "",
              static_cast<int>(me));
  std::fflush(stdout);

  while (true) {
    int sig = 0;
    if (sigwait(&signals_, &sig) != 0) continue;
    if (sig == SIGHUP) {
      certs_->Reload();
      spdlog::info("SIGHUP: certificates re-read from {}", certs_->dir());
      continue;
    }
    if (sig == SIGUSR1 && exit_.load() == kNone) continue;
    if (sig != SIGUSR1) {
      spdlog::info("{}: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
      RequestExit(kStop);
    }
    break;
  }
  Shutdown(static_cast<Exit>(exit_.load()));
  return 0;
}

void DataPlane::Shutdown(Exit why) {
  edge_->Drain();
  const auto deadline = SteadyClock::now() + options_.drain_timeout;
  while (edge_->OpenConnections() > 0 && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const int left = edge_->OpenConnections();
  if (left > 0) {
    spdlog::warn("{} connection(s) still open after {}s of draining: closing them", left,
                 options_.drain_timeout.count());
  }
  edge_->Stop();
  StopControl();
  // The socket and pid file are ours to remove only if no new edge replaced them.
  struct stat st {};
  if (::stat(EdgeSocketPath(home_).c_str(), &st) == 0 && st.st_ino == socket_inode_) {
    ::unlink(EdgeSocketPath(home_).c_str());
  }
  if (auto pid_text = ReadFile(EdgePidPath(home_)); pid_text.ok()) {
    if (std::atoll(pid_text->c_str()) == getpid()) ::unlink(EdgePidPath(home_).c_str());
  }
  access_log_.reset();
  spdlog::info("edge stopped{}", why == kHandedOver ? " (handed over to a new edge)" : "");
}

// ---- the control socket ---------------------------------------------------------------

void DataPlane::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN) != 0) break;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(conn_mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
    if (static_cast<int>(connections_.size()) >= kMaxControlConnections) {
      spdlog::warn("control socket: too many connections; refusing one");
      ::close(fd);
      continue;
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    connections_.push_back(ControlThread{fd, std::thread([this, fd, done] {
                                           ServeControl(fd);
                                           done->store(true);
                                         }),
                                         done});
  }
  ::close(listen_fd_);
  listen_fd_ = -1;
}

void DataPlane::StopControl() {
  if (wake_pipe_[1] >= 0) {
    const char byte = 1;
    (void)!::write(wake_pipe_[1], &byte, 1);
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  std::list<ControlThread> connections;
  {
    std::lock_guard<std::mutex> lock(conn_mu_);
    for (auto& c : connections_) {
      if (!c.done->load()) ::shutdown(c.fd, SHUT_RDWR);
    }
    connections.swap(connections_);
  }
  for (auto& c : connections) c.thread.join();
  for (int& fd : wake_pipe_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

void DataPlane::ServeControl(int fd) {
  ControlConnection connection(fd);
  while (true) {
    auto line = connection.ReadLine(ControlConnection::Deadline::max());
    if (!line.ok()) {
      if (line.status().code() == StatusCode::kResourceExhausted) {
        (void)connection.Send(json{{"ok", false}, {"error", line.status().message()}}.dump(),
                              SteadyClock::now() + std::chrono::seconds(5));
      }
      return;
    }
    json request = json::parse(*line, nullptr, false);
    if (request.is_discarded() || !request.is_object() || !request.contains("op") ||
        !request["op"].is_string()) {
      if (!connection
               .Send(json{{"ok", false}, {"error", "expected a JSON object with an \"op\""}}.dump(),
                     SteadyClock::now() + std::chrono::seconds(5))
               .ok()) {
        return;
      }
      continue;
    }
    if (request["op"] == "handover") {
      ServeHandover(connection);
      continue;
    }
    json reply = Handle(request);
    if (!connection
             .Send(reply.dump(-1, ' ', false, json::error_handler_t::replace),
                   SteadyClock::now() + std::chrono::seconds(10))
             .ok()) {
      return;
    }
  }
}

json DataPlane::Hello() {
  json hello{{"ok", true},
             {"protocol", kEdgeProtocolVersion},
             {"pid", getpid()},
             {"exe", ExeIdentityToJson(ExeIdentityOf(getpid()))},
             {"home", home_},
             {"http", EdgeAddressToJson(http_)},
             {"https", EdgeAddressToJson(https_)},
             {"threads", std::max(1, options_.threads)},
             {"access_log", options_.access_log},
             {"routes", CurrentTable()->routes.size()},
             {"draining", exit_.load() != kNone}};
  return hello;
}

json DataPlane::Handle(const json& request) {
  const std::string op = request["op"].get<std::string>();
  auto error = [](const std::string& message) { return json{{"ok", false}, {"error", message}}; };
  auto string_field = [&request](const char* key) -> std::optional<std::string> {
    if (!request.contains(key) || !request[key].is_string()) return std::nullopt;
    return request[key].get<std::string>();
  };
  if (op == "hello") return Hello();
  if (op == "routes") {
    if (!request.contains("table") || !request["table"].is_object()) {
      return error("\"routes\" needs a \"table\" object");
    }
    auto table = RouteTableFromJson(request["table"].dump());
    if (!table.ok()) return error(table.status().message());
    auto shared = std::make_shared<const RouteTable>(std::move(*table));
    {
      std::lock_guard<std::mutex> lock(table_mu_);
      table_ = shared;
    }
    edge_->Swap(shared);
    if (Status st = WriteFileAtomic(EdgeRoutesPath(home_), RouteTableToJson(*shared), 0600);
        !st.ok()) {
      spdlog::error("serving the new routes, but cannot save them for a restart: {}", st.message());
    }
    return json{{"ok", true}, {"routes", shared->routes.size()}};
  }
  if (op == "challenge_set") {
    auto token = string_field("token");
    auto answer = string_field("key_authorization");
    if (!token || !answer)
      return error("\"challenge_set\" needs \"token\" and \"key_authorization\"");
    challenges_.Put(*token, *answer);
    return json{{"ok", true}};
  }
  if (op == "challenge_remove") {
    auto token = string_field("token");
    if (!token) return error("\"challenge_remove\" needs a \"token\"");
    challenges_.Remove(*token);
    return json{{"ok", true}};
  }
  if (op == "certs_reload") {
    certs_->Reload();
    return json{{"ok", true}};
  }
  if (op == "certs") return json{{"ok", true}, {"certs", CertsJson(*certs_)}};
  if (op == "metrics") {
    json routes = json::parse(RouteMetricsToJson(edge_->Metrics()), nullptr, false);
    json upstreams = json::parse(UpstreamLoadsToJson(edge_->UpstreamLoads()), nullptr, false);
    if (routes.is_discarded() || upstreams.is_discarded()) return error("cannot encode metrics");
    return json{{"ok", true}, {"routes", routes["routes"]}, {"upstreams", upstreams["upstreams"]}};
  }
  if (op == "stop") {
    spdlog::info("stop requested on the control socket");
    RequestExit(kStop);
    return json{{"ok", true}, {"pid", getpid()}};
  }
  if (op == "handover_done") return error("\"handover_done\" only follows \"handover\"");
  return error("unknown op \"" + op +
               "\" (known: hello, routes, challenge_set, challenge_remove, certs_reload, certs, "
               "metrics, handover, stop)");
}

void DataPlane::ServeHandover(ControlConnection& connection) {
  const auto send = [&connection](const json& reply, const std::vector<int>& fds = {}) {
    return connection.Send(reply.dump(), SteadyClock::now() + std::chrono::seconds(10), fds);
  };
  if (exit_.load() != kNone) {
    (void)send(json{{"ok", false}, {"error", "this edge is stopping"}});
    return;
  }
  if (handing_over_.exchange(true)) {
    (void)send(json{{"ok", false}, {"error", "another edge is taking over already"}});
    return;
  }
  auto fds = edge_->DuplicateListeners();
  if (!fds.ok()) {
    handing_over_ = false;
    (void)send(json{{"ok", false}, {"error", fds.status().message()}});
    return;
  }
  std::vector<int> all = fds->http;
  all.insert(all.end(), fds->https.begin(), fds->https.end());
  Status sent =
      send(json{{"ok", true}, {"http", fds->http.size()}, {"https", fds->https.size()}}, all);
  for (int fd : all) ::close(fd);
  if (!sent.ok()) {
    handing_over_ = false;
    spdlog::error("handing the listeners over failed: {}", sent.message());
    return;
  }
  spdlog::info("listening sockets handed to a new edge; waiting for it to serve");
  auto line = connection.ReadLine(SteadyClock::now() + kHandoverConfirmTimeout);
  json confirm = line.ok() ? json::parse(*line, nullptr, false) : json();
  if (!confirm.is_object() || confirm.value("op", "") != "handover_done") {
    handing_over_ = false;
    spdlog::warn("the new edge did not confirm the takeover ({}); serving on",
                 line.ok() ? *line : line.status().message());
    return;
  }
  spdlog::info("the edge pid {} serves now; draining and exiting", confirm.value("pid", 0));
  (void)send(json{{"ok", true}});
  RequestExit(kHandedOver);
}

}  // namespace

int RunEdge(const EdgeCommandOptions& options) {
  const sigset_t termination = TakeTerminationSignals();
  if (!options.routes_file.empty()) {
    if (!options.https.empty() || options.takeover) {
      return PrintError(InvalidArgument(
          "--routes serves a table file alone: --https and --takeover need --home instead"));
    }
    return RunStandalone(options, termination);
  }
  // SIGUSR1 wakes the main thread when a control request asks the edge to exit.
  sigset_t signals = termination;
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::string home = options.home.empty() ? SlipwayHome() : AbsolutePath(options.home);
  DataPlane plane(options, home, signals);
  return plane.Run();
}

}  // namespace slipway
