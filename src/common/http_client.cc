#include "common/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace slipway {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Status ParseHttpUrl(const std::string& url, std::string* host, int* port) {
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) {
    return InvalidArgument("\"" + url + "\" is not an http:// URL");
  }
  std::string rest = url.substr(prefix.size());
  auto slash = rest.find('/');
  if (slash != std::string::npos) rest = rest.substr(0, slash);
  auto colon = rest.rfind(':');
  *host = colon == std::string::npos ? rest : rest.substr(0, colon);
  *port = 80;
  if (colon != std::string::npos) {
    try {
      *port = std::stoi(rest.substr(colon + 1));
    } catch (...) {
      return InvalidArgument("\"" + url + "\" has no valid port");
    }
  }
  if (host->empty() || *port <= 0 || *port > 65535) {
    return InvalidArgument("\"" + url + "\" has no valid host and port");
  }
  return Status::Ok();
}

Result<HttpResponse> HttpCall(const HttpRequest& request, size_t max_body) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code failure;
  std::string failed_step;
  HttpResponse out;

  http::request<http::string_body> req{http::string_to_verb(request.method), request.target, 11};
  req.set(http::field::host, request.host + ":" + std::to_string(request.port));
  req.set(http::field::user_agent, "slipway");
  for (const auto& [k, v] : request.headers) req.set(k, v);
  req.body() = request.body;
  req.prepare_payload();
  req.keep_alive(false);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_body);
  parser.header_limit(64 * 1024);

  tcp::endpoint endpoint;
  beast::error_code addr_ec;
  auto address =
      asio::ip::make_address(request.host == "localhost" ? "127.0.0.1" : request.host, addr_ec);
  if (addr_ec) return InvalidArgument("cannot connect to host \"" + request.host + "\"");
  endpoint = tcp::endpoint(address, static_cast<unsigned short>(request.port));

  stream.expires_after(request.timeout);
  auto fail = [&](const char* step, beast::error_code ec) {
    failure = ec;
    failed_step = step;
  };
  stream.async_connect(endpoint, [&](beast::error_code ec) {
    if (ec) return fail("connect", ec);
    http::async_write(stream, req, [&](beast::error_code ec, size_t) {
      if (ec) return fail("send", ec);
      http::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) {
        if (ec) return fail("read", ec);
      });
    });
  });
  ioc.run();

  std::string where = request.host + ":" + std::to_string(request.port);
  if (failure) {
    if (failure == beast::error::timeout) {
      return DeadlineExceeded("no answer from " + where + " within " +
                              std::to_string(request.timeout.count()) + " ms");
    }
    if (failure == http::error::body_limit) {
      return ResourceExhausted("answer from " + where + " is larger than " +
                               std::to_string(max_body) + " bytes");
    }
    return Unavailable(failed_step + " to " + where + " failed: " + failure.message());
  }
  auto res = parser.release();
  out.status = static_cast<int>(res.result_int());
  for (const auto& field : res) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers[name] = std::string(field.value());
  }
  out.body = std::move(res.body());
  return out;
}

}  // namespace slipway
