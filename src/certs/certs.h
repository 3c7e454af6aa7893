#pragma once

// Certificates for the edge's HTTPS listener.
//
// CertStore picks the certificate for each TLS handshake by server name (SNI):
//   1. a user certificate added for that exact name, then one for `*.<parent>`
//      (a wildcard matches exactly one label);
//   2. a certificate obtained over ACME for that name;
//   3. otherwise a leaf issued on demand by Slipway's local CA (created once under the
//      data dir, reused afterwards; trust it once and every local name is green).
//
// AcmeClient obtains certificates from an ACME (RFC 8555) CA such as Let's Encrypt with
// HTTP-01 validation: it publishes each challenge answer into a ChallengeStore, which the
// edge serves on plain HTTP at /.well-known/acme-challenge/<token>, and installs the
// result into the CertStore.
//
// Layout under the certs dir (<home>/certs):
//   ca.pem (0644), ca.key (0600)          the local CA
//   issued/<name>.pem, .key (0600)        leaves issued by the local CA
//   user/<name>.pem, .key (0600)          copies of user certificates
//   acme/<name>.pem, .key (0600)          ACME certificates (chain, key)
//   acme-account.key (0600)               the ACME account key
// A wildcard name "*.example.com" is stored as "_wildcard.example.com".

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "proxy/tls.h"

namespace slipway {

enum class CertSource { kLocalCa, kUser, kAcme };
// "local-ca", "user", "acme".
const char* CertSourceName(CertSource source);

// What one installed certificate is.
struct CertificateInfo {
  std::string name;  // the name it is installed for ("*.x" for wildcards)
  CertSource source = CertSource::kLocalCa;
  std::vector<std::string> dns_names;  // the leaf's subjectAltName DNS entries
  std::string subject;                 // one-line subject of the leaf
  std::string issuer;                  // one-line issuer of the leaf
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
  std::string cert_path;  // PEM chain on disk (leaf first)
  std::string key_path;   // its private key on disk
};

struct CertStoreOptions {
  std::string dir;               // the certs dir, created (0755) when missing
  const Clock* clock = nullptr;  // nullptr: the real clock; must outlive the store
  // Which names the local CA may issue a leaf for on demand (a client chooses the SNI
  // name, so a filter keeps strangers from growing the cache). Null: any valid DNS name.
  // Called from handshake threads; must be thread-safe.
  std::function<bool(std::string_view name)> local_ca_allows;
  // Cap on distinct names issued on demand in memory; past it, unknown names are refused.
  size_t max_local_names = 10000;
};

// Thread-safety: every method is safe to call from any thread at once. ContextFor takes a
// shared lock only; issuing a new leaf is serialized on a separate mutex and does not
// block handshakes for names already cached.
class CertStore final : public TlsContextProvider {
 public:
  // Opens (or initialises) the store: creates the dir and, on first use, the local CA
  // (EC P-256, "Slipway Local CA <hostname>", 10 years); loads user and ACME
  // certificates found on disk. Errors: the dir cannot be created or written, or
  // ca.pem/ca.key exist but cannot be read or do not belong together.
  static Result<std::unique_ptr<CertStore>> Open(const CertStoreOptions& options);
  ~CertStore() override;
  CertStore(const CertStore&) = delete;
  CertStore& operator=(const CertStore&) = delete;

  // TLS 1.2+ server context (ALPN http/1.1, ECDHE+AEAD ciphers, server order) for a
  // handshake naming `server_name`; empty → "localhost". Cached per name after the first
  // call; a local-CA leaf within 30 days of expiry is re-issued. nullptr (refuse the
  // handshake) for a name that is not a valid DNS name or that the local CA may not
  // issue for and no other certificate covers.
  std::shared_ptr<boost::asio::ssl::context> ContextFor(std::string_view server_name) override;

  // What ContextFor would serve for `server_name` (issuing a local leaf if needed).
  Result<CertificateInfo> Lookup(std::string_view server_name);

  // --- Local CA ---
  const std::string& dir() const;
  std::string CaCertificatePath() const;  // <dir>/ca.pem
  // Multi-line text for `slipway certs`: the CA path and how to trust it (Debian system
  // store, curl, Firefox, Chrome/Chromium).
  std::string TrustInstructions() const;
  // Issues (or returns the cached) local-CA leaf for `name`, which may be a wildcard
  // "*.demo.localhost". Ignores local_ca_allows (an explicit request). Errors:
  // kInvalidArgument for a name that is not a DNS name.
  Result<CertificateInfo> IssueLocalCertificate(std::string_view name);

  // --- User certificates ---
  // Validates and installs a certificate for `domain` ("api.example.com" or
  // "*.example.com"): the PEM chain parses, the key parses and matches the leaf, the leaf
  // covers the domain, and it is valid now. The files are copied into <dir>/user/ so a
  // restart serves them without the originals. Replaces an earlier one for the domain.
  // Errors (kInvalidArgument, one line naming the file): "user certificate for
  // api.example.com: /path/key.pem: private key does not match the certificate in
  // /path/cert.pem".
  Status AddUserCertificate(std::string_view domain, const std::string& cert_pem_path,
                            const std::string& key_pem_path);
  // The same from PEM text; `cert_label` / `key_label` name the source in errors.
  Status AddUserCertificatePem(std::string_view domain, std::string_view cert_pem,
                               std::string_view key_pem, const std::string& cert_label,
                               const std::string& key_label);
  // Forgets the user certificate for `domain` (memory and disk). kNotFound when none.
  Status RemoveUserCertificate(std::string_view domain);

  // --- ACME certificates (AcmeClient calls this) ---
  // Installs an ACME chain + key for every name in `names` (the files are stored as
  // acme/<names[0]>.pem/.key). Validated like a user certificate.
  Status InstallAcmeCertificate(const std::vector<std::string>& names, std::string_view chain_pem,
                                std::string_view key_pem);
  // The ACME certificate installed for exactly `name`, if any.
  std::optional<CertificateInfo> AcmeCertificate(std::string_view name) const;

  // Re-reads user/ and acme/ from disk and serves exactly what is there (for a process,
  // e.g. `slipway edge`, that shares the certs dir with the one adding certificates).
  // Files that fail the checks are skipped with a warning in the log.
  void Reload();

  // Every user, ACME and in-memory local-CA certificate, sorted by source then name.
  std::vector<CertificateInfo> List() const;

 private:
  struct Impl;
  explicit CertStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Pending HTTP-01 answers: token → key authorization. The edge serves them from any host
// at /.well-known/acme-challenge/<token>. Thread-safety: any thread.
class ChallengeStore final : public AcmeChallengeSource {
 public:
  ChallengeStore();
  ~ChallengeStore() override;
  std::optional<std::string> KeyAuthorization(std::string_view token) override;
  void Put(std::string token, std::string key_authorization);
  void Remove(std::string_view token);
  size_t size() const;
  // Called after every Put (with the answer) and Remove (with nullopt), on the caller's
  // thread and outside the store's lock, before Put/Remove return: e.g. to publish the
  // answer to an edge in another process before the CA is told to check it. Set before
  // the store is used.
  using Listener = std::function<void(const std::string& token,
                                      const std::optional<std::string>& key_authorization)>;
  void SetListener(Listener listener);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct AcmeOptions {
  // e.g. "https://acme-v02.api.letsencrypt.org/directory" (staging:
  // "https://acme-staging-v02.api.letsencrypt.org/directory").
  std::string directory_url;
  std::string email;  // account contact; optional
  // PEM bundle that verifies the ACME server's HTTPS certificate; empty: the system store.
  std::string ca_bundle;
  // The account key (EC P-256, created 0600 if missing); empty: <certs dir>/acme-account.key.
  std::string account_key_path;
  std::chrono::seconds order_timeout{180};   // the whole order, challenge to download
  std::chrono::seconds request_timeout{30};  // each HTTPS request
};

// One ACME account on one CA. Thread-safety: calls are serialized internally (one order
// at a time); the CertStore and ChallengeStore must outlive the client.
class AcmeClient {
 public:
  // Loads or creates the account key. Errors: a bad directory URL, an unreadable key.
  // No network traffic until the first order.
  static Result<std::unique_ptr<AcmeClient>> Create(const AcmeOptions& options, CertStore& store,
                                                    ChallengeStore& challenges);
  ~AcmeClient();
  AcmeClient(const AcmeClient&) = delete;
  AcmeClient& operator=(const AcmeClient&) = delete;

  // Runs one order for `names` (DNS names, no wildcards: HTTP-01 cannot validate them):
  // account (created or found, terms of service agreed), order, HTTP-01 challenges,
  // finalize with a CSR for a fresh EC P-256 key, download, store under acme/, install
  // into the CertStore. Blocks up to order_timeout. Errors are one line naming the step
  // and the server's problem: "ACME order for api.example.com failed at challenge:
  // urn:ietf:params:acme:error:connection: ..." (kUnavailable for network errors,
  // kFailedPrecondition for the CA's refusals, kDeadlineExceeded past the timeout).
  Result<CertificateInfo> ObtainCertificate(const std::vector<std::string>& names);

  // ObtainCertificate({name}) unless an ACME certificate for `name` is installed and
  // valid for longer than `renew_before`; then returns it without network traffic.
  Result<CertificateInfo> EnsureCertificate(
      std::string_view name, std::chrono::hours renew_before = std::chrono::hours(24 * 30));

  // The account URL ("kid") once the first order has registered; empty before.
  std::string AccountUrl() const;

 private:
  struct Impl;
  explicit AcmeClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace slipway
