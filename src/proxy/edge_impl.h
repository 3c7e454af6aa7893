#pragma once

// The Edge's insides: one worker per thread, each with its own listening sockets.
//
// Threading model: every worker owns an io_context run by exactly one thread, and
// everything a connection touches (its sockets, timers, keep-alive pool, relay buffers,
// route cache) belongs to that worker, so the hot path shares nothing between threads but
// the route slot (one atomic load per request), the per-replica in-flight counters and
// ejection deadlines (relaxed atomics), and nothing at all for metrics (per-thread slots).
//
// Accepting: Create() binds one socket per thread and listener (HTTP, and HTTPS when
// configured), all with SO_REUSEPORT, so the kernel spreads new connections over the
// workers by hash and no accept is contended. The first bind is the one that reports
// "address in use" when another process holds the port without SO_REUSEPORT (or under
// another user); a previous Slipway edge of the same user holding it WITH SO_REUSEPORT
// does not make it fail: both then share the port, which is how a new edge process takes
// over from an old one before the old one stops accepting.
//
// A takeover hands these very sockets (dups of them) to the new process instead, so the
// accept queues live on while either process accepts (see edge.h); a worker may then hold
// several sockets per listener when the new edge runs fewer threads than the old one.
//
// Each io_context runs with BOOST_ASIO_CONCURRENCY_HINT_UNSAFE (no locking in asio): no
// other thread ever calls into it once its thread runs. Stop() and Drain() therefore only
// write to an eventfd that the worker watches; the worker stops its own io_context (or
// closes its own acceptors and cuts its idle connections' deadlines). The threads
// are joined, then the io_contexts are destroyed, which destroys each suspended
// connection coroutine and closes its sockets.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "proxy/connection.h"
#include "proxy/edge.h"
#include "proxy/headers.h"
#include "proxy/io.h"
#include "proxy/route_index.h"
#include "proxy/upstream.h"

namespace slipway::proxy {

// A bound, listening socket handed from Create() to a worker.
struct ListenSocket {
  int fd = -1;
  bool ipv6 = false;
};

class Worker {
 public:
  // Takes ownership of the sockets (`https` empty: no HTTPS). `sni_context` is null
  // without HTTPS and outlives the worker; so do `draining` and `open_connections`.
  Worker(const EdgeOptions& options, const RouteSlot& slot, int index,
         std::vector<ListenSocket> http, std::vector<ListenSocket> https,
         boost::asio::ssl::context* sni_context, int https_port, const std::atomic<bool>& draining,
         std::atomic<int>& open_connections);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Start();  // starts the thread
  void Stop();   // asks the thread to stop its io_context; Join() waits for the thread
  void Join();
  void Drain();  // asks the thread to close its acceptors and cut idle connections short

 private:
  Task<void> AcceptLoop(Acceptor& acceptor, bool tls);
  Task<void> WaitForDrain();
  // Every kDeadlineTick: closes sockets whose deadline passed; every second: sweeps the pool.
  Task<void> SweepLoop();
  Task<void> WaitForStop();

  // Destroyed explicitly in ~Worker, io_context last but before the members connections
  // borrow (options, routes, pool, buffers).
  std::unique_ptr<boost::asio::io_context> ioc_;
  int stop_fd_ = -1;   // eventfd: Stop() writes, WaitForStop() reads
  int drain_fd_ = -1;  // eventfd: Drain() writes, WaitForDrain() reads
  std::vector<std::unique_ptr<Acceptor>> http_acceptors_;
  std::vector<std::unique_ptr<Acceptor>> https_acceptors_;
  std::atomic<int>& open_connections_;
  boost::asio::ssl::context* sni_context_;
  DeadlineList deadlines_;
  RouteCache routes_;
  UpstreamPool upstreams_;
  BufferPool buffers_;
  ArenaPool arenas_;
  RequestIdGenerator ids_;
  ConnectionEnv env_;
  std::thread thread_;
};

class EdgeImpl final : public Edge {
 public:
  EdgeImpl(const EdgeOptions& options, std::vector<ListenSocket> http, int port,
           std::vector<ListenSocket> https, int https_port);
  ~EdgeImpl() override;

  void Start() override;
  void Stop() override;
  int port() const override { return port_; }
  int https_port() const override { return https_port_; }
  void Swap(std::shared_ptr<const RouteTable> table) override;
  std::vector<RouteMetrics> Metrics() const override;
  std::vector<UpstreamLoad> UpstreamLoads() const override;
  Result<ListenerFds> DuplicateListeners() override;
  void Drain() override;
  int OpenConnections() const override { return open_connections_.load(); }

 private:
  void CloseSockets();

  const EdgeOptions options_;
  const int threads_;
  const int port_;
  const int https_port_;
  std::vector<ListenSocket> http_sockets_;   // handed to workers at Start()
  std::vector<ListenSocket> https_sockets_;  // empty without HTTPS
  std::unique_ptr<boost::asio::ssl::context> sni_context_;
  UpstreamRegistry upstream_states_;
  StatsRegistry stats_;
  RouteSlot slot_;
  std::atomic<bool> draining_{false};
  std::atomic<int> open_connections_{0};
  std::mutex lifecycle_mu_;  // Start/Stop/Drain/DuplicateListeners, never the request path
  bool started_ = false;
  bool stopped_ = false;
  // The listening fds as handed to the workers (owned by them), for DuplicateListeners.
  std::vector<int> serving_http_fds_;
  std::vector<int> serving_https_fds_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace slipway::proxy
