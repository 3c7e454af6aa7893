#pragma once

// A small blocking HTTP/1.1 client over TCP, for the CLI talking to the control API
// and for health checks talking to replicas. One request per connection.
//
// Thread-safety: free functions, safe from any thread.

#include <chrono>
#include <map>
#include <string>

#include "common/status.h"

namespace slipway {

struct HttpRequest {
  std::string method = "GET";
  std::string host = "127.0.0.1";  // where to connect
  int port = 80;
  std::string target = "/";
  std::map<std::string, std::string> headers;  // "Host" defaults to host:port
  std::string body;
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};  // whole exchange
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};

// Errors: kUnavailable when the connection is refused or reset, kDeadlineExceeded on
// timeout, kResourceExhausted when the response body passes `max_body` bytes.
Result<HttpResponse> HttpCall(const HttpRequest& request, size_t max_body = 64 << 20);

// "http://127.0.0.1:7788" -> host, port. kInvalidArgument for anything else.
Status ParseHttpUrl(const std::string& url, std::string* host, int* port);

}  // namespace slipway
