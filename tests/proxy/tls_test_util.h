#pragma once

// TLS helpers for the edge tests: self-signed certificates made in the test with OpenSSL,
// a TlsContextProvider serving them by SNI name, and a blocking HTTPS client that reports
// the certificate the server presented.

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "proxy/tls.h"

namespace slipway::proxy_test {

// A server context with a fresh P-256 key and a self-signed certificate for `name`
// (CN and subjectAltName DNS:name).
inline std::shared_ptr<boost::asio::ssl::context> SelfSignedContext(const std::string& name) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_set_pubkey(cert, key);
  X509_NAME* subject = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, subject);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
  const std::string san = "DNS:" + name;
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(cert, key, EVP_sha256());
  auto context = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  SSL_CTX_use_certificate(context->native_handle(), cert);
  SSL_CTX_use_PrivateKey(context->native_handle(), key);
  X509_free(cert);
  EVP_PKEY_free(key);
  return context;
}

// Serves a certificate per name; no SNI gets the first name's; unknown names are refused.
class TestTlsProvider : public TlsContextProvider {
 public:
  TestTlsProvider(std::initializer_list<std::string> names) {
    for (const auto& name : names) {
      if (first_.empty()) first_ = name;
      contexts_[name] = SelfSignedContext(name);
    }
  }
  std::shared_ptr<boost::asio::ssl::context> ContextFor(std::string_view name) override {
    ++calls;
    auto it = contexts_.find(std::string(name.empty() ? first_ : name));
    return it == contexts_.end() ? nullptr : it->second;
  }
  std::atomic<int> calls{0};

 private:
  std::string first_;
  std::map<std::string, std::shared_ptr<boost::asio::ssl::context>> contexts_;
};

struct TlsExchange {
  std::string error;       // handshake or I/O failure
  std::string subject_cn;  // of the certificate the server presented
  std::optional<boost::beast::http::response<boost::beast::http::string_body>> response;
};

// One HTTPS GET to 127.0.0.1:port with `sni` (empty: none) and Host `host`.
inline TlsExchange TlsGet(int port, const std::string& sni, const std::string& host,
                          const std::string& target) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  TlsExchange out;
  asio::io_context ioc;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_verify_mode(asio::ssl::verify_none);  // self-signed; the CN is checked instead
  asio::ssl::stream<asio::ip::tcp::socket> stream(ioc, ctx);
  boost::system::error_code ec;
  stream.next_layer().connect(
      asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)),
      ec);
  if (ec) {
    out.error = "connect: " + ec.message();
    return out;
  }
  timeval tv{20, 0};  // never hang the test
  ::setsockopt(stream.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (!sni.empty()) SSL_set_tlsext_host_name(stream.native_handle(), sni.c_str());
  stream.handshake(asio::ssl::stream_base::client, ec);
  if (ec) {
    out.error = "handshake: " + ec.message();
    return out;
  }
  if (X509* peer = SSL_get1_peer_certificate(stream.native_handle())) {
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
    out.subject_cn = cn;
    X509_free(peer);
  }
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, host);
  http::write(stream, req, ec);
  if (ec) {
    out.error = "write: " + ec.message();
    return out;
  }
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res, ec);
  if (ec) {
    out.error = "read: " + ec.message();
    return out;
  }
  out.response = std::move(res);
  return out;
}

}  // namespace slipway::proxy_test
