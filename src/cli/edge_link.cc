#include "cli/edge_link.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "cli/edge_control.h"
#include "common/fs.h"
#include "common/subprocess.h"
#include "proxy/route_json.h"

namespace slipway {

namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// What an edge said about itself.
struct EdgeInfo {
  pid_t pid = 0;
  unsigned long long start_time = 0;
  ExeIdentity exe;
  EdgeAddress http;
  EdgeAddress https;
  int threads = 1;
  bool access_log = true;
  bool draining = false;
};

Result<EdgeInfo> Hello(ControlConnection& connection, std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(json hello, connection.Call(json{{"op", "hello"}}, timeout));
  EdgeInfo info;
  info.pid = hello.value("pid", 0);
  if (info.pid <= 0) return Internal("the edge's hello names no pid");
  info.start_time = ProcessStartTime(info.pid);
  info.exe = ExeIdentityFromJson(hello.value("exe", json()));
  info.http = EdgeAddressFromJson(hello.value("http", json()));
  info.https = EdgeAddressFromJson(hello.value("https", json()));
  info.threads = hello.value("threads", 1);
  info.access_log = hello.value("access_log", true);
  info.draining = hello.value("draining", false);
  return info;
}

std::string LastLogLines(const std::string& path) {
  auto lines = TailLines(path, 5);
  if (!lines.ok() || lines->empty()) return "nothing in " + path;
  std::string out;
  for (const auto& line : *lines) {
    if (!out.empty()) out += " | ";
    out += line;
  }
  return out;
}

// True when `pid` is a live `slipway edge --home ...` process.
bool RunsAnEdge(pid_t pid) {
  if (!ProcessAlive(pid)) return false;
  auto cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  return cmdline.ok() && cmdline->find(std::string("\0edge\0--home\0", 13)) != std::string::npos;
}

}  // namespace

struct EdgeLink::State {
  explicit State(EdgeLinkOptions o) : options(std::move(o)) {
    wanted_http = EdgeAddress{options.http_address, options.http_port};
    wanted_https =
        EdgeAddress{options.https_address.empty() ? options.http_address : options.https_address,
                    options.https_port};
  }

  std::string SocketPath() const { return EdgeSocketPath(options.home); }
  std::string LogPath() const { return EdgeLogPath(options.home); }

  // The edge's identity as this server would start it.
  bool SameSettings(const EdgeInfo& info) const {
    return info.exe == ExeIdentityOf(getpid()) && info.threads == std::max(1, options.threads) &&
           info.access_log == options.access_log;
  }
  bool SameAddresses(const EdgeInfo& info) const {
    return EdgeAddressMatches(wanted_http, info.http) &&
           EdgeAddressMatches(wanted_https, info.https);
  }

  // Connects to whatever edge answers on the socket.
  Result<std::pair<std::unique_ptr<ControlConnection>, EdgeInfo>> Probe() {
    ASSIGN_OR_RETURN(auto connection, ControlConnection::Connect(SocketPath()));
    ASSIGN_OR_RETURN(EdgeInfo info, Hello(*connection, options.request_timeout));
    return std::make_pair(std::move(connection), info);
  }

  void Adopt(std::unique_ptr<ControlConnection> c, const EdgeInfo& info) {
    connection = std::move(c);
    edge = info;
    // Keep the ports the edge got (port 0 asked for once) for an edge started later.
    if (wanted_http.port == 0) wanted_http.port = info.http.port;
    if (wanted_https.port == 0) wanted_https.port = info.https.port;
  }

  // Starts an edge and waits until it answers as itself on the control socket.
  Status Spawn(bool takeover) {
    std::vector<std::string> args = {options.exe, "edge",
                                     "--home",    options.home,
                                     "--http",    DescribeEdgeAddress(wanted_http),
                                     "--threads", std::to_string(std::max(1, options.threads))};
    if (wanted_https.port >= 0) args.push_back("--https=" + DescribeEdgeAddress(wanted_https));
    if (!options.access_log) args.push_back("--no-access-log");
    if (takeover) args.push_back("--takeover");
    EnvMap env = CurrentEnvironment();
    env["SLIPWAY_HOME"] = options.home;
    RETURN_IF_ERROR(MakeDirs(options.home + "/logs"));
    DetachedSpec detached;
    detached.argv = args;
    detached.env = env;
    detached.output_path = LogPath();
    auto spawned = SpawnDetached(detached);
    if (!spawned.ok()) return spawned.status().WithContext("cannot start the edge");
    const pid_t pid = *spawned;
    const auto deadline = SteadyClock::now() + options.start_timeout;
    Status last = Unavailable("no answer yet");
    while (SteadyClock::now() < deadline) {
      if (!ProcessAlive(pid)) {
        return Unavailable("the edge (pid " + std::to_string(pid) +
                           ") exited at start: " + LastLogLines(LogPath()));
      }
      auto probe = Probe();
      if (probe.ok() && probe->second.pid == pid) {
        Adopt(std::move(probe->first), probe->second);
        spdlog::info("edge started (pid {}{}): http {}{}; log {}", pid,
                     takeover ? ", took the listeners over" : "", DescribeEdgeAddress(edge.http),
                     edge.https.port >= 0 ? ", https " + DescribeEdgeAddress(edge.https) : "",
                     LogPath());
        return Status::Ok();
      }
      if (!probe.ok()) last = probe.status();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid, SIGKILL);
    return DeadlineExceeded("the edge (pid " + std::to_string(pid) + ") did not answer on " +
                            SocketPath() + " within " +
                            std::to_string(options.start_timeout.count() / 1000) +
                            "s (last: " + last.message() + "); see " + LogPath());
  }

  // Asks the edge to stop and waits for it to exit (SIGKILL past stop_timeout).
  void StopAndWait(ControlConnection& c, const EdgeInfo& info) {
    auto stopped = c.Call(json{{"op", "stop"}}, options.request_timeout);
    if (!stopped.ok()) {
      spdlog::warn("the edge (pid {}) did not take the stop request ({}); sending SIGTERM",
                   info.pid, stopped.status().message());
      kill(info.pid, SIGTERM);
    }
    const auto deadline = SteadyClock::now() + options.stop_timeout;
    while (ProcessAlive(info.pid, info.start_time) && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (ProcessAlive(info.pid, info.start_time)) {
      spdlog::warn("the edge (pid {}) did not exit within {}s; killing it", info.pid,
                   options.stop_timeout.count() / 1000);
      kill(info.pid, SIGKILL);
      while (ProcessAlive(info.pid, info.start_time)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }

  // Makes `connection` usable: reconnects to the edge, or starts one when none runs. A
  // different edge process than the last one gets the last table and the challenges.
  Status EnsureConnected() {
    if (connection) return Status::Ok();
    auto probe = Probe();
    if (probe.ok() && !probe->second.draining) {
      if (!SameAddresses(probe->second)) {
        return FailedPrecondition(
            "the edge answering on " + SocketPath() + " (pid " + std::to_string(probe->second.pid) +
            ") listens on http " + DescribeEdgeAddress(probe->second.http) + ", not " +
            DescribeEdgeAddress(wanted_http) + "; restart slipway server to replace it");
      }
      Adopt(std::move(probe->first), probe->second);
    } else {
      if (edge.pid > 0 && ProcessAlive(edge.pid, edge.start_time)) {
        return Unavailable("the edge (pid " + std::to_string(edge.pid) + ") does not answer on " +
                           SocketPath() + (probe.ok() ? " (it is stopping)" : "") + "; see " +
                           LogPath());
      }
      RETURN_IF_ERROR(Spawn(false));
    }
    if (edge.pid != synced_pid) return Resync();
    return Status::Ok();
  }

  Status Resync() {
    if (table) {
      ASSIGN_OR_RETURN(json routes, RoutesRequest(*table));
      RETURN_IF_ERROR(CallOnce(routes).status());
    }
    for (const auto& [token, answer] : challenges) {
      RETURN_IF_ERROR(
          CallOnce(json{{"op", "challenge_set"}, {"token", token}, {"key_authorization", answer}})
              .status());
    }
    synced_pid = edge.pid;
    return Status::Ok();
  }

  static Result<json> RoutesRequest(const RouteTable& t) {
    json parsed = json::parse(RouteTableToJson(t), nullptr, false);
    if (parsed.is_discarded()) return Internal("cannot encode the routing table");
    return json{{"op", "routes"}, {"table", std::move(parsed)}};
  }

  Result<json> CallOnce(const json& request) {
    auto reply = connection->Call(request, options.request_timeout);
    if (!reply.ok() && reply.status().code() != StatusCode::kFailedPrecondition) {
      connection.reset();  // a broken or stuck connection is not used again
    }
    return reply;
  }

  // One request, reconnecting (or restarting a dead edge) once when the connection broke.
  Result<json> Call(const json& request) {
    Status last;
    for (int attempt = 0; attempt < 2; ++attempt) {
      Status ready = EnsureConnected();
      if (!ready.ok()) {
        last = ready;
        connection.reset();
        continue;
      }
      auto reply = CallOnce(request);
      if (reply.ok() || reply.status().code() == StatusCode::kFailedPrecondition) return reply;
      last = reply.status();
    }
    return Status(last.code(), "the edge (pid " + std::to_string(edge.pid) + ") did not answer \"" +
                                   request.value("op", "?") + "\": " + last.message() + "; see " +
                                   LogPath());
  }

  void MonitorLoop() {
    std::unique_lock<std::mutex> lock(mu);
    auto retry_at = SteadyClock::now();
    while (!stopping) {
      cv.wait_for(lock, options.monitor_interval);
      if (stopping || edge_stopped) continue;
      if (edge.pid <= 0 || ProcessAlive(edge.pid, edge.start_time)) continue;
      if (SteadyClock::now() < retry_at) continue;
      const pid_t gone = edge.pid;
      connection.reset();
      Status st = EnsureConnected();
      if (st.ok() && edge.pid != gone) {
        spdlog::warn("the edge (pid {}) was gone; edge pid {} serves the last routing table ({})",
                     gone, edge.pid,
                     table ? std::to_string(table->routes.size()) + " route(s)" : "its saved one");
      } else if (!st.ok()) {
        spdlog::error("the edge (pid {}) is gone and cannot be started again: {}", gone,
                      st.message());
        retry_at = SteadyClock::now() + std::chrono::seconds(2);
      }
    }
  }

  EdgeLinkOptions options;
  EdgeAddress wanted_http;
  EdgeAddress wanted_https;

  std::mutex mu;  // guards everything below; held across a request
  std::condition_variable cv;
  bool stopping = false;      // the link is being destroyed
  bool edge_stopped = false;  // StopEdge() ran: nothing restarts the edge
  std::unique_ptr<ControlConnection> connection;
  EdgeInfo edge;
  pid_t synced_pid = 0;  // the edge that has the table and challenges below
  std::shared_ptr<const RouteTable> table;
  std::map<std::string, std::string> challenges;
  std::thread monitor;
};

EdgeLink::EdgeLink(std::unique_ptr<State> state) : state_(std::move(state)) {}

EdgeLink::~EdgeLink() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stopping = true;
  }
  state_->cv.notify_all();
  if (state_->monitor.joinable()) state_->monitor.join();
}

Result<std::unique_ptr<EdgeLink>> EdgeLink::Start(const EdgeLinkOptions& options) {
  auto state = std::make_unique<State>(options);
  State& s = *state;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto probe = s.Probe();
    if (!probe.ok()) {
      // Nothing answers. An edge that is still starting (its server died meanwhile) gets
      // a moment; a live one that never answers is an error, not a second edge on the
      // same ports.
      auto pid_text = ReadFile(EdgePidPath(options.home));
      pid_t recorded = pid_text.ok() ? static_cast<pid_t>(std::atoll(pid_text->c_str())) : 0;
      if (recorded > 0 && RunsAnEdge(recorded)) {
        const auto deadline = SteadyClock::now() + std::chrono::seconds(5);
        while (!probe.ok() && ProcessAlive(recorded) && SteadyClock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          probe = s.Probe();
        }
        if (!probe.ok() && ProcessAlive(recorded)) {
          return FailedPrecondition("an edge (pid " + std::to_string(recorded) + ") runs for " +
                                    options.home + " but does not answer on " + s.SocketPath() +
                                    ": stop it (kill " + std::to_string(recorded) +
                                    ") and start slipway server again");
        }
      }
    }
    if (probe.ok() && probe->second.draining) {
      // An edge on its way out (stopping, or handing over to a newer one): wait for
      // whichever edge serves next.
      const pid_t old = probe->second.pid;
      const auto deadline = SteadyClock::now() + options.stop_timeout;
      while (probe.ok() && probe->second.pid == old && ProcessAlive(old) &&
             SteadyClock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        probe = s.Probe();
      }
    }
    if (!probe.ok()) {
      RETURN_IF_ERROR(s.Spawn(false));
    } else {
      auto [connection, info] = std::move(*probe);
      if (!s.SameAddresses(info)) {
        spdlog::warn(
            "the running edge (pid {}) listens on http {}, https {}; this server asks for http "
            "{}, https {}: stopping it and starting a new one (requests are refused meanwhile)",
            info.pid, DescribeEdgeAddress(info.http), DescribeEdgeAddress(info.https),
            DescribeEdgeAddress(s.wanted_http), DescribeEdgeAddress(s.wanted_https));
        s.StopAndWait(*connection, info);
        connection.reset();
        RETURN_IF_ERROR(s.Spawn(false));
      } else if (!s.SameSettings(info)) {
        const ExeIdentity mine = ExeIdentityOf(getpid());
        spdlog::info(
            "the running edge (pid {}) runs {} with {} thread(s), this server {} with {}: a new "
            "edge takes its listening sockets over",
            info.pid, info.exe.path, info.threads, mine.path, std::max(1, options.threads));
        connection.reset();
        RETURN_IF_ERROR(s.Spawn(true));
      } else {
        spdlog::info("using the running edge (pid {}): http {}{}", info.pid,
                     DescribeEdgeAddress(info.http),
                     info.https.port >= 0 ? ", https " + DescribeEdgeAddress(info.https) : "");
        s.Adopt(std::move(connection), info);
      }
    }
    // The edge serves what it has (its saved table); the engine sends the current one.
    s.synced_pid = s.edge.pid;
  }
  s.monitor = std::thread([&s] { s.MonitorLoop(); });
  return std::unique_ptr<EdgeLink>(new EdgeLink(std::move(state)));
}

int EdgeLink::http_port() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->edge.http.port;
}

int EdgeLink::https_port() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->edge.https.port;
}

pid_t EdgeLink::edge_pid() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->edge.pid;
}

Status EdgeLink::PublishRoutes(std::shared_ptr<const RouteTable> table) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (state_->edge_stopped) return FailedPrecondition("the edge was stopped");
  state_->table = table;
  ASSIGN_OR_RETURN(json request, State::RoutesRequest(*table));
  auto reply = state_->Call(request);
  if (!reply.ok()) return reply.status().WithContext("the new routing table is not served");
  return Status::Ok();
}

Result<EdgeStats> EdgeLink::Stats() {
  json reply;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    ASSIGN_OR_RETURN(reply, state_->Call(json{{"op", "metrics"}}));
  }
  EdgeStats stats;
  ASSIGN_OR_RETURN(
      stats.routes,
      RouteMetricsFromJson(json{{"routes", reply.value("routes", json::array())}}.dump()));
  ASSIGN_OR_RETURN(
      stats.upstreams,
      UpstreamLoadsFromJson(json{{"upstreams", reply.value("upstreams", json::array())}}.dump()));
  return stats;
}

Result<json> EdgeLink::Certs() {
  std::lock_guard<std::mutex> lock(state_->mu);
  ASSIGN_OR_RETURN(json reply, state_->Call(json{{"op", "certs"}}));
  return reply.value("certs", json::object());
}

Status EdgeLink::SetChallenge(const std::string& token,
                              const std::optional<std::string>& key_authorization) {
  std::lock_guard<std::mutex> lock(state_->mu);
  json request;
  if (key_authorization) {
    state_->challenges[token] = *key_authorization;
    request =
        json{{"op", "challenge_set"}, {"token", token}, {"key_authorization", *key_authorization}};
  } else {
    state_->challenges.erase(token);
    request = json{{"op", "challenge_remove"}, {"token", token}};
  }
  return state_->Call(request).status();
}

Status EdgeLink::ReloadCerts() {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->Call(json{{"op", "certs_reload"}}).status();
}

Status EdgeLink::StopEdge() {
  std::lock_guard<std::mutex> lock(state_->mu);
  State& s = *state_;
  s.edge_stopped = true;
  if (!s.connection) {
    auto probe = s.Probe();
    if (!probe.ok()) {
      if (s.edge.pid > 0 && ProcessAlive(s.edge.pid, s.edge.start_time)) {
        kill(s.edge.pid, SIGTERM);  // it stops as gracefully on SIGTERM
        const auto deadline = SteadyClock::now() + s.options.stop_timeout;
        while (ProcessAlive(s.edge.pid, s.edge.start_time) && SteadyClock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        if (ProcessAlive(s.edge.pid, s.edge.start_time)) kill(s.edge.pid, SIGKILL);
      }
      return Status::Ok();
    }
    s.Adopt(std::move(probe->first), probe->second);
  }
  spdlog::info("stopping the edge (pid {})", s.edge.pid);
  s.StopAndWait(*s.connection, s.edge);
  s.connection.reset();
  return Status::Ok();
}

}  // namespace slipway
