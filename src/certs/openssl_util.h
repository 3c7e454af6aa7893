#pragma once

// Internal to src/certs: owning OpenSSL handles and the few X.509 / key / CSR / TLS
// context operations the store and the ACME client need, with Status errors.
//
// Thread-safety: free functions on caller-owned objects; safe from any thread.

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace slipway::certs_internal {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using TimePoint = std::chrono::system_clock::time_point;

// The OpenSSL error queue as one line (and cleared); `fallback` when it is empty.
std::string OpensslError(std::string_view fallback = "unknown OpenSSL error");

// "*.Example.COM." → "*.example.com"; then checks it is a DNS name (LDH labels of 1-63,
// at most 253 chars; a leading "*." when `allow_wildcard`). Errors: kInvalidArgument.
Result<std::string> NormalizeDnsName(std::string_view name, bool allow_wildcard);
// "*.x.y" → "_wildcard.x.y" and back; other names unchanged.
std::string NameToFileStem(const std::string& name);
std::string FileStemToName(const std::string& stem);

Result<PkeyPtr> GenerateEcKey();  // P-256
Result<std::string> PrivateKeyToPem(EVP_PKEY* key);
// `label` names the source in errors ("/path/key.pem: ...").
Result<PkeyPtr> PrivateKeyFromPem(std::string_view pem, const std::string& label);

Result<std::string> CertToPem(X509* cert);
// Every certificate in a PEM bundle, in order. Errors name `label`.
Result<std::vector<X509Ptr>> CertsFromPem(std::string_view pem, const std::string& label);

TimePoint NotBefore(X509* cert);
TimePoint NotAfter(X509* cert);
std::vector<std::string> DnsNames(X509* cert);  // subjectAltName dNSName entries
std::string SubjectLine(X509* cert);
std::string IssuerLine(X509* cert);
std::string CommonName(X509* cert);
// True when `name` is covered: a hostname by X509_check_host rules (wildcards one label),
// a wildcard "*.x" by an identical "*.x" SAN.
bool CertCovers(X509* cert, const std::string& name);
// "2026-01-31 12:00 UTC"
std::string FormatUtc(TimePoint t);

// Self-signed CA: CA:TRUE (critical), keyUsage keyCertSign+cRLSign (critical).
Result<X509Ptr> MakeCaCert(EVP_PKEY* key, const std::string& common_name, TimePoint now,
                           std::chrono::hours validity);
// Leaf for `name` (SAN DNS:name; "localhost" also gets IP 127.0.0.1 and ::1) signed by
// the CA: CA:FALSE, digitalSignature, serverAuth, valid from now-1h for `validity`.
Result<X509Ptr> MakeLeafCert(X509* ca_cert, EVP_PKEY* ca_key, EVP_PKEY* leaf_key,
                             const std::string& name, TimePoint now, std::chrono::hours validity);
// DER CSR with CN = names[0] (when short enough) and SAN DNS for every name.
Result<std::string> MakeCsrDer(EVP_PKEY* key, const std::vector<std::string>& names);

// Checks that `key` belongs to `leaf`.
bool KeyMatches(X509* leaf, EVP_PKEY* key);
// True when `cert` carries a valid signature by `issuer`'s key.
bool SignedBy(X509* cert, X509* issuer);

// A TLS server context serving `chain` (leaf first) with `key`.
Result<std::shared_ptr<boost::asio::ssl::context>> MakeServerContext(
    const std::vector<X509Ptr>& chain, EVP_PKEY* key);

// Base64url without padding.
std::string Base64Url(std::string_view data);
std::string Sha256(std::string_view data);

}  // namespace slipway::certs_internal
