#include "certs/https_client.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "certs/openssl_util.h"

namespace slipway::certs_internal {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr size_t kMaxBody = 16 << 20;

// Everything one exchange touches; lives on Call()'s stack until the io_context is done.
struct Exchange {
  asio::io_context ioc;
  tcp::resolver resolver{ioc};
  beast::ssl_stream<beast::tcp_stream> stream;
  std::string host, port, target, method, body, content_type;
  Status status;
  HttpsResponse response;
  bool timed_out = false;
  bool done = false;

  explicit Exchange(ssl::context& ctx) : stream(ioc, ctx) {}
};

asio::awaitable<void> Run(Exchange& x) {
  beast::error_code ec;
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  const bool v6 = x.host.find(':') != std::string::npos;
  const std::string where = (v6 ? "[" + x.host + "]" : x.host) + ":" + x.port;
  auto endpoints = co_await x.resolver.async_resolve(x.host, x.port, token);
  if (ec) {
    x.status = Unavailable("cannot resolve " + x.host + ": " + ec.message());
    co_return;
  }
  co_await beast::get_lowest_layer(x.stream).async_connect(endpoints, token);
  if (ec) {
    x.status = Unavailable("cannot connect to " + where + ": " + ec.message());
    co_return;
  }
  if (SSL_set_tlsext_host_name(x.stream.native_handle(), x.host.c_str()) != 1) {
    x.status = Internal("cannot set the TLS server name " + x.host + ": " + OpensslError());
    co_return;
  }
  x.stream.set_verify_mode(ssl::verify_peer);
  x.stream.set_verify_callback(ssl::host_name_verification(x.host));
  co_await x.stream.async_handshake(ssl::stream_base::client, token);
  if (ec) {
    long verify = SSL_get_verify_result(x.stream.native_handle());
    std::string why = verify != X509_V_OK ? X509_verify_cert_error_string(verify) : ec.message();
    x.status = Unavailable("TLS handshake with " + where + " failed: " + why +
                           (verify != X509_V_OK ? " (is the CA bundle right?)" : ""));
    co_return;
  }
  http::verb verb = http::string_to_verb(x.method);
  http::request<http::string_body> req{verb, x.target, 11};
  req.set(http::field::host, x.port == "443" ? where.substr(0, where.rfind(':')) : where);
  req.set(http::field::user_agent, "slipway-acme/1");
  req.set(http::field::accept, "application/json, application/pem-certificate-chain, */*");
  if (!x.content_type.empty()) req.set(http::field::content_type, x.content_type);
  req.body() = x.body;
  if (verb == http::verb::post || !x.body.empty()) req.prepare_payload();
  co_await http::async_write(x.stream, req, token);
  if (ec) {
    x.status = Unavailable("cannot send to " + where + ": " + ec.message());
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  parser.skip(verb == http::verb::head);
  co_await http::async_read(x.stream, buffer, parser, token);
  if (ec == http::error::body_limit) {
    x.status = ResourceExhausted("response from " + where + " is larger than 16 MiB");
    co_return;
  }
  if (ec) {
    x.status = Unavailable("cannot read the response from " + where + ": " + ec.message());
    co_return;
  }
  auto& res = parser.get();
  x.response.status = static_cast<int>(res.result_int());
  for (const auto& field : res) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string& slot = x.response.headers[name];
    slot += (slot.empty() ? "" : ", ") + std::string(field.value());
  }
  x.response.body = std::move(res.body());
  // No close_notify exchange: one request per connection, and the body is complete.
  beast::get_lowest_layer(x.stream).socket().close(ec);
}

}  // namespace

Status ParseHttpsUrl(const std::string& url, std::string* host, std::string* port,
                     std::string* target) {
  const std::string scheme = "https://";
  if (url.rfind(scheme, 0) != 0) {
    return InvalidArgument("\"" + url + "\" is not an https:// URL");
  }
  std::string rest = url.substr(scheme.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  *target = slash == std::string::npos ? "/" : rest.substr(slash);
  *port = "443";
  if (!authority.empty() && authority.front() == '[') {  // [v6]:port
    size_t close = authority.find(']');
    if (close == std::string::npos) return InvalidArgument("\"" + url + "\": bad IPv6 host");
    *host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') {
      *port = authority.substr(close + 2);
    }
  } else {
    size_t colon = authority.rfind(':');
    *host = authority.substr(0, colon);
    if (colon != std::string::npos) *port = authority.substr(colon + 1);
  }
  if (host->empty() || port->empty() ||
      !std::all_of(port->begin(), port->end(), [](unsigned char c) { return std::isdigit(c); })) {
    return InvalidArgument("\"" + url + "\" has no valid host and port");
  }
  return Status::Ok();
}

HttpsClient::HttpsClient(std::unique_ptr<ssl::context> context) : context_(std::move(context)) {}
HttpsClient::~HttpsClient() = default;

Result<std::unique_ptr<HttpsClient>> HttpsClient::Create(const std::string& ca_bundle) {
  std::unique_ptr<ssl::context> context;
  try {
    context = std::make_unique<ssl::context>(ssl::context::tls_client);
  } catch (const std::exception& e) {
    return Internal(std::string("cannot create a TLS client context: ") + e.what());
  }
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  if (ca_bundle.empty()) {
    context->set_default_verify_paths(ec);
  } else {
    context->load_verify_file(ca_bundle, ec);
  }
  if (ec) {
    OpensslError();
    return InvalidArgument("cannot load the CA bundle " +
                           (ca_bundle.empty() ? std::string("(system store)") : ca_bundle) + ": " +
                           ec.message());
  }
  return std::unique_ptr<HttpsClient>(new HttpsClient(std::move(context)));
}

Result<HttpsResponse> HttpsClient::Call(const std::string& method, const std::string& url,
                                        const std::string& body, const std::string& content_type,
                                        std::chrono::milliseconds timeout) {
  Exchange x(*context_);
  RETURN_IF_ERROR(ParseHttpsUrl(url, &x.host, &x.port, &x.target));
  x.method = method;
  x.body = body;
  x.content_type = content_type;
  asio::steady_timer timer(x.ioc, timeout);
  timer.async_wait([&x](const boost::system::error_code& ec) {
    if (ec || x.done) return;
    x.timed_out = true;
    x.resolver.cancel();
    boost::system::error_code ignored;
    beast::get_lowest_layer(x.stream).socket().close(ignored);
  });
  asio::co_spawn(x.ioc, Run(x), [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        x.status = Internal(std::string("HTTPS request to ") + url + " failed: " + ex.what());
      }
    }
    x.done = true;
    timer.cancel();
  });
  x.ioc.run();
  if (x.timed_out) {
    return DeadlineExceeded(method + " " + url + " got no answer within " +
                            std::to_string(timeout.count() / 1000) + "s");
  }
  if (!x.status.ok()) return x.status;
  return std::move(x.response);
}

}  // namespace slipway::certs_internal
