#pragma once

// Real-socket helpers for the certificate tests: a temp dir, test certificates made with
// OpenSSL directly (not with the code under test), a TLS server that picks its context
// per handshake through a TlsContextProvider (as the edge does), a TLS client that
// verifies what it gets, a tiny HTTP server answering ACME challenges from a
// ChallengeStore, and a DNS server answering 127.0.0.1 for every name.
//
// Thread-safety: each helper's accessors are safe from any thread; the rest belongs to
// the test's thread.

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "proxy/tls.h"

namespace slipway::certs_test {

struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string ReadText(const std::string& path);
void WriteText(const std::string& path, const std::string& text);
int FileMode(const std::string& path);  // st_mode & 0777

// A key pair and certificate made with OpenSSL's API.
struct TestCert {
  PkeyPtr key;
  X509Ptr cert;
  std::string cert_pem;
  std::string key_pem;
};
// `dns_names` go into the SAN (the first also into the CN); valid from now+from to
// now+to. Signed by `issuer` (nullptr: self-signed, then it is a CA).
TestCert MakeTestCert(const std::vector<std::string>& dns_names, std::chrono::hours from,
                      std::chrono::hours to, const TestCert* issuer);

// All certificates in a PEM text.
std::vector<X509Ptr> ParsePemCerts(const std::string& pem);
std::vector<std::string> SanDnsNames(X509* cert);
std::string SerialHex(X509* cert);
// X509_verify_cert of chain[0] (with chain[1..] untrusted) against the roots in
// `trusted_pem`, as a TLS server for `host`. "" when it verifies, else OpenSSL's reason.
std::string VerifyChain(const std::vector<X509Ptr>& chain, const std::string& trusted_pem,
                        const std::string& host);

// A TLS server on 127.0.0.1:<free port> whose SNI callback asks `provider` for the context
// of every handshake, as the edge does. Answers "hello <sni>\n" and closes.
class TlsServer {
 public:
  explicit TlsServer(TlsContextProvider& provider);
  ~TlsServer();
  int port() const { return port_; }
  int handshakes() const { return handshakes_.load(); }

 private:
  void Serve();
  TlsContextProvider& provider_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> handshakes_{0};
  std::thread thread_;
};

struct TlsClientOutcome {
  std::string error;  // "" when the handshake and verification succeeded
  X509Ptr peer;       // the server's leaf
  std::string alpn;   // the protocol the server selected, "" for none
  std::string greeting;
};
// Connects to 127.0.0.1:port sending SNI `sni` (none when empty), verifies the server for
// `verify_host` against `ca_file`, offers ALPN "h2,http/1.1". `max_version` 0: any.
TlsClientOutcome TlsConnect(int port, const std::string& sni, const std::string& ca_file,
                            const std::string& verify_host, int max_version = 0);

// HTTP/1.1 on 127.0.0.1:<free port> answering GET /.well-known/acme-challenge/<token>
// from `source`; 404 for unknown tokens and for every request whose Host starts with
// "broken." (a site that does not serve the challenge).
class ChallengeServer {
 public:
  explicit ChallengeServer(AcmeChallengeSource& source);
  ~ChallengeServer();
  int port() const { return port_; }
  int answered() const { return answered_.load(); }  // 200s with a key authorization
  int requests() const { return requests_.load(); }

 private:
  void Serve();
  AcmeChallengeSource& source_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

// UDP DNS on 127.0.0.1:<free port>: A 127.0.0.1 for every name, no AAAA records.
class DnsServer {
 public:
  DnsServer();
  ~DnsServer();
  int port() const { return port_; }
  int queries() const { return queries_.load(); }

 private:
  void Serve();
  boost::asio::io_context ioc_;
  boost::asio::ip::udp::socket socket_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

// A TCP port that was free a moment ago (for servers that take a port number).
int FreePort();

}  // namespace slipway::certs_test
