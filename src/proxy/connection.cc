#include "proxy/connection.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "proxy/headers.h"
#include "proxy/pages.h"
#include "proxy/static_files.h"

namespace slipway::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// One buffer per connection carries body bytes in both directions and file chunks.
constexpr size_t kRelayBufferBytes = 32 * 1024;
constexpr size_t kIdleReadBytes = 4 * 1024;
// After answering with "Connection: close", keep reading (and dropping) what the client
// still sends for a moment, so the kernel does not reset the connection under the answer.
constexpr std::chrono::seconds kLingerTime{2};
constexpr size_t kLingerMaxBytes = 1 << 20;
constexpr size_t kMinUpstreamHeaderBytes = 64 * 1024;

using RequestParser = http::request_parser<http::buffer_body>;
using ResponseParser = http::response_parser<http::buffer_body>;

std::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

// A message that is not valid HTTP (as opposed to one cut short by the peer leaving).
bool IsMalformed(beast::error_code ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

// What to do with the client connection after an exchange.
enum class Next {
  kKeepAlive,  // read the next request
  kClose,      // an answer said "Connection: close": close gracefully (with lingering)
  kDrop,       // the connection is broken or timed out: close at once
};

enum class RelayStop { kDone, kInputFailed, kOutputFailed };

struct RequestInfo {
  unsigned version = 11;
  bool head = false;
  bool html = false;
};

struct Exchange {
  Clock::time_point start = Clock::now();
  std::string method;
  std::string host;
  std::string target;
  unsigned status = 0;
  tcp::endpoint upstream;  // port 0 when the request did not reach one
  std::string note;
};

// Moves one message body from `in` to `out` through `buf`, forwarding whatever each
// read yields at once (so Server-Sent Events and other streams are not held back).
// Chunked bodies stay chunked: the serializer frames each piece as a chunk.
template <bool isRequest>
asio::awaitable<std::pair<RelayStop, beast::error_code>> RelayBody(
    beast::tcp_stream& in, beast::flat_buffer& in_buffer,
    http::parser<isRequest, http::buffer_body>& parser, std::chrono::seconds in_timeout,
    beast::tcp_stream& out, http::serializer<isRequest, http::buffer_body>& serializer,
    std::chrono::seconds out_timeout, char* buf, size_t buf_size) {
  while (!parser.is_done()) {
    auto& body = parser.get().body();
    body.data = buf;
    body.size = buf_size;
    in.expires_after(in_timeout);
    auto [ec, n] = co_await http::async_read_some(in, in_buffer, parser, kTuple);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return std::pair{RelayStop::kInputFailed, ec};
    const size_t got = buf_size - body.size;
    const bool more = !parser.is_done();
    // A zero-length piece would be framed as the last chunk: only write when there is
    // data, or to finish the message.
    if (got == 0 && more) continue;
    body.data = got == 0 ? nullptr : buf;
    body.size = got;
    body.more = more;
    out.expires_after(out_timeout);
    auto [wec, wn] = co_await http::async_write(out, serializer, kTuple);
    if (wec == http::error::need_buffer) wec = {};
    if (wec) co_return std::pair{RelayStop::kOutputFailed, wec};
  }
  co_return std::pair{RelayStop::kDone, beast::error_code{}};
}

// One direction of an upgraded connection. EOF is passed on as a half-close; an error
// closes both sockets, which ends the other direction too.
asio::awaitable<void> Pump(tcp::socket& from, tcp::socket& to, Clock::time_point& last_activity) {
  std::array<char, 16 * 1024> buf;
  beast::error_code ignored;
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), kTuple);
    if (ec) {
      if (ec == asio::error::eof) {
        to.shutdown(tcp::socket::shutdown_send, ignored);
      } else {
        from.close(ignored);
        to.close(ignored);
      }
      co_return;
    }
    last_activity = Clock::now();
    auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf.data(), n), kTuple);
    if (wec) {
      from.close(ignored);
      to.close(ignored);
      co_return;
    }
  }
}

// Ends when nothing moved through a tunnel for `idle`.
asio::awaitable<void> Watchdog(const Clock::time_point& last_activity, std::chrono::seconds idle) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    auto deadline = last_activity + idle;
    if (Clock::now() >= deadline) co_return;
    timer.expires_at(deadline);
    auto [ec] = co_await timer.async_wait(kTuple);
    if (ec) co_return;
  }
}

class Connection {
 public:
  Connection(ConnectionEnv& env, tcp::socket socket)
      : env_(env),
        client_(std::move(socket)),
        relay_buffer_(std::make_unique<char[]>(kRelayBufferBytes)) {
    beast::error_code ec;
    client_.socket().set_option(tcp::no_delay(true), ec);
    auto remote = client_.socket().remote_endpoint(ec);
    client_ip_ = ec ? "unknown" : remote.address().to_string();
  }

  asio::awaitable<void> Run();

 private:
  asio::awaitable<Next> Handle(RequestParser& parser);
  asio::awaitable<Next> Proxy(RequestParser& parser, const CompiledRoute& route,
                              const RequestInfo& info, bool keep_alive, Exchange& ex);
  asio::awaitable<Next> ServeStatic(RequestParser& parser, const CompiledRoute& route,
                                    const RequestInfo& info, bool keep_alive, Exchange& ex);
  asio::awaitable<Next> SendPage(const Page& page, const RequestInfo& info, bool keep_alive,
                                 Exchange& ex, http::field extra_field = http::field::unknown,
                                 std::string_view extra_value = {});
  // 502 "closed the connection or sent an invalid response".
  asio::awaitable<Next> SendBadGateway(const CompiledRoute& route, const RequestInfo& info,
                                       bool keep_alive, Exchange& ex);
  asio::awaitable<Next> AnswerUnreadableRequest(beast::error_code ec);
  asio::awaitable<void> Tunnel(UpstreamConnection& upstream, beast::flat_buffer& upstream_buffer);
  asio::awaitable<void> Close(bool linger);
  void Log(const Exchange& ex) const;

  ConnectionEnv& env_;
  beast::tcp_stream client_;
  beast::flat_buffer buffer_;
  std::string client_ip_;
  std::unique_ptr<char[]> relay_buffer_;
};

asio::awaitable<void> Connection::Run() {
  const auto& options = env_.options;
  Next next = Next::kKeepAlive;
  bool first = true;
  while (next == Next::kKeepAlive) {
    // Between requests the idle timeout applies; once a request starts, the header
    // timeout does (the first request gets the header timeout from accept on).
    if (!first && buffer_.size() == 0) {
      client_.expires_after(options.idle_timeout);
      auto [ec, n] = co_await client_.async_read_some(buffer_.prepare(kIdleReadBytes), kTuple);
      if (ec) {
        next = Next::kDrop;
        break;
      }
      buffer_.commit(n);
    }
    first = false;
    RequestParser parser;
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(options.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    parser.body_limit(boost::none);
    client_.expires_after(options.header_timeout);
    auto [ec, n] = co_await http::async_read_header(client_, buffer_, parser, kTuple);
    if (ec) {
      next = co_await AnswerUnreadableRequest(ec);
      break;
    }
    next = co_await Handle(parser);
  }
  co_await Close(next == Next::kClose);
}

asio::awaitable<Next> Connection::AnswerUnreadableRequest(beast::error_code ec) {
  RequestInfo info;
  Exchange ex;
  ex.note = ec.message();
  std::optional<Page> page;
  if (ec == http::error::header_limit) {
    page = HeaderTooLargePage(env_.options.max_header_bytes);
  } else if (IsMalformed(ec)) {
    page = BadRequestPage("the request is not valid HTTP/1.1 (" + ec.message() + ")");
  } else {
    // The client left, or sent nothing in time: nobody to answer.
    co_return Next::kDrop;
  }
  co_return co_await SendPage(*page, info, false, ex);
}

asio::awaitable<Next> Connection::Handle(RequestParser& parser) {
  auto& req = parser.get();
  Exchange ex;
  ex.method = std::string(View(req.method_string()));
  ex.target = std::string(View(req.target()));
  RequestInfo info;
  info.version = req.version();
  info.head = req.method() == http::verb::head;
  info.html = WantsHtml(View(req[http::field::accept]));
  // A body we do not read (local answers) means the connection cannot be reused.
  const bool keep_alive = req.keep_alive();
  const bool local_keep_alive = keep_alive && parser.is_done();
  ex.host = NormalizeHost(View(req[http::field::host]));

  // Held for the whole exchange: a Swap() meanwhile does not affect this request.
  std::shared_ptr<const RouteIndex> routes = env_.routes.Current();
  const CompiledRoute* route = routes->Find(ex.host);
  Next next;
  if (ex.host.empty() && req.version() >= 11) {
    const Page page = BadRequestPage("the Host header is missing");
    next = co_await SendPage(page, info, false, ex);
  } else if (route == nullptr) {
    const Page page = UnknownHostPage(ex.host);
    next = co_await SendPage(page, info, local_keep_alive, ex);
  } else if (route->is_static()) {
    next = co_await ServeStatic(parser, *route, info, local_keep_alive, ex);
  } else if (route->upstreams.empty()) {
    const Page page = NoReplicaPage(route->service_label);
    next = co_await SendPage(page, info, local_keep_alive, ex);
  } else {
    next = co_await Proxy(parser, *route, info, keep_alive, ex);
  }
  Log(ex);
  co_return next;
}

asio::awaitable<Next> Connection::Proxy(RequestParser& parser, const CompiledRoute& route,
                                        const RequestInfo& info, bool client_keep_alive,
                                        Exchange& ex) {
  const auto& options = env_.options;
  auto& req = parser.get();
  const bool upgrade = IsUpgradeRequest(req);
  const bool expect_continue = EqualsIgnoreCase(View(req[http::field::expect]), "100-continue");
  const std::string original_host(View(req[http::field::host]));

  ConnectOutcome outcome = co_await env_.upstreams.Connect(route);
  if (!outcome.connection) {
    const bool keep = client_keep_alive && parser.is_done();
    const Page page =
        outcome.failure == ConnectFailure::kTimeout
            ? UpstreamConnectTimeoutPage(
                  route.service_label, static_cast<long>(options.upstream_connect_timeout.count()))
        : outcome.failure == ConnectFailure::kNoUpstreams
            ? NoReplicaPage(route.service_label)
            : UpstreamRefusedPage(route.service_label);
    co_return co_await SendPage(page, info, keep, ex);
  }
  std::unique_ptr<UpstreamConnection> connection = std::move(outcome.connection);
  beast::tcp_stream& upstream = connection->stream;
  ex.upstream = connection->endpoint;

  RemoveHopByHop(req, upgrade);
  if (upgrade) req.set(http::field::connection, "upgrade");
  // The edge answers "100 Continue" itself (below), as the upstream never sees Expect.
  if (expect_continue) req.erase(http::field::expect);
  AddForwardedFields(req, client_ip_, "http", original_host);
  req.version(11);

  const auto upstream_timeout = options.upstream_response_timeout;
  const auto client_timeout = options.idle_timeout;
  http::serializer<true, http::buffer_body> request_serializer{req};
  upstream.expires_after(upstream_timeout);
  auto [hec, hn] = co_await http::async_write_header(upstream, request_serializer, kTuple);
  if (hec) {
    env_.upstreams.Release(std::move(connection), false);
    co_return co_await SendBadGateway(route, info, client_keep_alive && parser.is_done(), ex);
  }

  if (!parser.is_done()) {
    if (expect_continue) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      client_.expires_after(client_timeout);
      auto [cec, cn] = co_await asio::async_write(client_, asio::buffer(kContinue), kTuple);
      if (cec) co_return Next::kDrop;
    }
    auto [stop, ec] =
        co_await RelayBody(client_, buffer_, parser, client_timeout, upstream, request_serializer,
                           upstream_timeout, relay_buffer_.get(), kRelayBufferBytes);
    if (stop != RelayStop::kDone) {
      env_.upstreams.Release(std::move(connection), false);
      ex.note = ec.message();
      if (stop == RelayStop::kOutputFailed) {
        co_return co_await SendBadGateway(route, info, false, ex);
      }
      if (IsMalformed(ec)) {
        const Page page = BadRequestPage("the request body is malformed");
        co_return co_await SendPage(page, info, false, ex);
      }
      co_return Next::kDrop;
    }
  }

  // Interim 1xx answers (other than 101) are dropped; the final answer follows them.
  beast::flat_buffer upstream_buffer;
  std::optional<ResponseParser> response_parser;
  for (;;) {
    response_parser.emplace();
    response_parser->header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(std::max(options.max_header_bytes, kMinUpstreamHeaderBytes),
                         std::numeric_limits<std::uint32_t>::max())));
    response_parser->body_limit(boost::none);
    if (info.head) response_parser->skip(true);
    upstream.expires_after(upstream_timeout);
    auto [ec, n] =
        co_await http::async_read_header(upstream, upstream_buffer, *response_parser, kTuple);
    if (ec) {
      env_.upstreams.Release(std::move(connection), false);
      ex.note = ec.message();
      if (ec != beast::error::timeout) {
        co_return co_await SendBadGateway(route, info, client_keep_alive, ex);
      }
      const Page page = UpstreamResponseTimeoutPage(route.service_label,
                                                    static_cast<long>(upstream_timeout.count()));
      co_return co_await SendPage(page, info, client_keep_alive, ex);
    }
    const unsigned status = response_parser->get().result_int();
    if (status < 100 || status >= 200 || status == 101) break;
  }

  auto& res = response_parser->get();
  if (res.result() == http::status::switching_protocols) {
    if (!upgrade) {
      env_.upstreams.Release(std::move(connection), false);
      co_return co_await SendBadGateway(route, info, false, ex);
    }
    RemoveHopByHop(res, /*keep_upgrade=*/true);
    res.set(http::field::connection, "upgrade");
    ex.status = 101;
    http::serializer<false, http::buffer_body> serializer{res};
    client_.expires_after(client_timeout);
    auto [ec, n] = co_await http::async_write_header(client_, serializer, kTuple);
    if (!ec) co_await Tunnel(*connection, upstream_buffer);
    env_.upstreams.Release(std::move(connection), false);
    co_return Next::kDrop;
  }

  RemoveHopByHop(res, /*keep_upgrade=*/false);
  bool keep_alive = client_keep_alive;
  const bool has_body = !response_parser->is_done();
  if (info.version < 11) {
    // HTTP/1.0 clients know no chunked encoding: send the body raw, ended by closing.
    if (res.chunked()) res.chunked(false);
    if (has_body && !response_parser->content_length()) keep_alive = false;
  } else if (has_body && response_parser->need_eof()) {
    // The upstream ends its body by closing; chunk it so the client connection lives on.
    res.chunked(true);
  }
  res.version(11);
  SetClientConnection(res, info.version, keep_alive);
  ex.status = res.result_int();

  http::serializer<false, http::buffer_body> response_serializer{res};
  client_.expires_after(client_timeout);
  auto [wec, wn] = co_await http::async_write_header(client_, response_serializer, kTuple);
  if (wec) {
    env_.upstreams.Release(std::move(connection), false);
    co_return Next::kDrop;
  }
  if (has_body) {
    auto [stop, ec] = co_await RelayBody(upstream, upstream_buffer, *response_parser,
                                         upstream_timeout, client_, response_serializer,
                                         client_timeout, relay_buffer_.get(), kRelayBufferBytes);
    if (stop != RelayStop::kDone) {
      // The status line is out already: all that is left is to cut the connection, which
      // tells the client the body is incomplete.
      ex.note = (stop == RelayStop::kInputFailed ? "upstream: " : "client: ") + ec.message();
      env_.upstreams.Release(std::move(connection), false);
      co_return Next::kDrop;
    }
  }
  env_.upstreams.Release(std::move(connection), response_parser->keep_alive());
  co_return keep_alive ? Next::kKeepAlive : Next::kClose;
}

asio::awaitable<void> Connection::Tunnel(UpstreamConnection& upstream,
                                         beast::flat_buffer& upstream_buffer) {
  // Timeouts of the HTTP phase stop here; the tunnel has its own inactivity watchdog.
  client_.expires_never();
  upstream.stream.expires_never();
  tcp::socket& client_socket = client_.socket();
  tcp::socket& upstream_socket = upstream.stream.socket();
  // Bytes read past either header already belong to the new protocol.
  if (buffer_.size() > 0) {
    auto [ec, n] = co_await asio::async_write(upstream_socket, buffer_.data(), kTuple);
    if (ec) co_return;
    buffer_.consume(buffer_.size());
  }
  if (upstream_buffer.size() > 0) {
    auto [ec, n] = co_await asio::async_write(client_socket, upstream_buffer.data(), kTuple);
    if (ec) co_return;
    upstream_buffer.consume(upstream_buffer.size());
  }
  Clock::time_point last_activity = Clock::now();
  using namespace asio::experimental::awaitable_operators;
  co_await ((Pump(client_socket, upstream_socket, last_activity) &&
             Pump(upstream_socket, client_socket, last_activity)) ||
            Watchdog(last_activity, env_.options.upstream_response_timeout));
}

asio::awaitable<Next> Connection::ServeStatic(RequestParser& parser, const CompiledRoute& route,
                                              const RequestInfo& info, bool keep_alive,
                                              Exchange& ex) {
  auto& req = parser.get();
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    const Page page = MethodNotAllowedPage(View(req.method_string()));
    co_return co_await SendPage(page, info, keep_alive, ex, http::field::allow, "GET, HEAD");
  }
  std::string root = route.static_root_real;
  if (root.empty()) {
    // The directory did not exist at Swap() time; it may now.
    char buf[PATH_MAX];
    if (::realpath(route.static_root.c_str(), buf) != nullptr) root = buf;
  }
  if (root.empty()) {
    const Page page = StaticRootMissingPage(route.service_label);
    co_return co_await SendPage(page, info, keep_alive, ex);
  }
  const StaticLookup lookup = ResolveStaticPath(root, ex.target);
  const Page not_found_page = FileNotFoundPage(ex.target.substr(0, ex.target.find('?')));
  if (lookup.kind == StaticLookup::kBadPath) {
    const Page page = BadRequestPage(lookup.reason);
    co_return co_await SendPage(page, info, keep_alive, ex);
  }
  if (lookup.kind == StaticLookup::kNotFound) {
    co_return co_await SendPage(not_found_page, info, keep_alive, ex);
  }
  if (lookup.kind == StaticLookup::kRedirect) {
    const Page page{http::status::moved_permanently, "Moved to " + lookup.path, ""};
    co_return co_await SendPage(page, info, keep_alive, ex, http::field::location, lookup.path);
  }
  int fd = ::open(lookup.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) co_return co_await SendPage(not_found_page, info, keep_alive, ex);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  http::response<http::empty_body> res{http::status::ok, 11};
  res.set(http::field::content_type, ContentTypeFor(lookup.path));
  res.content_length(lookup.size);
  res.set(http::field::last_modified, HttpDate(lookup.mtime));
  SetClientConnection(res, info.version, keep_alive);
  ex.status = 200;
  http::response_serializer<http::empty_body> serializer{res};
  client_.expires_after(env_.options.idle_timeout);
  auto [ec, n] = co_await http::async_write_header(client_, serializer, kTuple);
  if (ec) co_return Next::kDrop;
  if (!info.head) {
    // Chunks, never the whole file. Disk reads block this thread briefly; sendfile or
    // io_uring can replace this loop later.
    uint64_t remaining = lookup.size;
    while (remaining > 0) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, kRelayBufferBytes));
      ssize_t got = ::read(fd, relay_buffer_.get(), want);
      if (got <= 0) {
        ex.note = "file shrank while being sent";
        co_return Next::kDrop;  // the promised Content-Length can no longer be met
      }
      client_.expires_after(env_.options.idle_timeout);
      auto [wec, wn] = co_await asio::async_write(
          client_, asio::buffer(relay_buffer_.get(), static_cast<size_t>(got)), kTuple);
      if (wec) co_return Next::kDrop;
      remaining -= static_cast<uint64_t>(got);
    }
  }
  co_return keep_alive ? Next::kKeepAlive : Next::kClose;
}

asio::awaitable<Next> Connection::SendPage(const Page& page, const RequestInfo& info,
                                           bool keep_alive, Exchange& ex, http::field extra_field,
                                           std::string_view extra_value) {
  http::response<http::string_body> res{page.status, 11};
  res.set(http::field::content_type, PageContentType(info.html));
  res.set(http::field::cache_control, "no-store");
  if (extra_field != http::field::unknown) res.set(extra_field, extra_value);
  res.body() = RenderPage(page, info.html);
  res.prepare_payload();
  SetClientConnection(res, info.version, keep_alive);
  ex.status = static_cast<unsigned>(page.status);
  http::response_serializer<http::string_body> serializer{res};
  client_.expires_after(env_.options.idle_timeout);
  beast::error_code ec;
  if (info.head) {
    std::tie(ec, std::ignore) = co_await http::async_write_header(client_, serializer, kTuple);
  } else {
    std::tie(ec, std::ignore) = co_await http::async_write(client_, serializer, kTuple);
  }
  if (ec) co_return Next::kDrop;
  co_return keep_alive ? Next::kKeepAlive : Next::kClose;
}

asio::awaitable<Next> Connection::SendBadGateway(const CompiledRoute& route,
                                                 const RequestInfo& info, bool keep_alive,
                                                 Exchange& ex) {
  // Pages are named locals, never temporaries inside a co_await expression: GCC 12
  // mishandles non-trivial temporaries there (seen as a bad free under ASan).
  const Page page = UpstreamBadResponsePage(route.service_label);
  co_return co_await SendPage(page, info, keep_alive, ex);
}

asio::awaitable<void> Connection::Close(bool linger) {
  beast::error_code ec;
  client_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (linger && !ec) {
    const auto deadline = Clock::now() + kLingerTime;
    size_t drained = 0;
    while (drained < kLingerMaxBytes) {
      client_.expires_at(deadline);
      auto [rec, n] = co_await client_.async_read_some(
          asio::buffer(relay_buffer_.get(), kRelayBufferBytes), kTuple);
      if (rec) break;
      drained += n;
    }
  }
  client_.close();
}

void Connection::Log(const Exchange& ex) const {
  if (!spdlog::should_log(spdlog::level::debug)) return;
  auto ms = std::chrono::duration<double, std::milli>(Clock::now() - ex.start).count();
  std::string upstream;
  if (ex.upstream.port() != 0) {
    upstream =
        " upstream=" + ex.upstream.address().to_string() + ":" + std::to_string(ex.upstream.port());
  }
  spdlog::debug("edge: {} \"{} {}{}\" {} {:.1f}ms{}{}", client_ip_, ex.method, ex.host, ex.target,
                ex.status, ms, upstream, ex.note.empty() ? "" : " (" + ex.note + ")");
}

}  // namespace

asio::awaitable<void> ServeConnection(ConnectionEnv& env, tcp::socket socket) {
  Connection connection(env, std::move(socket));
  co_await connection.Run();
}

}  // namespace slipway::proxy
