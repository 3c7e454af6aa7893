#include "test_util.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace slipway::certs_test {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "slipway-certs-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

int FileMode(const std::string& path) {
  struct stat st = {};
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 0777);
}

namespace {

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

void AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) throw std::runtime_error("bad test extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

}  // namespace

TestCert MakeTestCert(const std::vector<std::string>& dns_names, std::chrono::hours from,
                      std::chrono::hours to, const TestCert* issuer) {
  TestCert out;
  out.key.reset(EVP_EC_gen("P-256"));
  out.cert.reset(X509_new());
  X509* cert = out.cert.get();
  X509_set_version(cert, 2);
  static std::atomic<long> serial{1000};
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
  time_t now = time(nullptr);
  X509_time_adj_ex(X509_getm_notBefore(cert), 0, static_cast<long>(from.count() * 3600), &now);
  X509_time_adj_ex(X509_getm_notAfter(cert), 0, static_cast<long>(to.count() * 3600), &now);
  X509_NAME* name = X509_get_subject_name(cert);
  std::string cn = dns_names.empty() ? "Test" : dns_names.front();
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_pubkey(cert, out.key.get());
  X509* issuer_cert = issuer != nullptr ? issuer->cert.get() : cert;
  EVP_PKEY* issuer_key = issuer != nullptr ? issuer->key.get() : out.key.get();
  X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert));
  if (issuer == nullptr) {
    AddExt(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
    AddExt(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExt(cert, issuer_cert, NID_basic_constraints, "CA:FALSE");
    AddExt(cert, issuer_cert, NID_ext_key_usage, "serverAuth");
  }
  std::string san;
  for (const auto& n : dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + n;
  if (!san.empty()) AddExt(cert, issuer_cert, NID_subject_alt_name, san);
  X509_sign(cert, issuer_key, EVP_sha256());

  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  out.cert_pem = BioText(bio);
  BIO_free(bio);
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, out.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = BioText(bio);
  BIO_free(bio);
  return out;
}

std::vector<X509Ptr> ParsePemCerts(const std::string& pem) {
  std::vector<X509Ptr> out;
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  while (X509* c = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) out.emplace_back(c);
  BIO_free(bio);
  ERR_clear_error();
  return out;
}

std::vector<std::string> SanDnsNames(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type != GEN_DNS) continue;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
                     static_cast<size_t>(ASN1_STRING_length(gn->d.dNSName)));
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string SerialHex(X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

std::string VerifyChain(const std::vector<X509Ptr>& chain, const std::string& trusted_pem,
                        const std::string& host) {
  if (chain.empty()) return "empty chain";
  X509_STORE* store = X509_STORE_new();
  for (auto& root : ParsePemCerts(trusted_pem)) X509_STORE_add_cert(store, root.get());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted, chain[i].get());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, chain[0].get(), untrusted);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), host.c_str(), host.size());
  std::string error;
  if (X509_verify_cert(ctx) != 1) {
    error = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
  }
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);
  X509_STORE_free(store);
  ERR_clear_error();
  return error;
}

// --- TlsServer ---

namespace {

int SniCallback(SSL* ssl, int* alert, void* arg) {
  auto* provider = static_cast<TlsContextProvider*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  auto context = provider->ContextFor(name != nullptr ? name : "");
  if (!context) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  SSL_set_SSL_CTX(ssl, context->native_handle());  // takes its own reference
  return SSL_TLSEXT_ERR_OK;
}

tcp::acceptor Listen(asio::io_context& ioc) {
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor;
}

void WakeAcceptor(int port) {
  asio::io_context ioc;
  tcp::socket s(ioc);
  boost::system::error_code ec;
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)), ec);
}

}  // namespace

TlsServer::TlsServer(TlsContextProvider& provider) : provider_(provider), acceptor_(Listen(ioc_)) {
  port_ = acceptor_.local_endpoint().port();
  thread_ = std::thread([this] { Serve(); });
}

TlsServer::~TlsServer() {
  stop_ = true;
  WakeAcceptor(port_);
  thread_.join();
}

void TlsServer::Serve() {
  // The base context has no certificate: the SNI callback (called with or without SNI)
  // always switches to the provider's context, like the edge.
  ssl::context base(ssl::context::tls_server);
  SSL_CTX_set_tlsext_servername_callback(base.native_handle(), SniCallback);
  SSL_CTX_set_tlsext_servername_arg(base.native_handle(), &provider_);
  while (!stop_) {
    tcp::socket socket(ioc_);
    boost::system::error_code ec;
    acceptor_.accept(socket, ec);
    if (ec || stop_) continue;
    timeval tv{10, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssl::stream<tcp::socket> stream(std::move(socket), base);
    stream.handshake(ssl::stream_base::server, ec);
    if (ec) continue;
    ++handshakes_;
    const char* sni = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
    std::string greeting = std::string("hello ") + (sni != nullptr ? sni : "") + "\n";
    asio::write(stream, asio::buffer(greeting), ec);
    stream.shutdown(ec);
  }
}

TlsClientOutcome TlsConnect(int port, const std::string& sni, const std::string& ca_file,
                            const std::string& verify_host, int max_version) {
  TlsClientOutcome out;
  asio::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx.load_verify_file(ca_file, ec);
  if (ec) {
    out.error = "cannot load " + ca_file + ": " + ec.message();
    return out;
  }
  if (max_version != 0) SSL_CTX_set_max_proto_version(ctx.native_handle(), max_version);
  ssl::stream<tcp::socket> stream(ioc, ctx);
  stream.set_verify_mode(ssl::verify_peer);
  stream.set_verify_callback(ssl::host_name_verification(verify_host));
  if (!sni.empty()) SSL_set_tlsext_host_name(stream.native_handle(), sni.c_str());
  static const unsigned char kAlpn[] = "\x02h2\x08http/1.1";
  SSL_set_alpn_protos(stream.native_handle(), kAlpn, sizeof(kAlpn) - 1);
  stream.lowest_layer().connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)), ec);
  if (ec) {
    out.error = "connect: " + ec.message();
    return out;
  }
  timeval tv{10, 0};
  setsockopt(stream.lowest_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  stream.handshake(ssl::stream_base::client, ec);
  out.peer.reset(SSL_get1_peer_certificate(stream.native_handle()));
  if (ec) {
    long verify = SSL_get_verify_result(stream.native_handle());
    out.error =
        "handshake: " + ec.message() +
        (verify != X509_V_OK ? std::string(" (") + X509_verify_cert_error_string(verify) + ")"
                             : "");
    ERR_clear_error();
    return out;
  }
  const unsigned char* proto = nullptr;
  unsigned int proto_len = 0;
  SSL_get0_alpn_selected(stream.native_handle(), &proto, &proto_len);
  out.alpn.assign(reinterpret_cast<const char*>(proto), proto_len);
  char buf[256];
  size_t n = stream.read_some(asio::buffer(buf), ec);
  out.greeting.assign(buf, n);
  stream.shutdown(ec);
  return out;
}

// --- ChallengeServer ---

ChallengeServer::ChallengeServer(AcmeChallengeSource& source)
    : source_(source), acceptor_(Listen(ioc_)) {
  port_ = acceptor_.local_endpoint().port();
  thread_ = std::thread([this] { Serve(); });
}

ChallengeServer::~ChallengeServer() {
  stop_ = true;
  WakeAcceptor(port_);
  thread_.join();
}

void ChallengeServer::Serve() {
  const std::string prefix = "/.well-known/acme-challenge/";
  while (!stop_) {
    tcp::socket socket(ioc_);
    boost::system::error_code ec;
    acceptor_.accept(socket, ec);
    if (ec || stop_) continue;
    timeval tv{10, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::read(socket, buffer, req, ec);
    if (ec) continue;
    ++requests_;
    std::string target(req.target());
    std::string host(req[http::field::host]);
    http::response<http::string_body> res{http::status::not_found, 11};
    res.body() = "not found\n";
    if (target.rfind(prefix, 0) == 0 && host.rfind("broken.", 0) != 0) {
      if (auto answer = source_.KeyAuthorization(target.substr(prefix.size()))) {
        res.result(http::status::ok);
        res.body() = *answer;
        ++answered_;
      }
    }
    res.set(http::field::content_type, "text/plain");
    res.keep_alive(false);
    res.prepare_payload();
    http::write(socket, res, ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
  }
}

// --- DnsServer ---

DnsServer::DnsServer() : socket_(ioc_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
  port_ = socket_.local_endpoint().port();
  thread_ = std::thread([this] { Serve(); });
}

DnsServer::~DnsServer() {
  stop_ = true;
  udp::socket poke(ioc_, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  boost::system::error_code ec;
  poke.send_to(asio::buffer("x", 1), socket_.local_endpoint(), 0, ec);
  thread_.join();
}

void DnsServer::Serve() {
  unsigned char query[1500];
  while (!stop_) {
    udp::endpoint from;
    boost::system::error_code ec;
    size_t n = socket_.receive_from(asio::buffer(query), from, 0, ec);
    if (ec || stop_ || n < 12) continue;
    // The question: labels up to a zero byte, then QTYPE and QCLASS.
    size_t pos = 12;
    while (pos < n && query[pos] != 0) pos += query[pos] + 1;
    if (pos + 5 > n) continue;
    size_t question_end = pos + 5;
    uint16_t qtype = static_cast<uint16_t>(query[pos + 1] << 8 | query[pos + 2]);
    bool answer_a = qtype == 1;
    std::string reply(reinterpret_cast<char*>(query), question_end);
    reply[2] = static_cast<char>(0x84 | (query[2] & 0x01));  // QR, AA, copy RD
    reply[3] = static_cast<char>(0x80);                      // RA, NOERROR
    reply[4] = 0;
    reply[5] = 1;  // QDCOUNT
    reply[6] = 0;
    reply[7] = answer_a ? 1 : 0;  // ANCOUNT
    reply[8] = reply[9] = reply[10] = reply[11] = 0;
    if (answer_a) {
      const unsigned char rr[] = {0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
      reply.append(reinterpret_cast<const char*>(rr), sizeof(rr));
    }
    ++queries_;
    socket_.send_to(asio::buffer(reply), from, 0, ec);
  }
}

int FreePort() {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

}  // namespace slipway::certs_test
