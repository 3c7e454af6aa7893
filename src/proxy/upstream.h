#pragma once

// Connections from the edge to app replicas: choosing a replica, a keep-alive pool, and
// connecting.
//
// PickUpstream() chooses among a route's replicas the way the route says (round-robin or
// fewest requests in flight), skipping replicas already tried for this request and
// replicas ejected after a refused connection; when every untried replica is ejected it
// picks one of those anyway (better a try than a certain 502, and it is how an ejected
// replica comes back early).
//
// UpstreamPool is one worker's keep-alive pool: per replica address a LIFO stack of idle
// connections (at most `upstream_max_idle`), each closed after `upstream_idle_timeout`
// or as soon as it is found closed by the replica (checked when taken, and by Sweep()).
//
// Thread-safety: PickUpstream/Eject may run on any thread (they touch only atomics). One
// UpstreamPool per worker thread; use it from that thread only.

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "proxy/edge.h"
#include "proxy/io.h"
#include "proxy/route_index.h"

namespace slipway::proxy {

struct UpstreamConnection {
  UpstreamConnection(const Executor& executor, DeadlineList& deadlines)
      : socket(executor), deadline(deadlines, socket) {}
  Socket socket;
  Deadline deadline;                 // of the operation in progress
  boost::beast::flat_buffer buffer;  // bytes read from the replica, not yet consumed
  boost::asio::ip::tcp::endpoint endpoint;
  std::chrono::steady_clock::time_point parked_at;
  int requests = 0;  // exchanges completed on this connection
};

enum class ConnectFailure {
  kNone,
  kNoUpstreams,
  kRefused,
  kTimeout,
  kDropped,  // connected, but the replica hung up before answering
};

struct ConnectOutcome {
  std::unique_ptr<UpstreamConnection> connection;  // null on failure
  ConnectFailure failure = ConnectFailure::kNone;
};

// Which replicas of a route a request has tried. Up to 64 exactly; beyond that replicas
// share bits (a request then may skip some of them).
class TriedSet {
 public:
  void Add(size_t index) { bits_ |= uint64_t{1} << (index % 64); }
  bool Has(size_t index) const { return (bits_ >> (index % 64)) & 1; }

 private:
  uint64_t bits_ = 0;
};

// CoarseNow() in nanoseconds, for ejection deadlines.
int64_t SteadyNowNs();

// Index into route.upstreams, or -1 when every replica has been tried.
int PickUpstream(const CompiledRoute& route, const TriedSet& tried, int64_t now_ns);

// Takes a replica out of every thread's choices for `duration`.
void Eject(UpstreamState& state, std::chrono::milliseconds duration, int64_t now_ns);

class UpstreamPool {
 public:
  UpstreamPool(Executor executor, DeadlineList& deadlines, const EdgeOptions& options);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // The most recently parked idle connection to `endpoint`, or null. With `check_open`, one
  // the replica closed meanwhile is skipped (a non-blocking peek, one syscall); requests
  // that are retried anyway when a reused connection turns out dead pass false.
  std::unique_ptr<UpstreamConnection> TakeIdle(const boost::asio::ip::tcp::endpoint& endpoint,
                                               bool check_open);

  // A new connection (TCP_NODELAY), within the connect timeout.
  Task<ConnectOutcome> Connect(const boost::asio::ip::tcp::endpoint& endpoint);

  // Gives a connection back after an exchange. `reusable`: the exchange ended cleanly,
  // nothing unread is left, and the replica agreed to keep the connection open.
  void Release(std::unique_ptr<UpstreamConnection> connection, bool reusable);

  // Closes idle connections that timed out or that the replica closed.
  void Sweep();
  // Closes every idle connection (before the io_context goes away).
  void Clear();
  size_t idle_count() const;

 private:
  static bool LooksOpen(UpstreamConnection& connection);
  static void Close(UpstreamConnection& connection);

  Executor executor_;
  DeadlineList& deadlines_;
  const std::chrono::seconds connect_timeout_;
  const size_t max_idle_;
  const std::chrono::steady_clock::duration idle_timeout_;
  std::unordered_map<boost::asio::ip::tcp::endpoint,
                     std::vector<std::unique_ptr<UpstreamConnection>>>
      idle_;
};

}  // namespace slipway::proxy
