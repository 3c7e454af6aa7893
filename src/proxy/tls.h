#pragma once

// What the edge needs for HTTPS, implemented outside the proxy (src/certs): TLS
// contexts chosen by SNI, and the ACME HTTP-01 answers it serves on plain HTTP.
//
// Thread-safety: implementations are called from every edge thread at once.

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace slipway {

class TlsContextProvider {
 public:
  virtual ~TlsContextProvider() = default;
  // The context for a handshake naming `server_name` (lowercase; empty when the client
  // sent no SNI). nullptr refuses the handshake. Called once per handshake, from the
  // SNI callback: must be fast (cached) after the first call for a name.
  virtual std::shared_ptr<boost::asio::ssl::context> ContextFor(std::string_view server_name) = 0;
};

class AcmeChallengeSource {
 public:
  virtual ~AcmeChallengeSource() = default;
  // The key authorization to answer GET /.well-known/acme-challenge/<token> with, on any
  // host, or nullopt when no such challenge is pending.
  virtual std::optional<std::string> KeyAuthorization(std::string_view token) = 0;
};

}  // namespace slipway
