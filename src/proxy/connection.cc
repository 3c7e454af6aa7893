#include "proxy/connection.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <charconv>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "proxy/pages.h"
#include "proxy/static_files.h"
#include "proxy/static_site.h"
#include "proxy/tls_server.h"

namespace slipway::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using PlainStream = Socket;
using TlsStream = beast::ssl_stream<Socket>;

std::unique_ptr<char[]> BufferPool::Take() {
  if (free_.empty()) return std::make_unique<char[]>(kRelayBufferBytes);
  auto buffer = std::move(free_.back());
  free_.pop_back();
  return buffer;
}

void BufferPool::Give(std::unique_ptr<char[]> buffer) {
  if (buffer && free_.size() < kMaxFree) free_.push_back(std::move(buffer));
}

namespace {

constexpr size_t kIdleReadBytes = 4 * 1024;
// After answering with "Connection: close", keep reading (and dropping) what the client
// still sends for a moment, so the kernel does not reset the connection under the answer.
constexpr std::chrono::seconds kLingerTime{2};
constexpr size_t kLingerMaxBytes = 1 << 20;
constexpr size_t kMinUpstreamHeaderBytes = 64 * 1024;
constexpr std::string_view kAcmePrefix = "/.well-known/acme-challenge/";
constexpr std::string_view kLastChunk = "0\r\n\r\n";

using RequestParser = http::request_parser<http::buffer_body, ArenaAllocator<char>>;
using ResponseParser = http::response_parser<http::buffer_body, ArenaAllocator<char>>;

std::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

// A message that is not valid HTTP (as opposed to one cut short by the peer leaving).
bool IsMalformed(beast::error_code ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message &&
         ec != http::error::need_more;
}

std::string Describe(tcp::endpoint endpoint) {
  std::string out = endpoint.address().to_string();
  if (endpoint.address().is_v6()) out = "[" + out + "]";
  return out + ":" + std::to_string(endpoint.port());
}

// "1a2b\r\n" for a chunk of `size` bytes.
size_t ChunkSizeLine(size_t size, char (&out)[24]) {
  auto [end, ec] = std::to_chars(out, out + 20, size, 16);
  end[0] = '\r';
  end[1] = '\n';
  return static_cast<size_t>(end + 2 - out);
}

// What to do with the client connection after an exchange.
enum class Next {
  kKeepAlive,  // read the next request
  kClose,      // an answer said "Connection: close": close gracefully (with lingering)
  kDrop,       // the connection is broken or timed out: close at once
};

enum class Relay { kDone, kInputFailed, kMalformed, kOutputFailed, kTooLarge };

struct RequestInfo {
  unsigned version = 11;
  bool head = false;
  bool html = false;
};

struct Exchange {
  Clock::time_point start = Clock::now();
  std::string_view method;
  std::string_view target;
  unsigned status = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::optional<tcp::endpoint> upstream;
  // The table the request was routed with, kept until it is recorded (a Swap() meanwhile
  // does not affect it).
  std::shared_ptr<const RouteIndex> routes;
  const CompiledRoute* route = nullptr;
  std::string note;
};

// Where a static site's rewrite sends a request on to another route (ForwardedRequest).
struct RewriteTarget {
  std::string_view target;              // origin form: "/api/x?y=1"
  std::string_view host;                // the URL's authority: "api.demo.localhost:8080"
  const HeaderList* headers = nullptr;  // the site's header rules, for the answer
};

// "http://h:8080/a?b" -> authority "h:8080", target "/a?b" (a missing path is "/"). False
// when the URL has user info or no host.
bool SplitUrl(std::string_view url, std::string_view* authority, std::string* target) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return false;
  url.remove_prefix(scheme + 3);
  const size_t end = url.find_first_of("/?#");
  *authority = url.substr(0, end);
  if (authority->empty() || authority->find('@') != std::string_view::npos) return false;
  std::string_view rest = end == std::string_view::npos ? std::string_view() : url.substr(end);
  rest = rest.substr(0, rest.find('#'));
  target->assign(rest.empty() || rest.front() != '/' ? "/" : "");
  target->append(rest);
  return true;
}

// Counts a request against a replica for least-connections while it is served.
class InFlight {
 public:
  InFlight() = default;
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  ~InFlight() { Set(nullptr); }
  void Set(UpstreamState* state) {
    if (state_) state_->in_flight.fetch_sub(1, std::memory_order_relaxed);
    state_ = state;
    if (state_) state_->in_flight.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  UpstreamState* state_ = nullptr;
};

template <class Stream>
Socket& Lowest(Stream& stream) {
  return beast::get_lowest_layer(stream);
}

// Moves bytes one way through a tunnel. EOF on a plain stream is passed on as a
// half-close; otherwise the end of either direction closes both.
struct TunnelState {
  explicit TunnelState(const Executor& executor) : timer(executor) {}
  Clock::time_point last_activity = Clock::now();
  int open = 2;
  Timer timer;
};

template <class From, class To>
Task<void> Pump(From& from, To& to, TunnelState& state, char* buf, size_t size) {
  beast::error_code ignored;
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buf, size), kTuple);
    if (ec) {
      if (ec == asio::error::eof && std::is_same_v<To, PlainStream> && state.open == 2) {
        Lowest(to).shutdown(tcp::socket::shutdown_send, ignored);
      } else {
        Lowest(from).close(ignored);
        Lowest(to).close(ignored);
      }
      break;
    }
    state.last_activity = Clock::now();
    auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf, n), kTuple);
    if (wec) {
      Lowest(from).close(ignored);
      Lowest(to).close(ignored);
      break;
    }
  }
  if (--state.open == 0) state.timer.cancel();
}

// Closes both sides when nothing moved through the tunnel for `idle`.
template <class A, class B>
Task<void> Watchdog(A& a, B& b, TunnelState& state, std::chrono::seconds idle) {
  for (;;) {
    if (state.open == 0) co_return;
    const auto deadline = state.last_activity + idle;
    if (Clock::now() >= deadline) {
      beast::error_code ignored;
      Lowest(a).close(ignored);
      Lowest(b).close(ignored);
      co_return;
    }
    state.timer.expires_at(deadline);
    co_await state.timer.async_wait(kTuple);
  }
}

template <class Stream>
class Connection {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, PlainStream>;

  Connection(ConnectionEnv& env, Stream stream, std::string client_ip)
      : env_(env),
        client_(std::move(stream)),
        deadline_(env.deadlines, Lowest(client_)),
        client_ip_(std::move(client_ip)) {
    request_id_.reserve(128);
    host_.reserve(64);
    head_out_.reserve(1024);
  }
  ~Connection() { ReturnRelayBuffer(); }

  Stream& stream() { return client_; }
  bool Draining() const { return env_.draining.load(std::memory_order_relaxed); }
  Deadline& deadline() { return deadline_; }
  Task<void> Run();

 private:
  char* RelayBuffer() {
    if (!relay_) relay_ = env_.buffers.Take();
    return relay_.get();
  }
  void ReturnRelayBuffer() {
    if (relay_) env_.buffers.Give(std::move(relay_));
    if (arena_ && arena_->live() == 0) env_.arenas.Give(std::move(arena_));
  }
  // For the fields of the messages of the current request.
  ArenaAllocator<char> FieldsAllocator() {
    if (!arena_) arena_ = env_.arenas.Take();
    return ArenaAllocator<char>(arena_.get());
  }

  // Fills `ex` and `info` from a request's head; picks its request id.
  void Begin(const RequestParser& parser, Exchange& ex, RequestInfo& info);
  Task<Next> Route(RequestParser& parser, const RequestInfo& info, Exchange& ex);
  Task<Next> Proxy(RequestParser& parser, const CompiledRoute& route, const RequestInfo& info,
                   bool keep_alive, Exchange& ex, const RewriteTarget* rewrite = nullptr);
  Task<Relay> SendRequestBody(RequestParser& parser, UpstreamConnection& upstream, int64_t limit,
                              Exchange& ex);
  Task<Relay> SendResponseBody(ResponseParser& parser, UpstreamConnection& upstream, BodyFraming in,
                               BodyFraming out, uint64_t length, Exchange& ex);
  // `keep_alive`: the client's; answers that leave a request body unread close instead.
  // `hops`: how many static sites' rewrites led here.
  Task<Next> ServeStatic(RequestParser& parser, const CompiledRoute& route, const RequestInfo& info,
                         bool keep_alive, Exchange& ex, std::string_view target, int hops);
  Task<Next> SendFile(RequestParser& parser, const StaticSite& site, StaticAnswer& answer,
                      const RequestInfo& info, bool keep_alive, Exchange& ex);
  Task<bool> SendFileBody(int fd, uint64_t offset, uint64_t length, Exchange& ex);
  Task<Next> SendPage(const Page& page, const RequestInfo& info, bool keep_alive, Exchange& ex,
                      http::field extra_field = http::field::unknown,
                      std::string_view extra_value = {}, const HeaderList* headers = nullptr);
  Task<Next> SendText(http::status status, std::string_view body, const RequestInfo& info,
                      bool keep_alive, Exchange& ex);
  Task<Next> SendFailure(ConnectFailure failure, const CompiledRoute& route,
                         const RequestInfo& info, bool keep_alive, Exchange& ex);
  Task<Next> AnswerUnreadableRequest(beast::error_code ec);
  Task<void> Tunnel(UpstreamConnection& upstream);
  Task<void> Close(bool linger);
  void Record(const Exchange& ex);

  ConnectionEnv& env_;
  Stream client_;
  Deadline deadline_;  // of the client-side operation in progress
  beast::flat_buffer buffer_;
  std::string client_ip_;
  std::string request_id_;
  std::string host_;      // normalised Host of the current request
  std::string head_out_;  // a head being forwarded, reused across requests
  std::unique_ptr<char[]> relay_;
  std::unique_ptr<Arena> arena_;  // outlives every parser (they live in Run's callees)
};

template <class Stream>
Task<void> Connection<Stream>::Run() {
  const auto& options = env_.options;
  Next next = Next::kKeepAlive;
  bool first = true;
  while (next == Next::kKeepAlive) {
    // Between requests the idle timeout applies; once a request starts, the header
    // timeout does, for the whole header (the first request gets it from accept on).
    if (!first && buffer_.size() == 0) {
      ReturnRelayBuffer();
      deadline_.IdleAfter(
          Draining() ? std::min<Clock::duration>(options.idle_timeout, options.drain_idle_grace)
                     : Clock::duration(options.idle_timeout));
      auto [ec, n] = co_await client_.async_read_some(buffer_.prepare(kIdleReadBytes), kTuple);
      deadline_.Never();
      if (ec) {
        next = Next::kDrop;
        break;
      }
      buffer_.commit(n);
    }
    first = false;
    RequestParser parser(std::piecewise_construct, std::make_tuple(),
                         std::make_tuple(FieldsAllocator()));
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(options.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    parser.body_limit(boost::none);
    deadline_.After(options.header_timeout);
    auto [ec, n] = co_await http::async_read_header(client_, buffer_, parser, kTuple);
    deadline_.Never();
    if (ec) {
      next = co_await AnswerUnreadableRequest(ec);
      break;
    }
    // Per request: one coroutine frame for Route(), one more for proxying (kept shallow:
    // every nested awaitable is a frame allocation).
    Exchange ex;
    RequestInfo info;
    Begin(parser, ex, info);
    next = co_await Route(parser, info, ex);
    Record(ex);
  }
  co_await Close(next == Next::kClose);
}

template <class Stream>
Task<Next> Connection<Stream>::AnswerUnreadableRequest(beast::error_code ec) {
  RequestInfo info;
  Exchange ex;
  ex.note = ec.message();
  env_.ids.Next(&request_id_);
  host_.clear();
  std::optional<Page> page;
  if (ec == http::error::header_limit) {
    page = HeaderTooLargePage(env_.options.max_header_bytes);
  } else if (IsMalformed(ec)) {
    page = BadRequestPage("the request is not valid HTTP/1.1 (" + ec.message() + ")");
  } else {
    // The client left, or sent nothing in time: nobody to answer.
    co_return Next::kDrop;
  }
  Next next = co_await SendPage(*page, info, false, ex);
  Record(ex);
  co_return next;
}

template <class Stream>
void Connection<Stream>::Begin(const RequestParser& parser, Exchange& ex, RequestInfo& info) {
  const auto& req = parser.get();
  ex.method = View(req.method_string());
  ex.target = View(req.target());
  info.version = req.version();
  info.head = req.method() == http::verb::head;
  info.html = WantsHtml(View(req[http::field::accept]));

  // Keep a sane X-Request-Id from the client (exactly one), else make one.
  auto [id_begin, id_end] = req.equal_range("X-Request-Id");
  if (id_begin != id_end && std::next(id_begin) == id_end &&
      IsSaneRequestId(View(id_begin->value()))) {
    request_id_.assign(View(id_begin->value()));
  } else {
    env_.ids.Next(&request_id_);
  }
  NormalizeHostInto(View(req[http::field::host]), &host_);
}

template <class Stream>
Task<Next> Connection<Stream>::Route(RequestParser& parser, const RequestInfo& info, Exchange& ex) {
  const auto& options = env_.options;
  auto& req = parser.get();
  if (const char* why = CheckRequestHead(req)) {
    const Page page = BadRequestPage(why);
    co_return co_await SendPage(page, info, false, ex);
  }
  const bool keep_alive = req.keep_alive() && !Draining();
  // A body we do not read (local answers) means the connection cannot be reused.
  const bool local_keep_alive = keep_alive && parser.is_done();

  if (!kTls && options.acme != nullptr &&
      (req.method() == http::verb::get || req.method() == http::verb::head) &&
      ex.target.starts_with(kAcmePrefix)) {
    std::string_view token = ex.target.substr(kAcmePrefix.size());
    token = token.substr(0, token.find('?'));
    std::optional<std::string> answer;
    if (!token.empty() && token.find('/') == std::string_view::npos) {
      answer = options.acme->KeyAuthorization(token);
    }
    if (answer) {
      co_return co_await SendText(http::status::ok, *answer, info, local_keep_alive, ex);
    }
    const Page page{http::status::not_found, "No pending ACME challenge with this token", ""};
    co_return co_await SendPage(page, info, local_keep_alive, ex);
  }

  if (host_.empty() && req.version() >= 11) {
    const Page page = BadRequestPage("the Host header is missing");
    co_return co_await SendPage(page, info, false, ex);
  }
  ex.routes = env_.routes.Current();
  const CompiledRoute* route = ex.routes->Find(host_, ex.target);
  ex.route = route;
  if (route == nullptr) {
    const Page page = UnknownHostPage(host_);
    co_return co_await SendPage(page, info, local_keep_alive, ex);
  }
  if (!kTls && route->redirect_to_https) {
    std::string location = "https://" + host_;
    if (env_.https_port > 0 && env_.https_port != 443) {
      location += ":" + std::to_string(env_.https_port);
    }
    location += ex.target.starts_with("/") ? ex.target : "/";
    const Page page{http::status::permanent_redirect, "Moved to " + location, ""};
    co_return co_await SendPage(page, info, local_keep_alive, ex, http::field::location, location);
  }
  if (!parser.is_done()) {
    const int64_t limit =
        route->max_body_bytes != 0 ? route->max_body_bytes : options.max_body_bytes;
    if (limit >= 0 && parser.content_length() &&
        *parser.content_length() > static_cast<uint64_t>(limit)) {
      const Page page = BodyTooLargePage(static_cast<uint64_t>(limit));
      co_return co_await SendPage(page, info, false, ex);
    }
  }
  if (route->is_static())
    co_return co_await ServeStatic(parser, *route, info, keep_alive, ex, ex.target, 0);
  if (route->upstreams.empty()) {
    const Page page = NoReplicaPage(route->service_label);
    co_return co_await SendPage(page, info, local_keep_alive, ex);
  }
  co_return co_await Proxy(parser, *route, info, keep_alive, ex);
}

template <class Stream>
Task<Next> Connection<Stream>::Proxy(RequestParser& parser, const CompiledRoute& route,
                                     const RequestInfo& info, bool client_keep_alive, Exchange& ex,
                                     const RewriteTarget* rewrite) {
  const auto& options = env_.options;
  auto& req = parser.get();
  const bool upgrade = IsUpgradeRequest(req);
  const bool has_body = !parser.is_done();
  const bool chunked_in = has_body && parser.chunked();
  const bool retryable = !has_body && !upgrade && IsIdempotent(req.method());
  const bool keep_if_unsent = client_keep_alive && parser.is_done();
  const auto upstream_timeout = options.upstream_response_timeout;
  const int64_t limit = route.max_body_bytes != 0 ? route.max_body_bytes : options.max_body_bytes;

  ForwardedRequest forward;
  forward.client_ip = client_ip_;
  forward.proto = kTls ? "https" : "http";
  forward.request_id = request_id_;
  forward.upgrade = upgrade;
  if (rewrite != nullptr) {
    forward.target = rewrite->target;
    forward.host = rewrite->host;
  }
  if (chunked_in) {
    forward.framing = BodyFraming::kChunked;
  } else if (parser.content_length()) {
    forward.framing = BodyFraming::kLength;
    forward.length = *parser.content_length();
  }
  WriteUpstreamRequestHead(req, forward, &head_out_);
  const bool expect_continue =
      has_body && EqualsIgnoreCase(View(req[http::field::expect]), "100-continue");

  TriedSet tried;
  ConnectFailure last_failure = ConnectFailure::kRefused;
  bool fresh_only = false;
  int index = -1;
  std::unique_ptr<UpstreamConnection> connection;
  InFlight in_flight;
  std::optional<ResponseParser> response;
  for (;;) {
    // A replica whose pooled connection went stale is tried again as it was picked;
    // otherwise pick afresh, without this request's own count weighing on the choice.
    if (!fresh_only || index < 0) {
      in_flight.Set(nullptr);
      index = PickUpstream(route, tried, SteadyNowNs());
    }
    if (index < 0) {
      co_return co_await SendFailure(last_failure, route, info, keep_if_unsent, ex);
    }
    const CompiledUpstream& upstream = route.upstreams[static_cast<size_t>(index)];
    in_flight.Set(upstream.state.get());
    bool reused = false;
    // The connection dropped before an answer: a pooled one may only have gone stale, so
    // the same replica is tried again on a fresh connection; a fresh one counts against
    // the replica.
    const auto retry_after_drop = [&] {
      if (reused) {
        fresh_only = true;
      } else {
        fresh_only = false;
        tried.Add(static_cast<size_t>(index));
        last_failure = ConnectFailure::kDropped;
      }
    };
    if (!fresh_only) {
      connection = env_.upstreams.TakeIdle(upstream.endpoint, /*check_open=*/!retryable);
      reused = connection != nullptr;
    }
    if (!connection) {
      ConnectOutcome outcome = co_await env_.upstreams.Connect(upstream.endpoint);
      if (!outcome.connection) {
        Eject(*upstream.state, options.eject_duration, SteadyNowNs());
        tried.Add(static_cast<size_t>(index));
        last_failure = outcome.failure;
        fresh_only = false;
        continue;
      }
      connection = std::move(outcome.connection);
    }
    ex.upstream = upstream.endpoint;

    // The request head (the body follows separately, never buffered whole).
    connection->deadline.After(upstream_timeout);
    auto [wec, wn] =
        co_await asio::async_write(connection->socket, asio::buffer(head_out_), kTuple);
    connection->deadline.Never();
    if (wec) {
      env_.upstreams.Release(std::move(connection), false);
      ex.note = "upstream: " + wec.message();
      if (retryable) {
        retry_after_drop();
        continue;
      }
      const Page page = UpstreamBadResponsePage(route.service_label);
      co_return co_await SendPage(page, info, keep_if_unsent, ex);
    }

    if (has_body) {
      if (expect_continue) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        deadline_.After(options.idle_timeout);
        auto [cec, cn] = co_await asio::async_write(client_, asio::buffer(kContinue), kTuple);
        deadline_.Never();
        if (cec) {
          env_.upstreams.Release(std::move(connection), false);
          co_return Next::kDrop;
        }
      }
      const Relay relay = co_await SendRequestBody(parser, *connection, limit, ex);
      if (relay != Relay::kDone) {
        env_.upstreams.Release(std::move(connection), false);
        if (relay == Relay::kTooLarge) {
          const Page page = BodyTooLargePage(static_cast<uint64_t>(limit));
          co_return co_await SendPage(page, info, false, ex);
        }
        if (relay == Relay::kOutputFailed) {
          const Page page = UpstreamBadResponsePage(route.service_label);
          co_return co_await SendPage(page, info, false, ex);
        }
        if (relay == Relay::kMalformed) {
          const Page page = BadRequestPage("the request body is malformed");
          co_return co_await SendPage(page, info, false, ex);
        }
        co_return Next::kDrop;
      }
    }

    // Interim 1xx answers (other than 101) are dropped; the final answer follows them.
    beast::error_code ec;
    for (;;) {
      response.emplace(std::piecewise_construct, std::make_tuple(),
                       std::make_tuple(FieldsAllocator()));
      response->header_limit(static_cast<std::uint32_t>(
          std::min<size_t>(std::max(options.max_header_bytes, kMinUpstreamHeaderBytes),
                           std::numeric_limits<std::uint32_t>::max())));
      response->body_limit(boost::none);
      if (info.head) response->skip(true);
      connection->deadline.After(upstream_timeout);
      std::tie(ec, std::ignore) = co_await http::async_read_header(
          connection->socket, connection->buffer, *response, kTuple);
      connection->deadline.Never();
      if (ec) break;
      const unsigned status = response->get().result_int();
      if (status < 100 || status >= 200 || status == 101) break;
    }
    if (!ec) break;
    const bool nothing_received = !response->got_some() && connection->buffer.size() == 0;
    const bool timed_out = connection->deadline.TimedOut();
    env_.upstreams.Release(std::move(connection), false);
    ex.note = timed_out ? "upstream: no answer in time" : "upstream: " + ec.message();
    if (timed_out) {
      const Page page = UpstreamResponseTimeoutPage(route.service_label,
                                                    static_cast<long>(upstream_timeout.count()));
      co_return co_await SendPage(page, info, client_keep_alive, ex);
    }
    if (retryable && nothing_received) {
      retry_after_drop();
      continue;
    }
    const Page page = UpstreamBadResponsePage(route.service_label);
    co_return co_await SendPage(page, info, client_keep_alive, ex);
  }

  auto& res = response->get();
  const unsigned status = res.result_int();
  if (status < 100 || status > 599) {
    // Beast accepts any three digits; a client must never see "001" or "999".
    env_.upstreams.Release(std::move(connection), false);
    ex.note = "upstream: invalid status code " + std::to_string(status);
    const Page page = UpstreamBadResponsePage(route.service_label);
    co_return co_await SendPage(page, info, client_keep_alive, ex);
  }
  ClientResponse answer;
  answer.client_version = info.version;
  answer.request_id = request_id_;
  if (rewrite != nullptr) answer.extra = rewrite->headers;
  if (status == 101) {
    if (!upgrade) {
      env_.upstreams.Release(std::move(connection), false);
      ex.note = "upstream: 101 without an upgrade request";
      const Page page = UpstreamBadResponsePage(route.service_label);
      co_return co_await SendPage(page, info, false, ex);
    }
    answer.upgrade = true;
    WriteClientResponseHead(res, answer, &head_out_);
    ex.status = 101;
    deadline_.After(options.idle_timeout);
    auto [ec, n] = co_await asio::async_write(client_, asio::buffer(head_out_), kTuple);
    deadline_.Never();
    if (!ec) co_await Tunnel(*connection);
    env_.upstreams.Release(std::move(connection), false);
    co_return Next::kDrop;
  }

  BodyFraming in = BodyFraming::kNone;
  uint64_t length = 0;
  if (!response->is_done()) {
    if (response->chunked()) {
      in = BodyFraming::kChunked;
    } else if (response->content_length()) {
      in = BodyFraming::kLength;
      length = *response->content_length();
    } else {
      in = BodyFraming::kCloseDelimited;
    }
  }
  bool keep_alive = client_keep_alive;
  BodyFraming out = in;
  if (in == BodyFraming::kChunked || in == BodyFraming::kCloseDelimited) {
    // HTTP/1.0 clients know no chunked encoding: they get the body raw, ended by closing.
    // HTTP/1.1 clients get it chunked, so their connection lives on.
    if (info.version < 11) {
      out = BodyFraming::kCloseDelimited;
      keep_alive = false;
    } else {
      out = BodyFraming::kChunked;
    }
  }
  if (Draining()) keep_alive = false;
  answer.keep_alive = keep_alive;
  answer.framing = out;
  answer.length = length;
  WriteClientResponseHead(res, answer, &head_out_);
  ex.status = status;

  Relay relay = Relay::kDone;
  if (in == BodyFraming::kNone ||
      (in == BodyFraming::kLength && connection->buffer.size() >= length)) {
    // The whole answer is at hand (the common small response): one write, here. The
    // replica is done with this request, so it stops counting as busy before the client
    // can see the answer and send its next request.
    in_flight.Set(nullptr);
    const size_t have = static_cast<size_t>(length);
    const std::array<asio::const_buffer, 2> pieces{
        asio::buffer(head_out_), asio::buffer(connection->buffer.data().data(), have)};
    deadline_.After(options.idle_timeout);
    auto [ec, n] = co_await asio::async_write(client_, pieces, kTuple);
    deadline_.Never();
    if (ec) {
      ex.note = "client: " + ec.message();
      relay = Relay::kOutputFailed;
    } else {
      connection->buffer.consume(have);
      ex.bytes_out += have;
    }
  } else {
    relay = co_await SendResponseBody(*response, *connection, in, out, length, ex);
  }
  if (relay != Relay::kDone) {
    // The status line is out already: all that is left is to cut the connection, which
    // tells the client the body is incomplete.
    env_.upstreams.Release(std::move(connection), false);
    co_return Next::kDrop;
  }
  const bool reusable = !upgrade && in != BodyFraming::kCloseDelimited && response->keep_alive();
  env_.upstreams.Release(std::move(connection), reusable);
  co_return keep_alive ? Next::kKeepAlive : Next::kClose;
}

template <class Stream>
Task<Relay> Connection<Stream>::SendRequestBody(RequestParser& parser, UpstreamConnection& upstream,
                                                int64_t limit, Exchange& ex) {
  const auto& options = env_.options;
  char* buf = RelayBuffer();
  if (!parser.chunked()) {
    // Known length: raw bytes, first what the header read already buffered.
    uint64_t remaining = parser.content_length().value_or(0);
    while (remaining > 0) {
      size_t n;
      if (buffer_.size() > 0) {
        n = static_cast<size_t>(std::min<uint64_t>(buffer_.size(), remaining));
        std::memcpy(buf, buffer_.data().data(), n);
        buffer_.consume(n);
      } else {
        deadline_.After(options.idle_timeout);
        auto [ec, got] = co_await client_.async_read_some(
            asio::buffer(buf,
                         static_cast<size_t>(std::min<uint64_t>(kRelayBufferBytes, remaining))),
            kTuple);
        deadline_.Never();
        if (ec) {
          ex.note = "client: " + ec.message();
          co_return Relay::kInputFailed;
        }
        n = got;
      }
      remaining -= n;
      ex.bytes_in += n;
      upstream.deadline.After(options.upstream_response_timeout);
      auto [wec, wn] = co_await asio::async_write(upstream.socket, asio::buffer(buf, n), kTuple);
      upstream.deadline.Never();
      if (wec) {
        ex.note = "upstream: " + wec.message();
        co_return Relay::kOutputFailed;
      }
    }
    co_return Relay::kDone;
  }
  // Chunked: decoded by the parser (which checks the framing), sent re-chunked.
  while (!parser.is_done()) {
    auto& body = parser.get().body();
    body.data = buf;
    body.size = kRelayBufferBytes;
    deadline_.After(options.idle_timeout);
    auto [ec, n] = co_await http::async_read_some(client_, buffer_, parser, kTuple);
    deadline_.Never();
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      ex.note = "client: " + ec.message();
      co_return IsMalformed(ec) ? Relay::kMalformed : Relay::kInputFailed;
    }
    const size_t got = kRelayBufferBytes - body.size;
    ex.bytes_in += got;
    if (limit >= 0 && ex.bytes_in > static_cast<uint64_t>(limit)) {
      ex.note = "request body over the route's limit";
      co_return Relay::kTooLarge;
    }
    const bool done = parser.is_done();
    if (got == 0 && !done) continue;
    char size_line[24];
    const size_t size_len = got == 0 ? 0 : ChunkSizeLine(got, size_line);
    const std::array<asio::const_buffer, 4> pieces{
        asio::buffer(size_line, size_len), asio::buffer(buf, got),
        asio::const_buffer("\r\n", got == 0 ? 0 : 2),
        asio::buffer(kLastChunk.data(), done ? kLastChunk.size() : 0)};
    upstream.deadline.After(options.upstream_response_timeout);
    auto [wec, wn] = co_await asio::async_write(upstream.socket, pieces, kTuple);
    upstream.deadline.Never();
    if (wec) {
      ex.note = "upstream: " + wec.message();
      co_return Relay::kOutputFailed;
    }
  }
  co_return Relay::kDone;
}

template <class Stream>
Task<Relay> Connection<Stream>::SendResponseBody(ResponseParser& parser,
                                                 UpstreamConnection& upstream, BodyFraming in,
                                                 BodyFraming out, uint64_t length, Exchange& ex) {
  const auto& options = env_.options;
  const auto client_timeout = options.idle_timeout;
  const auto upstream_timeout = options.upstream_response_timeout;
  if (in == BodyFraming::kNone) {
    deadline_.After(client_timeout);
    auto [ec, n] = co_await asio::async_write(client_, asio::buffer(head_out_), kTuple);
    deadline_.Never();
    co_return ec ? Relay::kOutputFailed : Relay::kDone;
  }
  if (in == BodyFraming::kLength) {
    // The head goes out together with whatever part of the body is already buffered (for
    // small answers: all of it, one write).
    uint64_t remaining = length;
    const size_t have = static_cast<size_t>(std::min<uint64_t>(upstream.buffer.size(), remaining));
    const std::array<asio::const_buffer, 2> first{
        asio::buffer(head_out_), asio::buffer(upstream.buffer.data().data(), have)};
    deadline_.After(client_timeout);
    auto [ec, n] = co_await asio::async_write(client_, first, kTuple);
    deadline_.Never();
    if (ec) {
      ex.note = "client: " + ec.message();
      co_return Relay::kOutputFailed;
    }
    upstream.buffer.consume(have);
    remaining -= have;
    ex.bytes_out += have;
    if (remaining == 0) co_return Relay::kDone;
    char* buf = RelayBuffer();
    while (remaining > 0) {
      upstream.deadline.After(upstream_timeout);
      auto [rec, got] = co_await upstream.socket.async_read_some(
          asio::buffer(buf, static_cast<size_t>(std::min<uint64_t>(kRelayBufferBytes, remaining))),
          kTuple);
      upstream.deadline.Never();
      if (rec) {
        ex.note = "upstream: " + rec.message();
        co_return Relay::kInputFailed;
      }
      deadline_.After(client_timeout);
      auto [wec, wn] = co_await asio::async_write(client_, asio::buffer(buf, got), kTuple);
      deadline_.Never();
      if (wec) {
        ex.note = "client: " + wec.message();
        co_return Relay::kOutputFailed;
      }
      remaining -= got;
      ex.bytes_out += got;
    }
    co_return Relay::kDone;
  }

  // Chunked or close-delimited: the head goes out at once (a stream may take its time),
  // then every piece as soon as it arrives, so Server-Sent Events are not held back.
  deadline_.After(client_timeout);
  auto [hec, hn] = co_await asio::async_write(client_, asio::buffer(head_out_), kTuple);
  deadline_.Never();
  if (hec) {
    ex.note = "client: " + hec.message();
    co_return Relay::kOutputFailed;
  }
  char* buf = RelayBuffer();
  const bool chunk = out == BodyFraming::kChunked;
  bool done = false;
  while (!done) {
    size_t got = 0;
    if (in == BodyFraming::kChunked) {
      auto& body = parser.get().body();
      body.data = buf;
      body.size = kRelayBufferBytes;
      upstream.deadline.After(upstream_timeout);
      auto [ec, n] =
          co_await http::async_read_some(upstream.socket, upstream.buffer, parser, kTuple);
      upstream.deadline.Never();
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        ex.note = "upstream: " + ec.message();
        co_return Relay::kInputFailed;
      }
      got = kRelayBufferBytes - body.size;
      done = parser.is_done();
    } else if (upstream.buffer.size() > 0) {
      got = std::min(upstream.buffer.size(), kRelayBufferBytes);
      std::memcpy(buf, upstream.buffer.data().data(), got);
      upstream.buffer.consume(got);
    } else {
      upstream.deadline.After(upstream_timeout);
      auto [ec, n] =
          co_await upstream.socket.async_read_some(asio::buffer(buf, kRelayBufferBytes), kTuple);
      upstream.deadline.Never();
      if (ec == asio::error::eof) {
        done = true;
      } else if (ec) {
        ex.note = "upstream: " + ec.message();
        co_return Relay::kInputFailed;
      }
      got = n;
    }
    if (got == 0 && !(done && chunk)) continue;
    char size_line[24];
    const size_t size_len = chunk && got != 0 ? ChunkSizeLine(got, size_line) : 0;
    const std::array<asio::const_buffer, 4> pieces{
        asio::buffer(size_line, size_len), asio::buffer(buf, got),
        asio::const_buffer("\r\n", chunk && got != 0 ? 2 : 0),
        asio::buffer(kLastChunk.data(), chunk && done ? kLastChunk.size() : 0)};
    deadline_.After(client_timeout);
    auto [wec, wn] = co_await asio::async_write(client_, pieces, kTuple);
    deadline_.Never();
    if (wec) {
      ex.note = "client: " + wec.message();
      co_return Relay::kOutputFailed;
    }
    ex.bytes_out += got;
  }
  co_return Relay::kDone;
}

template <class Stream>
Task<void> Connection<Stream>::Tunnel(UpstreamConnection& upstream) {
  // Timeouts of the HTTP phase stop here; the tunnel has its own inactivity watchdog.
  deadline_.Never();
  upstream.deadline.Never();
  // Bytes read past either header already belong to the new protocol.
  if (buffer_.size() > 0) {
    auto [ec, n] = co_await asio::async_write(upstream.socket, buffer_.data(), kTuple);
    if (ec) co_return;
    buffer_.consume(buffer_.size());
  }
  if (upstream.buffer.size() > 0) {
    auto [ec, n] = co_await asio::async_write(client_, upstream.buffer.data(), kTuple);
    if (ec) co_return;
    upstream.buffer.consume(upstream.buffer.size());
  }
  // Two buffers, one per direction, for as long as the tunnel lives.
  char* up_buf = RelayBuffer();
  auto down = env_.buffers.Take();
  TunnelState state(co_await asio::this_coro::executor);
  using namespace asio::experimental::awaitable_operators;
  co_await (Pump(client_, upstream.socket, state, up_buf, kRelayBufferBytes) &&
            Pump(upstream.socket, client_, state, down.get(), kRelayBufferBytes) &&
            Watchdog(client_, upstream.socket, state, env_.options.upstream_response_timeout));
  env_.buffers.Give(std::move(down));
}

template <class Stream>
Task<Next> Connection<Stream>::ServeStatic(RequestParser& parser, const CompiledRoute& route,
                                           const RequestInfo& info, bool keep_alive, Exchange& ex,
                                           std::string_view target, int hops) {
  auto& req = parser.get();
  // Local answers leave a request body unread: the connection cannot be reused then.
  const bool local_keep_alive = keep_alive && parser.is_done();
  const bool get_or_head = req.method() == http::verb::get || req.method() == http::verb::head;
  StaticAnswer answer = route.site->Resolve(get_or_head, target);
  const HeaderList* headers = answer.headers.empty() ? nullptr : &answer.headers;
  switch (answer.kind) {
    case StaticAnswer::kFile:
      co_return co_await SendFile(parser, *route.site, answer, info, local_keep_alive, ex);
    case StaticAnswer::kRedirect: {
      const Page page{static_cast<http::status>(answer.status), "Moved to " + answer.location, ""};
      co_return co_await SendPage(page, info, local_keep_alive, ex, http::field::location,
                                  answer.location, headers);
    }
    case StaticAnswer::kBadPath: {
      const Page page = BadRequestPage(answer.reason);
      co_return co_await SendPage(page, info, local_keep_alive, ex, http::field::unknown, {},
                                  headers);
    }
    case StaticAnswer::kMethodNotAllowed: {
      const Page page = MethodNotAllowedPage(View(req.method_string()));
      co_return co_await SendPage(page, info, local_keep_alive, ex, http::field::allow, "GET, HEAD",
                                  headers);
    }
    case StaticAnswer::kRootMissing: {
      const Page page = StaticRootMissingPage(route.service_label);
      co_return co_await SendPage(page, info, local_keep_alive, ex);
    }
    case StaticAnswer::kNotFound: {
      const Page page = FileNotFoundPage(target.substr(0, target.find('?')));
      co_return co_await SendPage(page, info, local_keep_alive, ex, http::field::unknown, {},
                                  headers);
    }
    case StaticAnswer::kProxy:
      break;
  }

  // A rewrite to an absolute URL: served only when its host is a route of this edge.
  std::string_view authority;
  std::string path;
  const CompiledRoute* next = nullptr;
  if (SplitUrl(answer.url, &authority, &path)) {
    next = ex.routes->Find(NormalizeHost(authority), path);
  }
  if (next == nullptr) {
    ex.note = "rewrite to " + answer.url + " not proxied";
    const Page page = RewriteNotProxiedPage(
        route.service_label, authority.empty() ? std::string_view(answer.url) : authority);
    co_return co_await SendPage(page, info, local_keep_alive, ex, http::field::unknown, {},
                                headers);
  }
  if (next->is_static()) {
    if (hops >= 2) {
      const Page page = RewriteLoopPage(route.service_label);
      co_return co_await SendPage(page, info, local_keep_alive, ex);
    }
    co_return co_await ServeStatic(parser, *next, info, keep_alive, ex, path, hops + 1);
  }
  if (next->upstreams.empty()) {
    const Page page = NoReplicaPage(next->service_label);
    co_return co_await SendPage(page, info, local_keep_alive, ex, http::field::unknown, {},
                                headers);
  }
  const RewriteTarget rewrite{path, authority, headers};
  co_return co_await Proxy(parser, *next, info, keep_alive, ex, &rewrite);
}

template <class Stream>
Task<Next> Connection<Stream>::SendFile(RequestParser& parser, const StaticSite& site,
                                        StaticAnswer& answer, const RequestInfo& info,
                                        bool keep_alive, Exchange& ex) {
  auto& req = parser.get();
  const StaticFile& identity = answer.file;
  const bool found = answer.status == 200;
  const std::string_view range_header =
      found && req.method() == http::verb::get ? View(req[http::field::range]) : std::string_view();
  // Ranges are always served from the file itself, never from a compressed variant, so
  // byte offsets mean the same to every client.
  const bool compressible = IsCompressible(identity.relative);
  StaticFile variant;
  std::string_view encoding;
  if (found && compressible && range_header.empty()) {
    const EncodingChoice choice = PreferredEncodings(View(req[http::field::accept_encoding]));
    for (int i = 0; i < choice.count; ++i) {
      if (site.OpenVariant(identity, choice.order[i], &variant)) {
        encoding = choice.order[i];
        break;
      }
    }
  }
  const StaticFile& rep = variant.open() ? variant : identity;
  const ETagText tag = FormatETag(rep.size, rep.mtime_ns, encoding);
  const std::string_view etag = tag.view();
  const int64_t mtime_s = rep.mtime_ns / 1'000'000'000;

  FileHead head;
  head.status = answer.status;
  head.content_type = ContentTypeFor(identity.relative);
  head.content_length = rep.size;
  head.encoding = encoding;
  head.etag = etag;
  head.last_modified = mtime_s;
  head.cache_control = found ? CacheControlFor(identity.relative) : "no-store";
  head.vary = found && compressible;
  head.headers = answer.headers.empty() ? nullptr : &answer.headers;
  head.client_version = info.version;
  head.keep_alive = keep_alive && !Draining();
  head.request_id = request_id_;

  uint64_t offset = 0;
  uint64_t length = rep.size;
  std::string content_range;
  bool body = !info.head;
  if (found && NotModified(View(req[http::field::if_none_match]),
                           View(req[http::field::if_modified_since]), etag, mtime_s)) {
    head.status = 304;
    body = false;
  } else if (!range_header.empty() &&
             IfRangeAllows(View(req[http::field::if_range]), etag, mtime_s)) {
    const ByteRange range = ParseRange(range_header, rep.size);
    if (range.kind == ByteRange::kUnsatisfiable) {
      const std::string unsatisfied = "bytes */" + std::to_string(rep.size);
      const Page page = RangeNotSatisfiablePage(rep.size);
      co_return co_await SendPage(page, info, keep_alive, ex, http::field::content_range,
                                  unsatisfied, head.headers);
    }
    if (range.kind == ByteRange::kPartial) {
      offset = range.first;
      length = range.length;
      content_range = "bytes " + std::to_string(range.first) + "-" +
                      std::to_string(range.first + range.length - 1) + "/" +
                      std::to_string(rep.size);
      head.status = 206;
      head.content_length = length;
      head.content_range = content_range;
    }
  }
  WriteFileHead(head, &head_out_);
  ex.status = head.status;
  const Next after = head.keep_alive ? Next::kKeepAlive : Next::kClose;

  if (!body || length == 0) {
    deadline_.After(env_.options.idle_timeout);
    auto [ec, n] = co_await asio::async_write(client_, asio::buffer(head_out_), kTuple);
    deadline_.Never();
    co_return ec ? Next::kDrop : after;
  }
  if (length <= kRelayBufferBytes) {
    // Small files: head and body in one write (one TCP segment for most).
    char* buf = RelayBuffer();
    size_t have = 0;
    while (have < length) {
      const ssize_t got = ::pread(rep.fd, buf + have, static_cast<size_t>(length) - have,
                                  static_cast<off_t>(offset + have));
      if (got <= 0) break;
      have += static_cast<size_t>(got);
    }
    if (have < length) {
      ex.note = "file shrank while being sent";
      co_return Next::kDrop;  // nothing sent yet, but the answer would lie
    }
    const std::array<asio::const_buffer, 2> pieces{asio::buffer(head_out_),
                                                   asio::buffer(buf, have)};
    deadline_.After(env_.options.idle_timeout);
    auto [ec, n] = co_await asio::async_write(client_, pieces, kTuple);
    deadline_.Never();
    if (ec) co_return Next::kDrop;
    ex.bytes_out += have;
    co_return after;
  }
  deadline_.After(env_.options.idle_timeout);
  auto [ec, n] = co_await asio::async_write(client_, asio::buffer(head_out_), kTuple);
  deadline_.Never();
  if (ec) co_return Next::kDrop;
  const bool sent = co_await SendFileBody(rep.fd, offset, length, ex);
  co_return sent ? after : Next::kDrop;
}

template <class Stream>
Task<bool> Connection<Stream>::SendFileBody(int fd, uint64_t offset, uint64_t length,
                                            Exchange& ex) {
  const auto timeout = env_.options.idle_timeout;
  uint64_t remaining = length;
  if constexpr (!kTls) {
    // Plain HTTP: the kernel copies from the page cache to the socket (sendfile), in
    // pieces, yielding to the worker's other connections between them.
    constexpr size_t kPiece = 1 << 20;
    Socket& socket = Lowest(client_);
    if (!socket.native_non_blocking()) {
      beast::error_code ec;
      socket.native_non_blocking(true, ec);  // once per connection (it is a system call)
      if (ec) co_return false;
    }
    off_t position = static_cast<off_t>(offset);
    while (remaining > 0) {
      const ssize_t sent = ::sendfile(socket.native_handle(), fd, &position,
                                      static_cast<size_t>(std::min<uint64_t>(remaining, kPiece)));
      if (sent > 0) {
        remaining -= static_cast<uint64_t>(sent);
        ex.bytes_out += static_cast<uint64_t>(sent);
        if (remaining == 0) break;
        if (static_cast<size_t>(sent) < kPiece) continue;
      } else if (sent == 0) {
        ex.note = "file shrank while being sent";
        co_return false;
      } else if (errno == EINTR) {
        continue;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        ex.note = std::string("client: ") + std::strerror(errno);
        co_return false;
      }
      // The socket is full (or a piece went out whole): wait until it takes more.
      deadline_.After(timeout);
      auto [wec] = co_await socket.async_wait(tcp::socket::wait_write, kTuple);
      deadline_.Never();
      if (wec) {
        ex.note = "client: " + wec.message();
        co_return false;
      }
    }
    co_return true;
  } else {
    // TLS: the bytes are encrypted in user space, so they are read, in relay-buffer
    // pieces (memory stays bounded for any file size).
    char* buf = RelayBuffer();
    while (remaining > 0) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, kRelayBufferBytes));
      const ssize_t got = ::pread(fd, buf, want, static_cast<off_t>(offset));
      if (got <= 0) {
        ex.note = "file shrank while being sent";
        co_return false;
      }
      deadline_.After(timeout);
      auto [wec, wn] =
          co_await asio::async_write(client_, asio::buffer(buf, static_cast<size_t>(got)), kTuple);
      deadline_.Never();
      if (wec) co_return false;
      offset += static_cast<uint64_t>(got);
      remaining -= static_cast<uint64_t>(got);
      ex.bytes_out += static_cast<uint64_t>(got);
    }
    co_return true;
  }
}

template <class Stream>
Task<Next> Connection<Stream>::SendPage(const Page& page, const RequestInfo& info, bool keep_alive,
                                        Exchange& ex, http::field extra_field,
                                        std::string_view extra_value, const HeaderList* headers) {
  keep_alive = keep_alive && !Draining();
  http::response<http::string_body> res{page.status, 11};
  res.set(http::field::content_type, PageContentType(info.html));
  res.set(http::field::cache_control, "no-store");
  if (extra_field != http::field::unknown) res.set(extra_field, extra_value);
  if (headers != nullptr) {
    for (const auto& [name, value] : *headers) res.set(name, value);
  }
  res.set("X-Request-Id", request_id_);
  res.body() = RenderPage(page, info.html);
  res.prepare_payload();
  SetClientConnection(res, info.version, keep_alive);
  ex.status = static_cast<unsigned>(page.status);
  if (ex.note.empty() && page.status != http::status::ok) ex.note = page.headline;
  http::response_serializer<http::string_body> serializer{res};
  deadline_.After(env_.options.idle_timeout);
  beast::error_code ec;
  if (info.head) {
    std::tie(ec, std::ignore) = co_await http::async_write_header(client_, serializer, kTuple);
  } else {
    std::tie(ec, std::ignore) = co_await http::async_write(client_, serializer, kTuple);
    ex.bytes_out += res.body().size();
  }
  deadline_.Never();
  if (ec) co_return Next::kDrop;
  co_return keep_alive ? Next::kKeepAlive : Next::kClose;
}

template <class Stream>
Task<Next> Connection<Stream>::SendText(http::status status, std::string_view body,
                                        const RequestInfo& info, bool keep_alive, Exchange& ex) {
  keep_alive = keep_alive && !Draining();
  http::response<http::string_body> res{status, 11};
  res.set(http::field::content_type, "text/plain");
  res.set(http::field::cache_control, "no-store");
  res.set("X-Request-Id", request_id_);
  res.body().assign(body);
  res.prepare_payload();
  SetClientConnection(res, info.version, keep_alive);
  ex.status = static_cast<unsigned>(status);
  http::response_serializer<http::string_body> serializer{res};
  deadline_.After(env_.options.idle_timeout);
  beast::error_code ec;
  if (info.head) {
    std::tie(ec, std::ignore) = co_await http::async_write_header(client_, serializer, kTuple);
  } else {
    std::tie(ec, std::ignore) = co_await http::async_write(client_, serializer, kTuple);
    ex.bytes_out += body.size();
  }
  deadline_.Never();
  if (ec) co_return Next::kDrop;
  co_return keep_alive ? Next::kKeepAlive : Next::kClose;
}

template <class Stream>
Task<Next> Connection<Stream>::SendFailure(ConnectFailure failure, const CompiledRoute& route,
                                           const RequestInfo& info, bool keep_alive, Exchange& ex) {
  // Pages are named locals, never temporaries inside a co_await expression: GCC 12
  // mishandles non-trivial temporaries there (seen as a bad free under ASan).
  auto make = [&]() -> Page {
    switch (failure) {
      case ConnectFailure::kTimeout:
        return UpstreamConnectTimeoutPage(
            route.service_label, static_cast<long>(env_.options.upstream_connect_timeout.count()));
      case ConnectFailure::kNoUpstreams:
        return NoReplicaPage(route.service_label);
      case ConnectFailure::kDropped:
        return UpstreamBadResponsePage(route.service_label);
      default:
        return UpstreamRefusedPage(route.service_label);
    }
  };
  const Page page = make();
  co_return co_await SendPage(page, info, keep_alive, ex);
}

template <class Stream>
Task<void> Connection<Stream>::Close(bool linger) {
  ReturnRelayBuffer();
  beast::error_code ec;
  if constexpr (kTls) {
    // Send close_notify without waiting for the client's (as nginx does).
    SSL_set_shutdown(client_.native_handle(), SSL_RECEIVED_SHUTDOWN);
    deadline_.After(std::chrono::seconds(1));
    std::tie(ec) = co_await client_.async_shutdown(kTuple);
    deadline_.Never();
    ec = {};
  }
  Socket& socket = Lowest(client_);
  socket.shutdown(tcp::socket::shutdown_send, ec);
  if (linger && !ec) {
    // Drain at the TCP level (the TLS session is over).
    char drain[4096];
    const auto deadline = Clock::now() + kLingerTime;
    size_t drained = 0;
    while (drained < kLingerMaxBytes) {
      deadline_.At(deadline);
      auto [rec, n] = co_await Lowest(client_).async_read_some(asio::buffer(drain), kTuple);
      deadline_.Never();
      if (rec) break;
      drained += n;
    }
  }
  Lowest(client_).close(ec);
}

template <class Stream>
void Connection<Stream>::Record(const Exchange& ex) {
  const bool stats = ex.route != nullptr && ex.route->stats != nullptr;
  if (!stats && !env_.options.access_log) return;
  const auto elapsed = Clock::now() - ex.start;
  if (stats && ex.status != 0) {
    ex.route->stats->Record(
        env_.worker_index, ex.status, ex.bytes_in, ex.bytes_out,
        static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()));
  }
  if (!env_.options.access_log) return;
  AccessLogEntry entry;
  entry.time = std::chrono::system_clock::now() -
               std::chrono::duration_cast<std::chrono::system_clock::duration>(elapsed);
  entry.request_id = request_id_;
  entry.client_ip = client_ip_;
  entry.method = ex.method;
  entry.host = host_;
  entry.path = ex.target;
  entry.status = ex.status;
  entry.bytes_in = ex.bytes_in;
  entry.bytes_out = ex.bytes_out;
  entry.duration_ms = std::chrono::duration<double, std::milli>(elapsed).count();
  if (ex.upstream) entry.upstream = Describe(*ex.upstream);
  if (ex.route != nullptr) {
    entry.route = ex.route->key;
    entry.service = ex.route->service_label;
  }
  entry.tls = kTls;
  entry.note = ex.note;
  env_.options.access_log(entry);
}

std::string ClientIp(const Socket& socket) {
  beast::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  auto address = remote.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

}  // namespace

Task<void> ServeConnection(ConnectionEnv& env, Socket socket) {
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  std::string ip = ClientIp(socket);
  Connection<PlainStream> connection(env, std::move(socket), std::move(ip));
  co_await connection.Run();
}

Task<void> ServeTlsConnection(ConnectionEnv& env, Socket socket, asio::ssl::context& sni_context) {
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  std::string ip = ClientIp(socket);
  // Keeps the context the SNI callback chose alive as long as the connection.
  std::shared_ptr<asio::ssl::context> chosen;
  Connection<TlsStream> connection(env, TlsStream(std::move(socket), sni_context), std::move(ip));
  TlsStream& stream = connection.stream();
  SetChosenContextHolder(stream.native_handle(), &chosen);
  connection.deadline().After(env.options.header_timeout);
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
  if (hec) {
    spdlog::debug("edge: TLS handshake failed: {}", hec.message());
    co_return;
  }
  co_await connection.Run();
}

}  // namespace slipway::proxy
