#pragma once

// One client connection to the edge, plain or TLS: the HTTP/1.x keep-alive loop, routing
// by host and path, proxying to an upstream with both bodies streamed, static files, the
// edge's own pages, redirects to HTTPS, ACME challenges, and upgrades (a byte tunnel
// after "101 Switching Protocols").
//
// Thread-safety: a connection runs on its worker's io_context thread only.

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <vector>

#include "proxy/arena.h"
#include "proxy/edge.h"
#include "proxy/headers.h"
#include "proxy/io.h"
#include "proxy/route_index.h"
#include "proxy/upstream.h"

namespace slipway::proxy {

// Body bytes move through one of these per busy connection (idle keep-alive connections
// hold none). Large enough that a 1 MiB body is 16 reads and 16 writes.
constexpr size_t kRelayBufferBytes = 64 * 1024;

// A worker's free list of relay buffers, so requests do not allocate them.
class BufferPool {
 public:
  std::unique_ptr<char[]> Take();
  void Give(std::unique_ptr<char[]> buffer);

 private:
  static constexpr size_t kMaxFree = 64;
  std::vector<std::unique_ptr<char[]>> free_;
};

// What a worker lends to each of its connections. Outlives them.
struct ConnectionEnv {
  const EdgeOptions& options;
  RouteCache& routes;
  UpstreamPool& upstreams;
  BufferPool& buffers;
  ArenaPool& arenas;
  RequestIdGenerator& ids;
  DeadlineList& deadlines;
  int worker_index = 0;
  int https_port = -1;  // the edge's HTTPS port, for redirects; -1 when off
  // Set (by any thread) once the edge drains: every answer from then on says
  // "Connection: close", and a connection waits at most options.drain_idle_grace for
  // its next request.
  const std::atomic<bool>& draining;
};

// Serves a plain-HTTP `socket` until the client leaves, a timeout fires or an error
// closes it.
Task<void> ServeConnection(ConnectionEnv& env, Socket socket);

// The same over TLS: handshakes on `sni_context` (see MakeSniContext), within the header
// timeout, then serves the decrypted stream.
Task<void> ServeTlsConnection(ConnectionEnv& env, Socket socket,
                              boost::asio::ssl::context& sni_context);

}  // namespace slipway::proxy
