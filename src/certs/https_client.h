#pragma once

// Internal to src/certs: a blocking HTTPS/1.1 client (Beast over asio ssl, one request
// per connection, each on its own io_context) for talking to an ACME server.
//
// Thread-safety: one thread at a time per client.

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"

namespace slipway::certs_internal {

struct HttpsResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lowercase names; repeats joined by ", "
  std::string body;
  std::string Header(const std::string& lowercase_name) const {
    auto it = headers.find(lowercase_name);
    return it == headers.end() ? "" : it->second;
  }
};

// "https://host[:port]/path?q" → parts ("443" when no port). kInvalidArgument otherwise.
Status ParseHttpsUrl(const std::string& url, std::string* host, std::string* port,
                     std::string* target);

class HttpsClient {
 public:
  // Verifies servers against `ca_bundle` (PEM file), or the system store when empty.
  static Result<std::unique_ptr<HttpsClient>> Create(const std::string& ca_bundle);
  ~HttpsClient();

  // Errors: kInvalidArgument for a bad URL, kUnavailable for DNS/connect/TLS/IO failures
  // (naming the host), kDeadlineExceeded when `timeout` passes, kResourceExhausted for a
  // body over 16 MiB.
  Result<HttpsResponse> Call(const std::string& method, const std::string& url,
                             const std::string& body, const std::string& content_type,
                             std::chrono::milliseconds timeout);

 private:
  explicit HttpsClient(std::unique_ptr<boost::asio::ssl::context> context);
  std::unique_ptr<boost::asio::ssl::context> context_;
};

}  // namespace slipway::certs_internal
