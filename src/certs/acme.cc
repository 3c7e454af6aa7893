// ACME (RFC 8555) client: JWS ES256 requests with nonce handling, HTTP-01 challenges.

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "certs/certs.h"
#include "certs/https_client.h"
#include "certs/openssl_util.h"
#include "common/fs.h"
#include "spdlog/spdlog.h"

namespace slipway {

using namespace certs_internal;
using json = nlohmann::json;
using SteadyTime = std::chrono::steady_clock::time_point;

namespace {

constexpr const char* kBadNonce = "urn:ietf:params:acme:error:badNonce";
constexpr const char* kAccountDoesNotExist = "urn:ietf:params:acme:error:accountDoesNotExist";
constexpr int kNonceAttempts = 10;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};

std::string Str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

json ParseJson(const std::string& body) { return json::parse(body, nullptr, false); }
// Never throws: invalid UTF-8 from a server (in a nonce, say) is replaced, not fatal.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// "type: detail" from an RFC 7807 problem document (plus its subproblems).
std::string ProblemText(const json& problem) {
  std::string type = Str(problem, "type");
  std::string detail = Str(problem, "detail");
  std::string out = type.empty() ? detail : (detail.empty() ? type : type + ": " + detail);
  if (problem.is_object() && problem.contains("subproblems") && problem["subproblems"].is_array()) {
    for (const auto& sub : problem["subproblems"]) {
      std::string who = sub.is_object() && sub.contains("identifier")
                            ? Str(sub["identifier"], "value")
                            : std::string();
      out += "; " + (who.empty() ? "" : who + ": ") + ProblemText(sub);
    }
  }
  return out;
}

std::string BnBytes(const BIGNUM* bn, int width) {
  std::string out(static_cast<size_t>(width), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), width);
  return out;
}

Result<std::string> JwkJson(EVP_PKEY* key) {
  BIGNUM* x_raw = nullptr;
  BIGNUM* y_raw = nullptr;
  EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x_raw);
  EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y_raw);
  std::unique_ptr<BIGNUM, BnFree> x(x_raw), y(y_raw);
  if (!x || !y) return Internal("cannot read the ACME account public key: " + OpensslError());
  // RFC 7638: the required members in lexicographic order, no whitespace.
  return "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" + Base64Url(BnBytes(x.get(), 32)) +
         "\",\"y\":\"" + Base64Url(BnBytes(y.get(), 32)) + "\"}";
}

// JWS ES256 signature: raw r||s, 32 bytes each (RFC 7518 section 3.4), not DER.
Result<std::string> SignEs256(EVP_PKEY* key, std::string_view input) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) != 1) {
    return Internal("cannot sign the ACME request: " + OpensslError());
  }
  std::string der(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    return Internal("cannot sign the ACME request: " + OpensslError());
  }
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
  if (!sig) return Internal("cannot decode the ECDSA signature: " + OpensslError());
  return BnBytes(ECDSA_SIG_get0_r(sig.get()), 32) + BnBytes(ECDSA_SIG_get0_s(sig.get()), 32);
}

bool IsP256(EVP_PKEY* key) {
  char group[64] = {};
  size_t len = 0;
  return EVP_PKEY_is_a(key, "EC") &&
         EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        &len) == 1 &&
         std::string(group, len) == "prime256v1";
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Removes published challenge answers when the order ends, however it ends.
class PublishedTokens {
 public:
  explicit PublishedTokens(ChallengeStore& store) : store_(store) {}
  ~PublishedTokens() {
    for (const auto& t : tokens_) store_.Remove(t);
  }
  void Put(const std::string& token, const std::string& key_authorization) {
    store_.Put(token, key_authorization);
    tokens_.push_back(token);
  }

 private:
  ChallengeStore& store_;
  std::vector<std::string> tokens_;
};

}  // namespace

struct AcmeClient::Impl {
  AcmeOptions options;
  CertStore& store;
  ChallengeStore& challenges;
  std::unique_ptr<HttpsClient> http;
  PkeyPtr account_key;
  std::string jwk;         // the account public key as a JWK (RFC 7638 canonical form)
  std::string thumbprint;  // base64url(SHA-256(jwk))

  std::mutex order_mu;  // one order at a time; guards everything below
  json directory;
  std::string nonce;
  SteadyTime deadline;
  mutable std::mutex kid_mu;
  std::string kid;  // the account URL

  Impl(const AcmeOptions& o, CertStore& s, ChallengeStore& c)
      : options(o), store(s), challenges(c) {}

  Result<std::chrono::milliseconds> Remaining() const {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= std::chrono::milliseconds(0)) {
      return DeadlineExceeded("the order took longer than " +
                              std::to_string(options.order_timeout.count()) + "s");
    }
    return std::min<std::chrono::milliseconds>(left, options.request_timeout);
  }

  Result<HttpsResponse> Call(const std::string& method, const std::string& url,
                             const std::string& body = "") {
    ASSIGN_OR_RETURN(auto timeout, Remaining());
    return http->Call(method, url, body, body.empty() ? "" : "application/jose+json", timeout);
  }

  // An error Status for a non-2xx response: the server's problem document.
  static Status ProblemStatus(const HttpsResponse& r) {
    json problem = ParseJson(r.body);
    std::string text = ProblemText(problem);
    if (text.empty()) text = "HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 200);
    return Status(r.status >= 500 ? StatusCode::kUnavailable : StatusCode::kFailedPrecondition,
                  text);
  }

  Status FetchDirectory() {
    if (!directory.is_null()) return Status::Ok();
    ASSIGN_OR_RETURN(HttpsResponse r, Call("GET", options.directory_url));
    if (r.status != 200) return ProblemStatus(r);
    json d = ParseJson(r.body);
    if (Str(d, "newNonce").empty() || Str(d, "newAccount").empty() || Str(d, "newOrder").empty()) {
      return FailedPrecondition(options.directory_url +
                                " is not an ACME directory (no newNonce/newAccount/newOrder)");
    }
    directory = std::move(d);
    return Status::Ok();
  }

  Status FetchNonce() {
    ASSIGN_OR_RETURN(HttpsResponse r, Call("HEAD", Str(directory, "newNonce")));
    nonce = r.Header("replay-nonce");
    if (nonce.empty()) {
      return FailedPrecondition("the server sent no Replay-Nonce from " +
                                Str(directory, "newNonce"));
    }
    return Status::Ok();
  }

  Result<std::string> Jws(const std::string& url, const std::optional<std::string>& payload,
                          bool with_jwk) {
    json header = {{"alg", "ES256"}, {"nonce", nonce}, {"url", url}};
    if (with_jwk) {
      header["jwk"] = ParseJson(jwk);
    } else {
      std::lock_guard lock(kid_mu);
      header["kid"] = kid;
    }
    std::string protected_b64 = Base64Url(Dump(header));
    std::string payload_b64 = payload ? Base64Url(*payload) : "";
    ASSIGN_OR_RETURN(std::string sig,
                     SignEs256(account_key.get(), protected_b64 + "." + payload_b64));
    return Dump(json{
        {"protected", protected_b64}, {"payload", payload_b64}, {"signature", Base64Url(sig)}});
  }

  // A signed POST (payload nullopt: POST-as-GET). Retries badNonce with the fresh nonce.
  // Returns any response; callers check the status.
  Result<HttpsResponse> Post(const std::string& url, const std::optional<std::string>& payload,
                             bool with_jwk = false) {
    for (int attempt = 0; attempt < kNonceAttempts; ++attempt) {
      if (nonce.empty()) RETURN_IF_ERROR(FetchNonce());
      ASSIGN_OR_RETURN(std::string body, Jws(url, payload, with_jwk));
      nonce.clear();
      ASSIGN_OR_RETURN(HttpsResponse r, Call("POST", url, body));
      nonce = r.Header("replay-nonce");
      if (r.status >= 400 && Str(ParseJson(r.body), "type") == kBadNonce) {
        spdlog::debug("ACME server rejected a nonce for {}; retrying", url);
        continue;
      }
      if (r.status >= 400 && Str(ParseJson(r.body), "type") == kAccountDoesNotExist) {
        std::lock_guard lock(kid_mu);
        kid.clear();  // e.g. the CA forgot us; the next order registers again
      }
      return r;
    }
    return FailedPrecondition("the server rejected " + std::to_string(kNonceAttempts) +
                              " nonces in a row (" + kBadNonce + ")");
  }

  Result<json> PostJson(const std::string& url, const std::optional<std::string>& payload,
                        std::string* location = nullptr) {
    ASSIGN_OR_RETURN(HttpsResponse r, Post(url, payload));
    if (r.status >= 400) return ProblemStatus(r);
    json j = ParseJson(r.body);
    if (!j.is_object()) return FailedPrecondition(url + " did not answer with a JSON object");
    if (location != nullptr) *location = r.Header("location");
    return j;
  }

  Status EnsureAccount() {
    {
      std::lock_guard lock(kid_mu);
      if (!kid.empty()) return Status::Ok();
    }
    json payload = {{"termsOfServiceAgreed", true}};
    if (!options.email.empty()) payload["contact"] = json::array({"mailto:" + options.email});
    ASSIGN_OR_RETURN(HttpsResponse r, Post(Str(directory, "newAccount"), Dump(payload), true));
    if (r.status >= 400) return ProblemStatus(r);
    std::string location = r.Header("location");
    json account = ParseJson(r.body);
    if (location.empty()) return FailedPrecondition("newAccount answered without a Location");
    if (Str(account, "status") != "valid" && !Str(account, "status").empty()) {
      return FailedPrecondition("the account " + location + " is " + Str(account, "status"));
    }
    std::lock_guard lock(kid_mu);
    kid = location;
    return Status::Ok();
  }

  static void Pause(const HttpsResponse* r, std::chrono::milliseconds* backoff) {
    std::chrono::milliseconds wait = *backoff;
    if (r != nullptr) {
      // Honour Retry-After, but poll at least every 3 s (validation is usually quick).
      std::string after = r->Header("retry-after");
      if (!after.empty() && after.size() < 6 &&
          std::all_of(after.begin(), after.end(),
                      [](unsigned char c) { return std::isdigit(c); })) {
        wait = std::min<std::chrono::milliseconds>(std::chrono::seconds(std::stoi(after)),
                                                   std::chrono::seconds(3));
      }
    }
    std::this_thread::sleep_for(wait);
    *backoff = std::min<std::chrono::milliseconds>(*backoff * 2, std::chrono::seconds(2));
  }

  // Polls `url` (POST-as-GET) until its status is none of `waiting`.
  Result<json> PollWhile(const std::string& url, std::initializer_list<const char*> waiting) {
    std::chrono::milliseconds backoff(250);
    while (true) {
      ASSIGN_OR_RETURN(HttpsResponse r, Post(url, std::nullopt));
      if (r.status >= 400) return ProblemStatus(r);
      json j = ParseJson(r.body);
      std::string status = Str(j, "status");
      if (std::none_of(waiting.begin(), waiting.end(),
                       [&](const char* w) { return status == w; })) {
        return j;
      }
      RETURN_IF_ERROR(Remaining().status());
      Pause(&r, &backoff);
    }
  }

  Status Authorize(const std::string& authz_url, PublishedTokens& tokens, std::string* step) {
    *step = "authorization";
    ASSIGN_OR_RETURN(json authz, PostJson(authz_url, std::nullopt));
    std::string status = Str(authz, "status");
    if (status == "valid") return Status::Ok();
    if (status != "pending") {
      return FailedPrecondition("authorization " + authz_url + " is " + status);
    }
    std::string ident = authz.contains("identifier") ? Str(authz["identifier"], "value") : "";
    json chosen;
    std::vector<std::string> offered;
    if (authz.contains("challenges") && authz["challenges"].is_array()) {
      for (const auto& c : authz["challenges"]) {
        offered.push_back(Str(c, "type"));
        if (Str(c, "type") == "http-01") chosen = c;
      }
    }
    if (chosen.is_null()) {
      return FailedPrecondition("the CA offers no http-01 challenge for " + ident +
                                " (offered: " + JoinNames(offered) + ")");
    }
    *step = "challenge";
    std::string token = Str(chosen, "token");
    std::string challenge_url = Str(chosen, "url");
    if (token.empty() || challenge_url.empty()) {
      return FailedPrecondition("the http-01 challenge for " + ident + " has no token or url");
    }
    tokens.Put(token, token + "." + thumbprint);
    ASSIGN_OR_RETURN(json accepted, PostJson(challenge_url, std::string("{}")));
    (void)accepted;
    ASSIGN_OR_RETURN(json done, PollWhile(authz_url, {"pending"}));
    if (Str(done, "status") == "valid") return Status::Ok();
    // The failed challenge carries the CA's reason (connection refused, wrong answer...).
    if (done.contains("challenges") && done["challenges"].is_array()) {
      for (const auto& c : done["challenges"]) {
        if (c.contains("error")) return FailedPrecondition(ProblemText(c["error"]));
      }
    }
    return FailedPrecondition("authorization for " + ident + " became " + Str(done, "status"));
  }

  Result<CertificateInfo> Obtain(const std::vector<std::string>& names) {
    std::string step = "directory";
    const std::string label = JoinNames(names);
    auto fail = [&](const Status& st) {
      return Status(st.code(),
                    "ACME order for " + label + " failed at " + step + ": " + st.message());
    };
#define ACME_STEP(expr)                        \
  do {                                         \
    ::slipway::Status _acme_st = (expr);       \
    if (!_acme_st.ok()) return fail(_acme_st); \
  } while (0)

    deadline = std::chrono::steady_clock::now() + options.order_timeout;
    ACME_STEP(FetchDirectory());
    step = "account";
    ACME_STEP(EnsureAccount());

    step = "order";
    json identifiers = json::array();
    for (const auto& n : names) identifiers.push_back({{"type", "dns"}, {"value", n}});
    std::string order_url;
    auto order =
        PostJson(Str(directory, "newOrder"), Dump(json{{"identifiers", identifiers}}), &order_url);
    ACME_STEP(order.status());
    if (order_url.empty()) ACME_STEP(FailedPrecondition("newOrder answered without a Location"));

    PublishedTokens tokens(challenges);
    if (order->contains("authorizations") && (*order)["authorizations"].is_array()) {
      for (const auto& a : (*order)["authorizations"]) {
        if (!a.is_string()) continue;
        ACME_STEP(Authorize(a.get<std::string>(), tokens, &step));
      }
    }

    step = "finalize";
    auto ready = PollWhile(order_url, {"pending"});
    ACME_STEP(ready.status());
    if (Str(*ready, "status") != "ready" && Str(*ready, "status") != "valid") {
      ACME_STEP(FailedPrecondition(
          "the order is " + Str(*ready, "status") +
          (ready->contains("error") ? ": " + ProblemText((*ready)["error"]) : std::string())));
    }
    auto cert_key = GenerateEcKey();
    ACME_STEP(cert_key.status());
    json final_order = *ready;
    if (Str(*ready, "status") == "ready") {
      auto csr = MakeCsrDer(cert_key->get(), names);
      ACME_STEP(csr.status());
      auto finalized = PostJson(Str(*ready, "finalize"), Dump(json{{"csr", Base64Url(*csr)}}));
      ACME_STEP(finalized.status());
      auto polled = PollWhile(order_url, {"ready", "processing"});
      ACME_STEP(polled.status());
      final_order = std::move(*polled);
    }
    if (Str(final_order, "status") != "valid" || Str(final_order, "certificate").empty()) {
      ACME_STEP(FailedPrecondition("the order is " + Str(final_order, "status") +
                                   (final_order.contains("error")
                                        ? ": " + ProblemText(final_order["error"])
                                        : std::string())));
    }

    step = "certificate";
    auto downloaded = Post(Str(final_order, "certificate"), std::nullopt);
    ACME_STEP(downloaded.status());
    if (downloaded->status >= 400) ACME_STEP(ProblemStatus(*downloaded));
    auto key_pem = PrivateKeyToPem(cert_key->get());
    ACME_STEP(key_pem.status());
    ACME_STEP(store.InstallAcmeCertificate(names, downloaded->body, *key_pem));
#undef ACME_STEP
    auto info = store.AcmeCertificate(names.front());
    if (!info) return Internal("ACME certificate for " + names.front() + " vanished after install");
    spdlog::info("obtained an ACME certificate for {} (valid until {})", label,
                 FormatUtc(info->not_after));
    return *info;
  }
};

AcmeClient::AcmeClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AcmeClient::~AcmeClient() = default;

Result<std::unique_ptr<AcmeClient>> AcmeClient::Create(const AcmeOptions& options, CertStore& store,
                                                       ChallengeStore& challenges) {
  std::string host, port, target;
  RETURN_IF_ERROR(ParseHttpsUrl(options.directory_url, &host, &port, &target)
                      .WithContext("ACME directory URL"));
  auto impl = std::make_unique<Impl>(options, store, challenges);
  ASSIGN_OR_RETURN(impl->http, HttpsClient::Create(options.ca_bundle));
  std::string key_path = options.account_key_path.empty() ? store.dir() + "/acme-account.key"
                                                          : options.account_key_path;
  if (PathExists(key_path)) {
    ASSIGN_OR_RETURN(std::string pem, ReadFile(key_path));
    ASSIGN_OR_RETURN(impl->account_key, PrivateKeyFromPem(pem, key_path));
    if (!IsP256(impl->account_key.get())) {
      return InvalidArgument(key_path + ": the ACME account key must be an EC P-256 key");
    }
  } else {
    std::string parent = std::filesystem::path(key_path).parent_path().string();
    if (!parent.empty()) RETURN_IF_ERROR(MakeDirs(parent, 0700));
    ASSIGN_OR_RETURN(impl->account_key, GenerateEcKey());
    ASSIGN_OR_RETURN(std::string pem, PrivateKeyToPem(impl->account_key.get()));
    RETURN_IF_ERROR(WriteFileAtomic(key_path, pem, 0600));
  }
  ASSIGN_OR_RETURN(impl->jwk, JwkJson(impl->account_key.get()));
  impl->thumbprint = Base64Url(Sha256(impl->jwk));
  return std::unique_ptr<AcmeClient>(new AcmeClient(std::move(impl)));
}

Result<CertificateInfo> AcmeClient::ObtainCertificate(const std::vector<std::string>& names) {
  std::vector<std::string> normalized;
  for (const auto& n : names) {
    ASSIGN_OR_RETURN(std::string name, NormalizeDnsName(n, true));
    if (name.rfind("*.", 0) == 0) {
      return InvalidArgument("ACME order for " + name +
                             ": wildcard names need a DNS-01 challenge, which Slipway does not "
                             "do; add each host name instead, or a user certificate");
    }
    if (std::find(normalized.begin(), normalized.end(), name) == normalized.end()) {
      normalized.push_back(name);
    }
  }
  if (normalized.empty()) return InvalidArgument("ACME order: no names given");
  std::lock_guard lock(impl_->order_mu);
  return impl_->Obtain(normalized);
}

Result<CertificateInfo> AcmeClient::EnsureCertificate(std::string_view name,
                                                      std::chrono::hours renew_before) {
  auto existing = impl_->store.AcmeCertificate(name);
  if (existing && existing->not_after - std::chrono::system_clock::now() > renew_before) {
    return *existing;
  }
  return ObtainCertificate({std::string(name)});
}

std::string AcmeClient::AccountUrl() const {
  std::lock_guard lock(impl_->kid_mu);
  return impl_->kid;
}

}  // namespace slipway
