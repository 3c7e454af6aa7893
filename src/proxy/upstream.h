#pragma once

// Connections from the edge to app replicas.
//
// UpstreamConnector picks a replica for a request (round-robin start, then the next one
// on failure) and hands out a connected stream. Today every request gets a fresh
// connection and Release() closes it; a per-worker keep-alive pool fits behind the same
// two calls (Connect takes an idle connection first, Release parks a reusable one).
//
// Thread-safety: one UpstreamConnector per worker thread; use it from that thread only.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <memory>

#include "proxy/route_index.h"

namespace slipway::proxy {

struct UpstreamConnection {
  explicit UpstreamConnection(const boost::asio::any_io_executor& executor) : stream(executor) {}
  boost::beast::tcp_stream stream;
  boost::asio::ip::tcp::endpoint endpoint;
};

enum class ConnectFailure { kNone, kNoUpstreams, kRefused, kTimeout };

struct ConnectOutcome {
  std::unique_ptr<UpstreamConnection> connection;  // null on failure
  ConnectFailure failure = ConnectFailure::kNone;
};

class UpstreamConnector {
 public:
  UpstreamConnector(boost::asio::any_io_executor executor, std::chrono::seconds connect_timeout)
      : executor_(std::move(executor)), connect_timeout_(connect_timeout) {}

  // Tries each upstream of `route` once, starting at its round-robin position. On
  // failure the outcome says whether the last problem was a timeout or a refusal.
  boost::asio::awaitable<ConnectOutcome> Connect(const CompiledRoute& route);

  // Gives a connection back after a request. `reusable`: the exchange ended cleanly and
  // the upstream agreed to keep the connection open.
  void Release(std::unique_ptr<UpstreamConnection> connection, bool reusable);

 private:
  boost::asio::any_io_executor executor_;
  std::chrono::seconds connect_timeout_;
};

}  // namespace slipway::proxy
