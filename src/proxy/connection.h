#pragma once

// One client connection to the edge: the HTTP/1.x keep-alive loop, routing by Host,
// proxying to an upstream with both bodies streamed, static files, the edge's own pages,
// and WebSocket-style upgrades (a byte tunnel after "101 Switching Protocols").
//
// Thread-safety: a connection runs on its worker's io_context thread only.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "proxy/edge.h"
#include "proxy/route_index.h"
#include "proxy/upstream.h"

namespace slipway::proxy {

// What a worker lends to each of its connections. Outlives them.
struct ConnectionEnv {
  const EdgeOptions& options;
  RouteCache& routes;
  UpstreamConnector& upstreams;
};

// Serves `socket` until the client leaves, a timeout fires or an error closes it.
boost::asio::awaitable<void> ServeConnection(ConnectionEnv& env,
                                             boost::asio::ip::tcp::socket socket);

}  // namespace slipway::proxy
