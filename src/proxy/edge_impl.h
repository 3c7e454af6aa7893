#pragma once

// The Edge's insides: one listening socket, one worker per thread.
//
// Threading model: every worker owns an io_context run by exactly one thread, and
// everything a connection touches (its sockets, timers, upstream connector, route cache)
// belongs to that worker, so the hot path shares nothing between threads but the route
// slot (read with one atomic load per request).
//
// Accepting: the listening socket is bound once in Create() (so "address in use" is
// reported there, and a future edge process can inherit that single fd). Each worker
// accepts on its own dup() of it: the kernel hands every new connection to one of the
// workers' accept calls, and a connection stays on the worker that accepted it. This is
// nginx's model without an accept mutex; SO_REUSEPORT (one socket per worker, balanced by
// the kernel's hash) is the alternative if accept contention ever shows up.
//
// Stop(): every io_context is stopped, the threads are joined, then the io_contexts are
// destroyed, which destroys each suspended connection coroutine and closes its sockets.

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "proxy/connection.h"
#include "proxy/edge.h"
#include "proxy/route_index.h"
#include "proxy/upstream.h"

namespace slipway::proxy {

class Worker {
 public:
  // Takes ownership of `listen_fd` (a dup of the edge's listening socket).
  Worker(const EdgeOptions& options, const RouteSlot& slot, int listen_fd, bool ipv6);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Start();  // starts the thread
  void Stop();   // stops the io_context; Join() waits for the thread
  void Join();

 private:
  boost::asio::awaitable<void> AcceptLoop();

  // Destroyed explicitly in ~Worker, io_context last but before the members connections
  // borrow (options, routes, upstreams).
  std::unique_ptr<boost::asio::io_context> ioc_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  RouteCache routes_;
  UpstreamConnector upstreams_;
  ConnectionEnv env_;
  std::thread thread_;
};

class EdgeImpl final : public Edge {
 public:
  EdgeImpl(const EdgeOptions& options, int listen_fd, int port, bool ipv6);
  ~EdgeImpl() override;

  void Start() override;
  void Stop() override;
  int port() const override { return port_; }
  void Swap(std::shared_ptr<const RouteTable> table) override;

 private:
  const EdgeOptions options_;
  const int port_;
  const bool ipv6_;
  int listen_fd_;
  RouteSlot slot_;
  std::mutex lifecycle_mu_;  // Start/Stop only, never the request path
  bool started_ = false;
  bool stopped_ = false;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace slipway::proxy
