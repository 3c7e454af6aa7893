#include "certs/openssl_util.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace slipway::certs_internal {
namespace {

struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

struct X509ReqFree {
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
};
struct X509ExtFree {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};

BioPtr MemBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

// Never prompt on a terminal for a passphrase: encrypted keys are refused instead.
int NoPassphrase(char*, int, int, void*) { return -1; }

std::string NameLine(X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  return BioContents(bio.get());
}

TimePoint FromAsn1(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return TimePoint();
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

Status SetSerial(X509* cert) {
  std::unique_ptr<BIGNUM, BnFree> bn(BN_new());
  if (!bn || BN_rand(bn.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return Internal("cannot create a certificate serial number: " + OpensslError());
  }
  return Status::Ok();
}

Status SetValidity(X509* cert, TimePoint from, TimePoint to) {
  time_t a = std::chrono::system_clock::to_time_t(from);
  time_t b = std::chrono::system_clock::to_time_t(to);
  if (ASN1_TIME_set(X509_getm_notBefore(cert), a) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), b) == nullptr) {
    return Internal("cannot set certificate validity: " + OpensslError());
  }
  return Status::Ok();
}

Status AddExt(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  std::unique_ptr<X509_EXTENSION, X509ExtFree> ext(
      X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return Internal("cannot add certificate extension " + value + ": " + OpensslError());
  }
  return Status::Ok();
}

Status SetCommonName(X509_NAME* name, const std::string& cn) {
  if (cn.empty() || cn.size() > 64) return Status::Ok();  // CN is at most 64 chars
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    return Internal("cannot set certificate name " + cn + ": " + OpensslError());
  }
  return Status::Ok();
}

std::string SanValue(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ",";
    out += "DNS:" + n;
  }
  return out;
}

int AlpnSelect(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = "\x08http/1.1";
  unsigned char* selected = nullptr;
  unsigned char selected_len = 0;
  if (SSL_select_next_proto(&selected, &selected_len, kHttp11, sizeof(kHttp11) - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // e.g. an h2-only client: continue without ALPN
  }
  *out = selected;
  *outlen = selected_len;
  return SSL_TLSEXT_ERR_OK;
}

// Mozilla "intermediate" TLS 1.2 suites; TLS 1.3 suites are OpenSSL's defaults.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

}  // namespace

std::string OpensslError(std::string_view fallback) {
  std::string out;
  unsigned long err;
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? std::string(fallback) : out;
}

Result<std::string> NormalizeDnsName(std::string_view input, bool allow_wildcard) {
  std::string name(input);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!name.empty() && name.back() == '.') name.pop_back();
  auto bad = [&](const std::string& why) {
    // Built with append(): GCC 12 -O3 warns falsely (-Wrestrict) on "lit" + string&&.
    std::string message = "\"";
    message.append(input).append("\" is not a valid host name: ").append(why);
    return InvalidArgument(message);
  };
  if (name.empty()) return bad("it is empty");
  if (name.size() > 253) return bad("it is longer than 253 characters");
  std::string_view rest = name;
  if (rest.substr(0, 2) == "*.") {
    if (!allow_wildcard) return bad("wildcards are not allowed here");
    rest.remove_prefix(2);
  }
  size_t start = 0;
  while (start <= rest.size()) {
    size_t dot = rest.find('.', start);
    if (dot == std::string_view::npos) dot = rest.size();
    std::string_view label = rest.substr(start, dot - start);
    if (label.empty()) return bad("it has an empty label");
    if (label.size() > 63) return bad("a label is longer than 63 characters");
    for (char c : label) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) {
        return bad(std::string("it contains '") + c + "' (use letters, digits, '-' and '.')");
      }
    }
    if (label.front() == '-' || label.back() == '-') return bad("a label starts or ends with '-'");
    start = dot + 1;
  }
  return name;
}

std::string NameToFileStem(const std::string& name) {
  if (name.rfind("*.", 0) == 0) return "_wildcard." + name.substr(2);
  return name;
}

std::string FileStemToName(const std::string& stem) {
  if (stem.rfind("_wildcard.", 0) == 0) return "*." + stem.substr(10);
  return stem;
}

Result<PkeyPtr> GenerateEcKey() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return Internal("cannot generate an EC P-256 key: " + OpensslError());
  return key;
}

Result<std::string> PrivateKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Internal("cannot encode a private key: " + OpensslError());
  }
  return BioContents(bio.get());
}

Result<PkeyPtr> PrivateKeyFromPem(std::string_view pem, const std::string& label) {
  if (pem.find("ENCRYPTED") != std::string_view::npos) {
    ERR_clear_error();
    return InvalidArgument(label +
                           ": the private key is encrypted; Slipway needs it unencrypted "
                           "(openssl pkey -in KEY -out KEY.plain)");
  }
  BioPtr bio = MemBio(pem);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) {
    ERR_clear_error();
    return InvalidArgument(label +
                           ": not a PEM private key (expected -----BEGIN PRIVATE KEY----- or "
                           "-----BEGIN EC/RSA PRIVATE KEY-----)");
  }
  return key;
}

Result<std::string> CertToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return Internal("cannot encode a certificate: " + OpensslError());
  }
  return BioContents(bio.get());
}

Result<std::vector<X509Ptr>> CertsFromPem(std::string_view pem, const std::string& label) {
  std::vector<X509Ptr> out;
  BioPtr bio = MemBio(pem);
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
    if (!cert) break;
    out.push_back(std::move(cert));
  }
  // The loop ends on "no start line" at EOF; anything else is a broken certificate.
  unsigned long err = ERR_peek_last_error();
  bool clean_end =
      out.empty() ||
      (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) || err == 0;
  ERR_clear_error();
  if (out.empty()) {
    return InvalidArgument(label +
                           ": no PEM certificate found (expected -----BEGIN CERTIFICATE-----)");
  }
  if (!clean_end) {
    return InvalidArgument(label + ": certificate " + std::to_string(out.size() + 1) +
                           " in the file cannot be parsed");
  }
  return out;
}

TimePoint NotBefore(X509* cert) { return FromAsn1(X509_get0_notBefore(cert)); }
TimePoint NotAfter(X509* cert) { return FromAsn1(X509_get0_notAfter(cert)); }

std::vector<std::string> DnsNames(X509* cert) {
  std::vector<std::string> out;
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_DNS) continue;
    const ASN1_IA5STRING* s = gn->d.dNSName;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  return out;
}

std::string SubjectLine(X509* cert) { return NameLine(X509_get_subject_name(cert)); }
std::string IssuerLine(X509* cert) { return NameLine(X509_get_issuer_name(cert)); }

std::string CommonName(X509* cert) {
  char buf[256] = {};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

bool CertCovers(X509* cert, const std::string& name) {
  if (name.rfind("*.", 0) == 0) {
    for (const auto& san : DnsNames(cert)) {
      std::string lower = san;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (lower == name) return true;
    }
    return false;
  }
  return X509_check_host(cert, name.data(), name.size(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                         nullptr) == 1;
}

std::string FormatUtc(TimePoint t) {
  time_t tt = std::chrono::system_clock::to_time_t(t);
  struct tm tm = {};
  gmtime_r(&tt, &tm);
  char buf[64];
  strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

Result<X509Ptr> MakeCaCert(EVP_PKEY* key, const std::string& common_name, TimePoint now,
                           std::chrono::hours validity) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) {
    return Internal("cannot create the CA certificate: " + OpensslError());
  }
  RETURN_IF_ERROR(SetSerial(cert.get()));
  RETURN_IF_ERROR(SetValidity(cert.get(), now - std::chrono::hours(1), now + validity));
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("Slipway"), -1, -1, 0);
  RETURN_IF_ERROR(SetCommonName(name, common_name.substr(0, 64)));
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), key, EVP_sha256()) <= 0) {
    return Internal("cannot sign the CA certificate: " + OpensslError());
  }
  return cert;
}

Result<X509Ptr> MakeLeafCert(X509* ca_cert, EVP_PKEY* ca_key, EVP_PKEY* leaf_key,
                             const std::string& name, TimePoint now, std::chrono::hours validity) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) {
    return Internal("cannot create a certificate for " + name + ": " + OpensslError());
  }
  RETURN_IF_ERROR(SetSerial(cert.get()));
  RETURN_IF_ERROR(SetValidity(cert.get(), now - std::chrono::hours(1), now + validity));
  RETURN_IF_ERROR(SetCommonName(X509_get_subject_name(cert.get()), name));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert));
  X509_set_pubkey(cert.get(), leaf_key);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca_cert, cert.get(), nullptr, nullptr, 0);
  std::string san = "DNS:" + name;
  if (name == "localhost") san += ",IP:127.0.0.1,IP:::1";
  RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature"));
  RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_ext_key_usage, "serverAuth"));
  RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
  RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_subject_alt_name, san));
  if (X509_sign(cert.get(), ca_key, EVP_sha256()) <= 0) {
    return Internal("cannot sign the certificate for " + name + ": " + OpensslError());
  }
  return cert;
}

Result<std::string> MakeCsrDer(EVP_PKEY* key, const std::vector<std::string>& names) {
  std::unique_ptr<X509_REQ, X509ReqFree> req(X509_REQ_new());
  if (!req || names.empty() || X509_REQ_set_version(req.get(), 0) != 1) {
    return Internal("cannot create a CSR: " + OpensslError());
  }
  RETURN_IF_ERROR(SetCommonName(X509_REQ_get_subject_name(req.get()), names.front()));
  X509_REQ_set_pubkey(req.get(), key);
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, SanValue(names).c_str());
  bool ok = exts != nullptr && san != nullptr && sk_X509_EXTENSION_push(exts, san) > 0;
  if (!ok) X509_EXTENSION_free(san);
  ok = ok && X509_REQ_add_extensions(req.get(), exts) == 1;
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (!ok || X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0) {
    return Internal("cannot build the CSR: " + OpensslError());
  }
  int len = i2d_X509_REQ(req.get(), nullptr);
  if (len <= 0) return Internal("cannot encode the CSR: " + OpensslError());
  std::string der(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509_REQ(req.get(), &p);
  return der;
}

bool KeyMatches(X509* leaf, EVP_PKEY* key) {
  bool ok = X509_check_private_key(leaf, key) == 1;
  ERR_clear_error();
  return ok;
}

bool SignedBy(X509* cert, X509* issuer) {
  EVP_PKEY* pub = X509_get0_pubkey(issuer);
  bool ok = pub != nullptr && X509_verify(cert, pub) == 1;
  ERR_clear_error();
  return ok;
}

Result<std::shared_ptr<boost::asio::ssl::context>> MakeServerContext(
    const std::vector<X509Ptr>& chain, EVP_PKEY* key) {
  std::shared_ptr<boost::asio::ssl::context> context;
  try {
    context = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  } catch (const std::exception& e) {
    return Internal(std::string("cannot create a TLS context: ") + e.what());
  }
  SSL_CTX* ctx = context->native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  static const unsigned char kSessionContext[] = "slipway";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
  SSL_CTX_set_alpn_select_cb(ctx, AlpnSelect, nullptr);
  bool ok = !chain.empty() && SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) == 1 &&
            SSL_CTX_use_certificate(ctx, chain.front().get()) == 1;
  for (size_t i = 1; ok && i < chain.size(); ++i) {
    ok = SSL_CTX_add1_chain_cert(ctx, chain[i].get()) == 1;
  }
  ok = ok && SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  if (!ok) return Internal("cannot set up the TLS context: " + OpensslError());
  return context;
}

std::string Base64Url(std::string_view data) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((data.size() * 4 + 2) / 3);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<unsigned char>(data[k]); };
  for (; i + 2 < data.size(); i += 3) {
    unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == data.size()) {
    unsigned v = byte(i) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (i + 2 == data.size()) {
    unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::string Sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

}  // namespace slipway::certs_internal
