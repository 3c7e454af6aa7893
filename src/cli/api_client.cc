#include "cli/api_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>

#include "common/fs.h"
#include "common/http_client.h"

namespace slipway {

std::string SlipwayHome() {
  const char* home = std::getenv("SLIPWAY_HOME");
  if (home != nullptr && *home != '\0') return AbsolutePath(home);
  const char* user_home = std::getenv("HOME");
  return std::string(user_home ? user_home : "/root") + "/.slipway";
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Result<ApiClient> ApiClient::FromEnvironment() {
  ApiClient c;
  const char* url = std::getenv("SLIPWAY_URL");
  c.url_ = url != nullptr && *url != '\0' ? url : "http://127.0.0.1:7788";
  while (!c.url_.empty() && c.url_.back() == '/') c.url_.pop_back();
  RETURN_IF_ERROR(ParseHttpUrl(c.url_, &c.host_, &c.port_).WithContext("SLIPWAY_URL"));
  const char* token = std::getenv("SLIPWAY_TOKEN");
  if (token != nullptr && *token != '\0') {
    c.token_ = token;
    c.token_source_ = "SLIPWAY_TOKEN";
  } else {
    std::string path = SlipwayHome() + "/token";
    auto read = ReadFile(path);
    if (read.ok()) {
      c.token_ = *read;
      while (!c.token_.empty() && (c.token_.back() == '\n' || c.token_.back() == ' ')) {
        c.token_.pop_back();
      }
    }
    c.token_source_ = path;
  }
  return c;
}

Result<nlohmann::json> ApiClient::Get(const std::string& target, int timeout_ms) const {
  return Call("GET", target, "", "", timeout_ms);
}

Result<nlohmann::json> ApiClient::Post(const std::string& target, const std::string& body,
                                       const std::string& content_type, int timeout_ms) const {
  return Call("POST", target, body, content_type, timeout_ms);
}

Result<nlohmann::json> ApiClient::Delete(const std::string& target, int timeout_ms) const {
  return Call("DELETE", target, "", "", timeout_ms);
}

Result<nlohmann::json> ApiClient::Put(const std::string& target, const nlohmann::json& body,
                                      int timeout_ms) const {
  return Call("PUT", target, body.dump(), "application/json", timeout_ms);
}

Result<nlohmann::json> ApiClient::Call(const std::string& method, const std::string& target,
                                       const std::string& body, const std::string& content_type,
                                       int timeout_ms) const {
  HttpRequest req;
  req.method = method;
  req.host = host_;
  req.port = port_;
  req.target = target;
  req.body = body;
  req.timeout = std::chrono::milliseconds(timeout_ms);
  if (!token_.empty()) req.headers["Authorization"] = "Bearer " + token_;
  if (!content_type.empty()) req.headers["Content-Type"] = content_type;
  auto res = HttpCall(req);
  if (!res.ok()) {
    if (res.status().code() == StatusCode::kDeadlineExceeded) {
      return DeadlineExceeded("the Slipway daemon at " + url_ + " did not answer in time");
    }
    return Unavailable("cannot reach the Slipway daemon at " + url_ +
                       " (is `slipway server` running? set SLIPWAY_URL if it runs elsewhere)");
  }
  if (res->status >= 400) return ErrorOf(res->status, res->body);
  nlohmann::json body_json = nlohmann::json::parse(res->body, nullptr, false);
  if (body_json.is_discarded()) {
    return Internal("the daemon at " + url_ + " answered HTTP " + std::to_string(res->status) +
                    " with something that is not JSON");
  }
  return body_json;
}

Status ApiClient::ErrorOf(int http_status, const std::string& body) const {
  if (http_status == 401) {
    if (token_.empty()) {
      return Unauthenticated("no API token: " + token_source_ +
                             " does not exist; set SLIPWAY_TOKEN to the daemon's token");
    }
    return Unauthenticated("the Slipway daemon at " + url_ + " refused the API token from " +
                           token_source_ + "; use the token in the daemon's data dir");
  }
  nlohmann::json body_json = nlohmann::json::parse(body, nullptr, false);
  if (body_json.is_discarded()) {
    return Internal("the daemon at " + url_ + " answered HTTP " + std::to_string(http_status) +
                    " with something that is not JSON");
  }
  std::string message = body_json.value("error", "HTTP " + std::to_string(http_status));
  StatusCode code = StatusCode::kInternal;
  std::string code_name = body_json.value("code", "");
  for (int c = 0; c <= static_cast<int>(StatusCode::kInternal); ++c) {
    if (code_name == StatusCodeName(static_cast<StatusCode>(c))) code = static_cast<StatusCode>(c);
  }
  return Status(code, message);
}

Status ApiClient::PostStream(const std::string& target, const std::string& body,
                             const std::function<Status(std::string_view)>& on_body) const {
  namespace beast = boost::beast;
  namespace http = boost::beast::http;
  namespace asio = boost::asio;
  asio::io_context ioc;
  asio::ip::tcp::socket socket(ioc);
  beast::error_code ec;
  auto address = asio::ip::make_address(host_ == "localhost" ? "127.0.0.1" : host_, ec);
  if (!ec) socket.connect({address, static_cast<unsigned short>(port_)}, ec);
  const Status unreachable =
      Unavailable("cannot reach the Slipway daemon at " + url_ +
                  " (is `slipway server` running? set SLIPWAY_URL if it runs elsewhere)");
  if (ec) return unreachable;
  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, host_ + ":" + std::to_string(port_));
  req.set(http::field::user_agent, "slipway");
  req.set(http::field::content_type, "application/json");
  if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
  req.body() = body;
  req.prepare_payload();
  req.keep_alive(false);
  http::write(socket, req, ec);
  if (ec) return unreachable;

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  http::read_header(socket, buffer, parser, ec);
  if (ec) return unreachable;
  const int status = static_cast<int>(parser.get().result_int());
  std::string error_body;
  char chunk[16384];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    // read_some: hand over what came, not wait for the buffer to fill.
    http::read_some(socket, buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    const size_t got = sizeof(chunk) - parser.get().body().size;
    if (status >= 300) {
      if (error_body.size() < (1 << 20)) error_body.append(chunk, got);
    } else if (got > 0) {
      RETURN_IF_ERROR(on_body(std::string_view(chunk, got)));
    }
    if (ec) break;  // a cut stream: the caller's decoder tells it apart from an end
  }
  if (status >= 300) return ErrorOf(status, error_body);
  return Status::Ok();
}

}  // namespace slipway
