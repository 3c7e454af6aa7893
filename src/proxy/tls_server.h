#pragma once

// The server side of TLS: one base context per edge whose SNI callback moves each
// handshake onto the TlsContextProvider's context for the requested name
// (SSL_set_SSL_CTX), keeping that context alive for the connection's life.
//
// Thread-safety: the base context is shared by every worker (OpenSSL allows SSL_new on
// one SSL_CTX from many threads); the provider must be thread-safe (proxy/tls.h).

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "proxy/tls.h"

namespace slipway::proxy {

// TLS 1.2+, no renegotiation, no certificate of its own. `provider` outlives it.
std::unique_ptr<boost::asio::ssl::context> MakeSniContext(TlsContextProvider* provider);

// Where the SNI callback stores the context it chose for `ssl`: `*holder` must outlive the
// handshake.
void SetChosenContextHolder(SSL* ssl, std::shared_ptr<boost::asio::ssl::context>* holder);

}  // namespace slipway::proxy
