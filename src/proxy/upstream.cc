#include "proxy/upstream.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>

namespace slipway::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;

asio::awaitable<ConnectOutcome> UpstreamConnector::Connect(const CompiledRoute& route) {
  ConnectOutcome outcome;
  const size_t count = route.upstreams.size();
  if (count == 0) {
    outcome.failure = ConnectFailure::kNoUpstreams;
    co_return outcome;
  }
  const uint32_t start = route.next_upstream.fetch_add(1, std::memory_order_relaxed);
  outcome.failure = ConnectFailure::kRefused;
  for (size_t i = 0; i < count; ++i) {
    const auto& endpoint = route.upstreams[(start + i) % count];
    auto connection = std::make_unique<UpstreamConnection>(executor_);
    connection->endpoint = endpoint;
    connection->stream.expires_after(connect_timeout_);
    auto [ec] =
        co_await connection->stream.async_connect(endpoint, asio::as_tuple(asio::use_awaitable));
    if (!ec) {
      beast::error_code ignored;
      connection->stream.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
      outcome.connection = std::move(connection);
      outcome.failure = ConnectFailure::kNone;
      co_return outcome;
    }
    outcome.failure =
        ec == beast::error::timeout ? ConnectFailure::kTimeout : ConnectFailure::kRefused;
    spdlog::debug("edge: {}: connect to {}:{} failed: {}", route.service_label,
                  endpoint.address().to_string(), endpoint.port(), ec.message());
  }
  co_return outcome;
}

void UpstreamConnector::Release(std::unique_ptr<UpstreamConnection> connection, bool reusable) {
  (void)reusable;  // no pool yet: every connection is closed after its request
  if (!connection) return;
  beast::error_code ignored;
  connection->stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  connection->stream.close();
}

}  // namespace slipway::proxy
