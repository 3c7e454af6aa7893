#pragma once

// The edge's control socket, shared by `slipway edge` (which serves it) and the server's
// EdgeLink (which feeds it): $HOME/run/edge.sock, a unix stream socket (0600).
//
// One JSON object per line each way; every request gets exactly one reply line,
// {"ok":true,...} or {"ok":false,"error":"<one actionable line>"}. Lines are bounded by
// kMaxControlLine. Requests ({"op": ...}):
//   hello                      -> pid, exe identity, home, http/https addresses and ports,
//                                 threads, access_log, routes (count), draining
//   routes {"table": {...}}    -> the RouteTable JSON of proxy/route_json.h; the reply
//                                 comes once the edge serves it (it is also saved to
//                                 $HOME/run/edge-routes.json, served at the next start)
//   challenge_set {"token", "key_authorization"}, challenge_remove {"token"}
//   certs_reload               -> re-reads user and ACME certificates from $HOME/certs
//   certs                      -> {"certs": what GET /v1/certs shows}
//   metrics                    -> {"routes": [RouteMetricsToJson], "upstreams": [...]}
//   handover                   -> {"http": N, "https": M} with N+M listening sockets passed
//                                 as SCM_RIGHTS on the reply (HTTP first); the new edge
//                                 then sends handover_done on the same connection, and
//                                 the old edge drains and exits
//   stop                       -> the edge stops accepting, finishes what is in flight
//                                 (bounded) and exits
//
// Thread-safety: a ControlConnection is used by one thread at a time.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace slipway {

constexpr size_t kMaxControlLine = 16u << 20;
constexpr int kEdgeProtocolVersion = 1;

std::string EdgeSocketPath(const std::string& home);  // <home>/run/edge.sock
std::string EdgePidPath(const std::string& home);     // <home>/run/edge.pid: "<pid> <start>"
std::string EdgeRoutesPath(const std::string& home);  // <home>/run/edge-routes.json
std::string EdgeLogPath(const std::string& home);     // <home>/logs/edge.log

// A listen host as addresses are compared: "" -> "0.0.0.0", "localhost" -> "127.0.0.1",
// "[::1]" -> "::1".
std::string NormalizeListenHost(const std::string& host);

// One listener of an edge: host and port; port -1: no such listener. As asked for, port
// 0 means "any".
struct EdgeAddress {
  std::string host;
  int port = -1;
};
nlohmann::json EdgeAddressToJson(const EdgeAddress& a);  // {"address","port"}, null for none
EdgeAddress EdgeAddressFromJson(const nlohmann::json& j);
// True when an edge listening on `running` serves what `wanted` asks for.
bool EdgeAddressMatches(const EdgeAddress& wanted, const EdgeAddress& running);
std::string DescribeEdgeAddress(const EdgeAddress& a);  // "127.0.0.1:8080" or "none"

// Which binary a process runs: /proc/<pid>/exe's target and the file's identity.
struct ExeIdentity {
  std::string path;
  uint64_t dev = 0;
  uint64_t ino = 0;
  int64_t mtime_ns = 0;
  bool operator==(const ExeIdentity&) const = default;
};
ExeIdentity ExeIdentityOf(pid_t pid);  // empty path when it cannot be read
nlohmann::json ExeIdentityToJson(const ExeIdentity& exe);
ExeIdentity ExeIdentityFromJson(const nlohmann::json& j);

// One end of a control connection (blocking I/O with deadlines).
class ControlConnection {
 public:
  using Deadline = std::chrono::steady_clock::time_point;

  explicit ControlConnection(int fd);  // takes ownership
  ~ControlConnection();
  ControlConnection(const ControlConnection&) = delete;
  ControlConnection& operator=(const ControlConnection&) = delete;

  // kUnavailable when nothing listens at `path` (or it is not there).
  static Result<std::unique_ptr<ControlConnection>> Connect(const std::string& path);

  // Writes `line` and '\n'; `fds` (not taken) travel with it as SCM_RIGHTS.
  Status Send(const std::string& line, Deadline deadline, const std::vector<int>& fds = {});
  // The next line, without '\n'. Descriptors that arrive are appended to `fds` (the caller
  // owns them), or closed when `fds` is null. kUnavailable when the peer closed,
  // kDeadlineExceeded past the deadline (Deadline::max(): none), kResourceExhausted for a
  // line longer than kMaxControlLine.
  Result<std::string> ReadLine(Deadline deadline, std::vector<int>* fds = nullptr);

  // Sends `request` and reads the reply: its object when "ok" is true, else the edge's
  // "error" as kFailedPrecondition.
  Result<nlohmann::json> Call(const nlohmann::json& request, std::chrono::milliseconds timeout,
                              std::vector<int>* fds = nullptr);

  int fd() const { return fd_; }

 private:
  int fd_;
  std::string buffer_;  // bytes read past the last line returned
};

// Binds a listening unix socket at `path` (mode 0600): bound under a temporary name and
// renamed over `path`, so an edge taking over replaces the old edge's socket atomically.
// `*inode` gets the socket file's inode (to tell later whether `path` is still ours).
Result<int> ListenUnix(const std::string& path, uint64_t* inode);

}  // namespace slipway
