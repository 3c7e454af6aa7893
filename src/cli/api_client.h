#pragma once

// ApiClient: the CLI's side of the control API. Finds the daemon (SLIPWAY_URL, else
// http://127.0.0.1:7788) and the token (SLIPWAY_TOKEN, else <home>/token), and turns
// every failure into one line a user can act on.

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace slipway {

// The data dir: SLIPWAY_HOME, else ~/.slipway.
std::string SlipwayHome();

class ApiClient {
 public:
  static Result<ApiClient> FromEnvironment();

  // Calls the API. Errors: kUnavailable "cannot reach the Slipway daemon at ... (is
  // `slipway server` running?)", kUnauthenticated naming where the token came from,
  // else the API's own error message.
  Result<nlohmann::json> Get(const std::string& target, int timeout_ms = 30'000) const;
  Result<nlohmann::json> Post(const std::string& target, const std::string& body,
                              const std::string& content_type, int timeout_ms) const;

  Result<nlohmann::json> Delete(const std::string& target, int timeout_ms = 30'000) const;
  Result<nlohmann::json> Put(const std::string& target, const nlohmann::json& body,
                             int timeout_ms = 30'000) const;

  // POSTs `body` (JSON) and hands the answer's body to `on_body` piece by piece as it
  // arrives, with no overall timeout (for `slipway run`). A non-2xx answer becomes its
  // error as with Post(); an error from `on_body` stops the reading and is returned.
  Status PostStream(const std::string& target, const std::string& body,
                    const std::function<Status(std::string_view)>& on_body) const;

  const std::string& url() const { return url_; }
  // The token the calls carry ("" when none was found): for `slipway git-remote`'s URL.
  const std::string& token() const { return token_; }

 private:
  Status ErrorOf(int http_status, const std::string& body) const;
  Result<nlohmann::json> Call(const std::string& method, const std::string& target,
                              const std::string& body, const std::string& content_type,
                              int timeout_ms) const;
  std::string url_;
  std::string host_;
  int port_ = 0;
  std::string token_;
  std::string token_source_;
};

std::string UrlEncode(const std::string& s);

}  // namespace slipway
