// libFuzzer target: the edge's request path, end to end over real loopback sockets.
//
// Started once per process: an Edge on 127.0.0.1:0 (one thread, short timeouts, an 8 KiB
// header limit and a 64 KiB body limit so both are reachable, an access log), a backend on
// its own thread, and a routing table:
//
//   echo.fuzz            -> the backend (behaviour chosen by the request path, see Respond())
//   echo.fuzz/files      -> the static site (a path prefix on a proxied host)
//   echo.fuzz/small      -> the backend, bodies up to 16 bytes
//   *.wild.fuzz          -> the backend, least-connections
//   mixed.fuzz           -> a refusing port, then the backend (fail-over)
//   static.fuzz          -> a static site (fuzz_fixture.h), with a dot-file and symlinks out
//   missing.fuzz         -> a static root that does not exist
//   down.fuzz            -> a route with no upstreams (502)
//   refused.fuzz         -> only a refusing port (502)
//   secure.fuzz          -> redirect to https
//
// Each input is one client connection: its bytes are written as the request stream, the
// write side is shut down, and everything the edge answers is read until it closes.
//
// Besides ASan/UBSan, an input fails (aborts) when:
//  - an exception escapes a connection (the edge logs it at error level);
//  - the backend receives something it cannot parse as HTTP/1.1 (the edge broke framing),
//    a hop-by-hop field (Keep-Alive, TE, Trailer, Proxy-Connection, Connection tokens
//    other than upgrade/keep-alive/close), other than exactly one Host naming the route,
//    or a Transfer-Encoding other than "chunked" (edge.h: ambiguous framing is a 400);
//  - the client receives bytes that do not start with a parseable HTTP/1.1 response, a
//    file from outside the static root or a dot-file, or a hop-by-hop field the backend
//    sent;
//  - an access log line is not one JSON object.
// SLIPWAY_FUZZ_STRICT=1 adds a check the edge does not promise (a finding, not a crash):
// the backend gets the target in origin form (RFC 9112 section 3.2.1), never the
// absolute form whose authority the app might prefer over Host.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <thread>

#include "fuzz_fixture.h"
#include "proxy/edge.h"
#include "proxy/route_index.h"

namespace slipway::fuzz {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxHeaderBytes = 8 * 1024;
// The most the client keeps of an answer; the rest is dropped unread.
constexpr size_t kMaxResponseBytes = 8 * 1024 * 1024;
// A guard, not an expectation: the edge normally closes within milliseconds of the
// client's EOF.
constexpr int kClientTimeoutSeconds = 10;

bool g_strict = false;
std::string g_hop_marker;  // random per process, so no input can contain it

std::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsMalformed(beast::error_code ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

// An exception escaping a connection coroutine is logged at error level by the edge.
class ErrorSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (msg.level < spdlog::level::err) return;
    FuzzFail("the edge logged an error: " + std::string(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}
};

// ---------------------------------------------------------------------------------------
// The backend: HTTP/1.1 keep-alive on 127.0.0.1, one asio thread. What it answers depends
// on the path, so the fuzzer can reach each of the edge's response paths.

void CheckForwarded(const http::request<http::string_body>& req) {
  for (const char* name : {"keep-alive", "proxy-connection", "te", "trailer"}) {
    if (req.find(name) != req.end()) {
      FuzzFail(std::string("the hop-by-hop field ") + name + " reached the upstream");
    }
  }
  bool connection_upgrade = false;
  for (const auto& field : req) {
    if (field.name() != http::field::connection) continue;
    for (auto token : http::token_list(field.value())) {
      const std::string t = Lower(View(token));
      if (t == "upgrade") {
        connection_upgrade = true;
      } else if (t != "keep-alive" && t != "close") {
        FuzzFail("the client's Connection token \"" + t + "\" reached the upstream");
      }
    }
  }
  if (req.find(http::field::upgrade) != req.end() && !connection_upgrade) {
    FuzzFail("Upgrade reached the upstream without Connection: upgrade");
  }
  const auto hosts = req.count(http::field::host);
  if (hosts != 1) {
    FuzzFail("the upstream got " + std::to_string(hosts) + " Host fields");
  }
  const std::string host = proxy::NormalizeHost(View(req[http::field::host]));
  const bool wild = host.size() > 10 && host.compare(host.size() - 10, 10, ".wild.fuzz") == 0;
  if (host != "echo.fuzz" && host != "mixed.fuzz" && host != "secure.fuzz" && !wild) {
    FuzzFail("the upstream got Host \"" + host + "\", not a host routed to it");
  }
  auto te = req.find(http::field::transfer_encoding);
  if (te != req.end() && Lower(View(te->value())) != "chunked") {
    FuzzFail("the upstream got Transfer-Encoding \"" + std::string(View(te->value())) + "\"");
  }
  if (!g_strict) return;
  const std::string_view target = View(req.target());
  if (target != "*" && (target.empty() || target.front() != '/')) {
    FuzzFail("strict: the upstream got a target not in origin form: " + std::string(target));
  }
}

void CheckAccessLog(const AccessLogEntry& entry) {
  if (Skipped("access-log")) return;
  const std::string line = FormatAccessLogLine(entry);
  const auto doc = nlohmann::json::parse(line, nullptr, false);
  if (line.find('\n') != std::string::npos || doc.is_discarded() || !doc.is_object()) {
    FuzzFail("an access log line is not one JSON object: " + line);
  }
}

std::string Fixed(int status, std::string_view reason, std::string_view extra,
                  const std::string& body, bool head) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  out += "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  out += extra;
  out += "\r\n";
  if (!head) out += body;
  return out;
}

struct Answer {
  std::string bytes;
  bool close = false;   // close the connection after writing
  bool tunnel = false;  // then echo raw bytes until EOF
};

Answer Respond(const http::request<http::string_body>& req) {
  const std::string_view target = View(req.target());
  const std::string_view path = target.substr(0, target.find('?'));
  const bool head = req.method() == http::verb::head;
  const std::string echo =
      std::string(View(req.method_string())) + " " + std::string(target) + "\n" + req.body();
  auto starts = [&](std::string_view prefix) { return path.substr(0, prefix.size()) == prefix; };
  Answer a;
  if (starts("/ws") && req.find(http::field::upgrade) != req.end()) {
    a.bytes =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    a.tunnel = true;
  } else if (starts("/chunked")) {
    a.bytes = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    if (!head) a.bytes += "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n";
  } else if (starts("/eof")) {
    // No framing: the body ends when the backend closes.
    a.bytes = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
    if (!head) a.bytes += echo;
    a.close = true;
  } else if (starts("/continue")) {
    a.bytes = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" +
              Fixed(200, "OK", "", echo, head);
  } else if (starts("/bad")) {
    a.bytes = "HTTP/1.1 2OO Fine\r\n\r\n";
    a.close = true;
  } else if (starts("/close")) {
    a.close = true;
  } else if (starts("/truncated")) {
    a.bytes = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a little";
    a.close = true;
  } else if (starts("/big")) {
    a.bytes = Fixed(200, "OK", "", std::string(256 * 1024, 'x'), head);
  } else if (starts("/nobody")) {
    a.bytes = "HTTP/1.1 204 No Content\r\n\r\n";
  } else if (starts("/notmodified")) {
    a.bytes = "HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\n\r\n";
  } else if (starts("/hop")) {
    a.bytes = Fixed(200, "OK",
                    "Connection: X-Hop\r\nX-Hop: " + g_hop_marker + "\r\nKeep-Alive: timeout=5, " +
                        g_hop_marker + "\r\nProxy-Connection: " + g_hop_marker + "\r\n",
                    echo, head);
  } else if (starts("/raw-status/") && path.size() >= 15) {
    // Whatever status the input names; an interim one is followed by a final answer.
    std::string status(path.substr(12, 3));
    if (Skipped("status-digits") && status[0] == '0') status = "200";
    a.bytes = "HTTP/1.1 " + status + " Raw\r\nContent-Length: 0\r\n\r\n";
    if (path[12] == '1') a.bytes += Fixed(200, "OK", "", echo, head);
  } else if (starts("/switch")) {
    // 101 to a request that did not ask to upgrade.
    a.bytes = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n";
    a.close = true;
  } else {
    a.bytes = Fixed(200, "OK", "", echo, head);
  }
  if (!req.keep_alive()) a.close = true;
  return a;
}

class Backend {
 public:
  Backend() : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(ioc_, Accept(), Rethrow);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~Backend() {
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }

 private:
  static void Rethrow(std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      FuzzFail(std::string("the fuzz backend threw: ") + x.what());
    }
  }

  asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kTuple);
      if (ec) co_return;
      asio::co_spawn(ioc_, Serve(std::move(socket)), Rethrow);
    }
  }

  static asio::awaitable<void> Serve(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(1024 * 1024);
      parser.body_limit(16 * 1024 * 1024);
      stream.expires_after(30s);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
      if (ec) {
        if (IsMalformed(ec)) {
          FuzzFail("the edge forwarded a request the backend cannot parse: " + ec.message());
        }
        co_return;
      }
      const auto& req = parser.get();
      CheckForwarded(req);
      Answer answer = Respond(req);
      if (!answer.bytes.empty()) {
        auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(answer.bytes), kTuple);
        if (wec) co_return;
      }
      if (answer.tunnel) {
        stream.expires_never();
        auto& s = stream.socket();
        if (buffer.size() > 0) {
          auto [tec, tn] = co_await asio::async_write(s, buffer.data(), kTuple);
          if (tec) co_return;
        }
        char buf[4096];
        for (;;) {
          auto [rec, rn] = co_await s.async_read_some(asio::buffer(buf), kTuple);
          if (rec) break;
          auto [tec, tn] = co_await asio::async_write(s, asio::buffer(buf, rn), kTuple);
          if (tec) break;
        }
        answer.close = true;
      }
      if (answer.close) {
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream.close();
        co_return;
      }
    }
  }

  asio::io_context ioc_{1};
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread thread_;
};

// A port on 127.0.0.1 nothing listens on (bound, then closed).
int RefusingPort() {
  asio::io_context ioc;
  tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

struct World {
  StaticSite site;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Edge> edge;
};

World* g_world = nullptr;

void TearDown() {
  if (g_world == nullptr) return;
  if (g_world->edge) g_world->edge->Stop();
  g_world->backend.reset();
  RemoveStaticSite(g_world->site);
}

void SetUp() {
  signal(SIGPIPE, SIG_IGN);
  const char* strict = std::getenv("SLIPWAY_FUZZ_STRICT");
  g_strict = strict != nullptr && std::string_view(strict) == "1";
  std::random_device rd;
  g_hop_marker = "hop-marker-" + std::to_string(rd()) + std::to_string(rd());

  auto stderr_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  stderr_sink->set_level(spdlog::level::warn);
  auto logger = std::make_shared<spdlog::logger>(
      "fuzz", spdlog::sinks_init_list{stderr_sink, std::make_shared<ErrorSink>()});
  logger->set_level(spdlog::level::warn);
  spdlog::set_default_logger(logger);

  g_world = new World();  // lives until exit; TearDown() stops it first
  g_world->site = MakeStaticSite();
  g_world->backend = std::make_unique<Backend>();
  EdgeOptions options;
  options.listen_address = "127.0.0.1";
  options.port = 0;
  options.threads = 1;
  options.max_header_bytes = kMaxHeaderBytes;
  options.header_timeout = 2s;
  options.idle_timeout = 2s;
  options.upstream_connect_timeout = 1s;
  options.upstream_response_timeout = 3s;
  options.max_body_bytes = 64 * 1024;
  options.upstream_idle_timeout = 2s;
  options.eject_duration = std::chrono::milliseconds(50);
  options.access_log = CheckAccessLog;
  auto edge = Edge::Create(options);
  if (!edge.ok()) FuzzFail("cannot start the edge: " + edge.status().ToString());
  g_world->edge = std::move(edge).value();

  const int backend = g_world->backend->port();
  const int refused = RefusingPort();
  auto table = std::make_shared<RouteTable>();
  auto add = [&](std::string host, std::vector<int> ports, std::string static_root) -> Route& {
    Route r;
    r.host = std::move(host);
    r.service_label = "fuzz/" + r.host;
    for (int p : ports) r.upstreams.push_back(Upstream{"127.0.0.1", p});
    r.static_root = std::move(static_root);
    table->routes.push_back(std::move(r));
    return table->routes.back();
  };
  add("echo.fuzz", {backend}, "");
  add("echo.fuzz", {}, g_world->site.root).path_prefix = "/files";
  add("echo.fuzz", {backend}, "").path_prefix = "/small/";
  table->routes.back().max_body_bytes = 16;
  add("*.wild.fuzz", {backend, backend}, "").balance = Balance::kLeastConnections;
  add("mixed.fuzz", {refused, backend}, "");
  add("static.fuzz", {}, g_world->site.root);
  add("missing.fuzz", {}, g_world->site.base + "/no-such-root");
  add("down.fuzz", {}, "");
  add("refused.fuzz", {refused}, "");
  add("secure.fuzz", {backend}, "").redirect_to_https = true;
  g_world->edge->Swap(table);
  g_world->edge->Start();
  std::atexit(TearDown);
}

// A connected client socket. The client sends its FIN first, so each connection ends in
// TIME_WAIT on the client side: source addresses rotate over 127.0.0.2-254 so a long run
// does not use up the ephemeral ports of one address pair.
int ConnectClient() {
  static uint32_t next_source = 0;
  sockaddr_in edge{};
  edge.sin_family = AF_INET;
  edge.sin_port = htons(static_cast<uint16_t>(g_world->edge->port()));
  edge.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) FuzzFail(std::string("socket() failed: ") + std::strerror(errno));
    timeval tv{kClientTimeoutSeconds, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    sockaddr_in source{};
    source.sin_family = AF_INET;
    source.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + (next_source++ % 253));
    ::bind(fd, reinterpret_cast<sockaddr*>(&source), sizeof(source));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&edge), sizeof(edge)) == 0) return fd;
    const int err = errno;
    ::close(fd);
    // Out of local ports for a moment, or libFuzzer's timer signal (EINTR): the harness's
    // problem, not the edge's. Start over with a new socket.
    if ((err == EADDRNOTAVAIL || err == EADDRINUSE || err == EINTR) &&
        std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
      continue;
    }
    FuzzFail(std::string("cannot connect to the edge: ") + std::strerror(err) +
             (err == ETIMEDOUT || err == EINPROGRESS || err == EAGAIN
                  ? " (it stopped accepting connections for " +
                        std::to_string(kClientTimeoutSeconds) + " s)"
                  : ""));
  }
}

std::string Exchange(const uint8_t* data, size_t size) {
  const int fd = ConnectClient();
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  // Sockets with SO_RCVTIMEO/SO_SNDTIMEO are never restarted after a signal: libFuzzer's
  // timer (SIGALRM) interrupts them with EINTR, which is retried here.
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the edge closed early (it answered an error): read what it said
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[64 * 1024];
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(kClientTimeoutSeconds);
  while (out.size() < kMaxResponseBytes) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // Every timeout of this edge is at most 3 s: this is a hang. Reported rather than
        // failed, so a badly overloaded machine cannot fail the suite; libFuzzer's own
        // -timeout fails inputs that hang for good.
        std::fprintf(stderr,
                     "slipway-fuzz: warning: the edge kept a connection open %d s after the "
                     "client's EOF\n",
                     kClientTimeoutSeconds);
      }
      break;
    }
    out.append(buf, static_cast<size_t>(n));
    if (std::chrono::steady_clock::now() > deadline) break;
  }
  return out;
}

// The input with %-escapes decoded (leniently): what a path may turn into.
std::string Decoded(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// A marker in the answer only means a leak when the input did not carry it itself:
// libFuzzer learns the strings this harness compares against and mutates them in, and
// the edge and the backend echo parts of a request.
bool Leaked(const std::string& out, std::string_view input, std::string_view marker) {
  if (out.find(marker) == std::string::npos) return false;
  return input.find(marker) == std::string_view::npos &&
         Decoded(input).find(marker) == std::string::npos;
}

void CheckAnswer(std::string_view input, const std::string& out) {
  for (std::string_view secret : {kOutsideSecret, kDotfileSecret}) {
    if (Leaked(out, input, secret)) {
      FuzzFail("the edge served a file it must not: " + std::string(secret));
    }
  }
  if (Leaked(out, input, g_hop_marker)) {
    FuzzFail("a hop-by-hop field from the upstream reached the client");
  }
  if (!Skipped("static-redirect")) {
    // As with the markers: bodies and tunnels echo the input, so only a Location the input
    // did not contain itself counts.
    const std::string lower = Lower(out);
    const std::string lower_input = Lower(input);
    for (std::string_view bad : {"\r\nlocation: //", "\r\nlocation: /\\"}) {
      if (lower.find(bad) != std::string::npos && lower_input.find(bad) == std::string::npos) {
        FuzzFail("the edge redirects to another host (open redirect): \"" +
                 out.substr(0, std::min<size_t>(out.size(), 300)) + "\"");
      }
    }
  }
  if (out.empty()) return;
  if (out.compare(0, 9, "HTTP/1.1 ") != 0) {
    FuzzFail("the edge answered with something that is not HTTP/1.1: \"" +
             out.substr(0, std::min<size_t>(out.size(), 40)) + "\"");
  }
  http::response_parser<http::empty_body> parser;
  parser.eager(false);
  parser.skip(true);
  parser.header_limit(1024 * 1024);
  beast::error_code ec;
  parser.put(asio::buffer(out), ec);
  if (ec && ec != http::error::need_more && IsMalformed(ec)) {
    FuzzFail("the edge's answer does not parse (" + ec.message() + "): \"" +
             out.substr(0, std::min<size_t>(out.size(), 200)) + "\"");
  }
}

}  // namespace
}  // namespace slipway::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  slipway::fuzz::SetUp();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string out = slipway::fuzz::Exchange(data, size);
  slipway::fuzz::CheckAnswer(std::string_view(reinterpret_cast<const char*>(data), size), out);
  return 0;
}
