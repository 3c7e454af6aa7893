#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "certs/certs.h"
#include "certs/openssl_util.h"
#include "common/fs.h"
#include "spdlog/spdlog.h"

namespace slipway {

using namespace certs_internal;

namespace {

constexpr auto kDay = std::chrono::hours(24);
constexpr auto kCaValidity = kDay * 3652;  // ~10 years
constexpr auto kLeafValidity = kDay * 90;
constexpr auto kRenewBefore = kDay * 30;

// One certificate ready to serve.
struct Installed {
  std::shared_ptr<boost::asio::ssl::context> context;
  CertificateInfo info;
  TimePoint renew_at = TimePoint::max();  // local-CA leaves: re-issue from here on
};
using InstalledPtr = std::shared_ptr<const Installed>;
using NameMap = std::map<std::string, InstalledPtr, std::less<>>;

std::string Lower(std::string_view in) {
  std::string out(in);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// "*.<parent>" for "a.<parent>", or "" when `name` has no parent.
std::string WildcardFor(std::string_view name) {
  size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot + 1 >= name.size()) return "";
  std::string out = "*";
  out.append(name.substr(dot));
  return out;
}

InstalledPtr FindIn(const NameMap& map, std::string_view key) {
  auto it = map.find(key);
  return it == map.end() ? nullptr : it->second;
}

// A parsed chain + key that passed the checks every certificate gets.
struct Checked {
  std::vector<X509Ptr> chain;
  PkeyPtr key;
};

Result<Checked> CheckCertificate(std::string_view cert_pem, std::string_view key_pem,
                                 const std::string& cert_label, const std::string& key_label,
                                 const std::vector<std::string>& names, TimePoint now,
                                 bool check_time) {
  Checked c;
  ASSIGN_OR_RETURN(c.chain, CertsFromPem(cert_pem, cert_label));
  ASSIGN_OR_RETURN(c.key, PrivateKeyFromPem(key_pem, key_label));
  X509* leaf = c.chain.front().get();
  if (!KeyMatches(leaf, c.key.get())) {
    return InvalidArgument(key_label + ": private key does not match the certificate in " +
                           cert_label);
  }
  for (const auto& name : names) {
    if (!CertCovers(leaf, name)) {
      std::vector<std::string> has = DnsNames(leaf);
      if (has.empty() && !CommonName(leaf).empty()) has.push_back(CommonName(leaf));
      return InvalidArgument(cert_label + ": certificate is for " +
                             (has.empty() ? "no host name" : JoinNames(has)) + ", not " + name);
    }
  }
  if (check_time && now >= NotAfter(leaf)) {
    return InvalidArgument(cert_label + ": certificate expired on " + FormatUtc(NotAfter(leaf)));
  }
  if (check_time && now < NotBefore(leaf)) {
    return InvalidArgument(cert_label + ": certificate is not valid before " +
                           FormatUtc(NotBefore(leaf)));
  }
  return c;
}

Result<InstalledPtr> MakeInstalled(const Checked& c, const std::string& name, CertSource source,
                                   const std::string& cert_path, const std::string& key_path,
                                   TimePoint renew_at) {
  auto installed = std::make_shared<Installed>();
  ASSIGN_OR_RETURN(installed->context, MakeServerContext(c.chain, c.key.get()));
  X509* leaf = c.chain.front().get();
  CertificateInfo& info = installed->info;
  info.name = name;
  info.source = source;
  info.dns_names = DnsNames(leaf);
  info.subject = SubjectLine(leaf);
  info.issuer = IssuerLine(leaf);
  info.not_before = NotBefore(leaf);
  info.not_after = NotAfter(leaf);
  info.cert_path = cert_path;
  info.key_path = key_path;
  installed->renew_at = renew_at;
  return InstalledPtr(std::move(installed));
}

Result<std::string> ChainToPem(const std::vector<X509Ptr>& chain) {
  std::string out;
  for (const auto& cert : chain) {
    ASSIGN_OR_RETURN(std::string pem, CertToPem(cert.get()));
    out += pem;
  }
  return out;
}

// Holds an exclusive flock on a file for its lifetime (serializes CA creation between
// processes sharing the data dir, e.g. the server and the edge).
class FileLock {
 public:
  explicit FileLock(const std::string& path)
      : fd_(open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600)) {
    if (fd_ >= 0) {
      while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~FileLock() {
    if (fd_ >= 0) close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace

const char* CertSourceName(CertSource source) {
  switch (source) {
    case CertSource::kLocalCa:
      return "local-ca";
    case CertSource::kUser:
      return "user";
    case CertSource::kAcme:
      return "acme";
  }
  return "unknown";
}

struct CertStore::Impl {
  CertStoreOptions options;
  RealClock real_clock;
  const Clock* clock = nullptr;
  std::string dir;
  X509Ptr ca_cert;
  PkeyPtr ca_key;

  mutable std::shared_mutex mu;  // guards the three maps
  NameMap user;
  NameMap acme;
  NameMap local;
  std::mutex issue_mu;  // one local issuance at a time (keeps handshakes off `mu`)

  std::string Path(const std::string& sub) const { return dir + "/" + sub; }
  TimePoint Now() const { return clock->Now(); }

  Status LoadOrCreateCa();
  NameMap LoadDir(const std::string& sub, CertSource source) const;
  InstalledPtr FindServing(const std::string& name, TimePoint now) const;
  Result<InstalledPtr> EnsureLocal(const std::string& name, bool enforce_cap);
  Result<InstalledPtr> Resolve(std::string_view server_name);
  Result<InstalledPtr> LoadIssued(const std::string& name, TimePoint now);
};

Status CertStore::Impl::LoadOrCreateCa() {
  FileLock lock(Path(".ca.lock"));
  const std::string cert_path = Path("ca.pem");
  const std::string key_path = Path("ca.key");
  bool have_cert = PathExists(cert_path);
  bool have_key = PathExists(key_path);
  if (have_cert || have_key) {
    if (!have_cert || !have_key) {
      return FailedPrecondition("local CA in " + dir +
                                " is incomplete: " + (have_cert ? key_path : cert_path) +
                                " is missing; restore it, or move ca.pem and ca.key away to "
                                "create a new CA (then trust the new ca.pem)");
    }
    ASSIGN_OR_RETURN(std::string cert_pem, ReadFile(cert_path));
    ASSIGN_OR_RETURN(std::string key_pem, ReadFile(key_path));
    ASSIGN_OR_RETURN(auto certs, CertsFromPem(cert_pem, cert_path));
    ASSIGN_OR_RETURN(ca_key, PrivateKeyFromPem(key_pem, key_path));
    ca_cert = std::move(certs.front());
    if (!KeyMatches(ca_cert.get(), ca_key.get())) {
      return FailedPrecondition(key_path + " does not match " + cert_path +
                                "; restore the pair, or move both away to create a new CA");
    }
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(ca_key, GenerateEcKey());
  ASSIGN_OR_RETURN(ca_cert,
                   MakeCaCert(ca_key.get(), "Slipway Local CA " + HostName(), Now(), kCaValidity));
  ASSIGN_OR_RETURN(std::string key_pem, PrivateKeyToPem(ca_key.get()));
  ASSIGN_OR_RETURN(std::string cert_pem, CertToPem(ca_cert.get()));
  RETURN_IF_ERROR(WriteFileAtomic(key_path, key_pem, 0600));
  RETURN_IF_ERROR(WriteFileAtomic(cert_path, cert_pem, 0644));
  spdlog::info("created the local CA {} (trust it: slipway certs)", cert_path);
  return Status::Ok();
}

NameMap CertStore::Impl::LoadDir(const std::string& sub, CertSource source) const {
  NameMap map;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(Path(sub), ec)) {
    const std::string file = entry.path().filename().string();
    if (entry.path().extension() != ".pem" || file.find(".tmp.") != std::string::npos) continue;
    const std::string stem = entry.path().stem().string();
    const std::string name = FileStemToName(stem);
    const std::string cert_path = entry.path().string();
    const std::string key_path = Path(sub + "/" + stem + ".key");
    auto cert_pem = ReadFile(cert_path);
    auto key_pem = ReadFile(key_path);
    if (!cert_pem.ok() || !key_pem.ok()) {
      spdlog::warn("skipping certificate {}: {}", cert_path,
                   (cert_pem.ok() ? key_pem.status() : cert_pem.status()).message());
      continue;
    }
    // Expired ones still load: the user configured them, and `slipway certs` shows it.
    auto checked = CheckCertificate(*cert_pem, *key_pem, cert_path, key_path, {name}, Now(), false);
    if (!checked.ok()) {
      spdlog::warn("skipping certificate {}", checked.status().message());
      continue;
    }
    std::vector<std::string> names = {name};
    if (source == CertSource::kAcme) {
      for (const auto& san : DnsNames(checked->chain.front().get())) {
        auto n = NormalizeDnsName(san, true);
        if (n.ok() && *n != name) names.push_back(*n);
      }
    }
    for (const auto& n : names) {
      auto installed = MakeInstalled(*checked, n, source, cert_path, key_path, TimePoint::max());
      if (!installed.ok()) {
        spdlog::warn("skipping certificate {}: {}", cert_path, installed.status().message());
        break;
      }
      map[n] = *installed;
    }
  }
  return map;
}

InstalledPtr CertStore::Impl::FindServing(const std::string& name, TimePoint now) const {
  std::string wildcard = WildcardFor(name);
  if (auto e = FindIn(user, name)) return e;
  if (!wildcard.empty()) {
    if (auto e = FindIn(user, wildcard)) return e;
  }
  if (auto e = FindIn(acme, name)) return e;
  if (!wildcard.empty()) {
    if (auto e = FindIn(acme, wildcard)) return e;
  }
  if (auto e = FindIn(local, name); e && now < e->renew_at) return e;
  if (!wildcard.empty()) {
    if (auto e = FindIn(local, wildcard); e && now < e->renew_at) return e;
  }
  return nullptr;
}

Result<InstalledPtr> CertStore::Impl::LoadIssued(const std::string& name, TimePoint now) {
  const std::string stem = NameToFileStem(name);
  const std::string cert_path = Path("issued/" + stem + ".pem");
  const std::string key_path = Path("issued/" + stem + ".key");
  ASSIGN_OR_RETURN(std::string cert_pem, ReadFile(cert_path));
  ASSIGN_OR_RETURN(std::string key_pem, ReadFile(key_path));
  ASSIGN_OR_RETURN(Checked c,
                   CheckCertificate(cert_pem, key_pem, cert_path, key_path, {name}, now, true));
  // A leaf from an earlier CA (ca.pem replaced) would not verify: issue a new one.
  if (!SignedBy(c.chain.front().get(), ca_cert.get())) {
    return FailedPrecondition(cert_path + " was issued by another CA");
  }
  TimePoint renew_at = NotAfter(c.chain.front().get()) - kRenewBefore;
  if (now >= renew_at) return FailedPrecondition(cert_path + " expires within 30 days");
  return MakeInstalled(c, name, CertSource::kLocalCa, cert_path, key_path, renew_at);
}

Result<InstalledPtr> CertStore::Impl::EnsureLocal(const std::string& name, bool enforce_cap) {
  std::lock_guard issue_lock(issue_mu);
  TimePoint now = Now();
  {
    std::shared_lock lock(mu);
    if (auto e = FindIn(local, name); e && now < e->renew_at) return e;
    if (enforce_cap && local.size() >= options.max_local_names && !local.count(name)) {
      return ResourceExhausted("the local CA already issued " + std::to_string(local.size()) +
                               " certificates; not issuing one for " + name);
    }
  }
  auto loaded = LoadIssued(name, now);
  InstalledPtr installed;
  if (loaded.ok()) {
    installed = *loaded;
  } else {
    const std::string stem = NameToFileStem(name);
    const std::string cert_path = Path("issued/" + stem + ".pem");
    const std::string key_path = Path("issued/" + stem + ".key");
    Checked c;
    ASSIGN_OR_RETURN(c.key, GenerateEcKey());
    ASSIGN_OR_RETURN(X509Ptr leaf, MakeLeafCert(ca_cert.get(), ca_key.get(), c.key.get(), name, now,
                                                kLeafValidity));
    ASSIGN_OR_RETURN(std::string key_pem, PrivateKeyToPem(c.key.get()));
    ASSIGN_OR_RETURN(std::string cert_pem, CertToPem(leaf.get()));
    RETURN_IF_ERROR(WriteFileAtomic(key_path, key_pem, 0600));
    RETURN_IF_ERROR(WriteFileAtomic(cert_path, cert_pem, 0644));
    TimePoint renew_at = NotAfter(leaf.get()) - kRenewBefore;
    c.chain.push_back(std::move(leaf));
    ASSIGN_OR_RETURN(installed,
                     MakeInstalled(c, name, CertSource::kLocalCa, cert_path, key_path, renew_at));
  }
  std::unique_lock lock(mu);
  local[name] = installed;
  return installed;
}

Result<InstalledPtr> CertStore::Impl::Resolve(std::string_view server_name) {
  std::string name = Lower(server_name);
  if (name.empty()) name = "localhost";
  TimePoint now = Now();
  {
    std::shared_lock lock(mu);
    if (auto e = FindServing(name, now)) return e;
  }
  ASSIGN_OR_RETURN(name, NormalizeDnsName(name, false));
  if (options.local_ca_allows && !options.local_ca_allows(name)) {
    return NotFound("no certificate for " + name + " and the local CA may not issue one");
  }
  return EnsureLocal(name, true);
}

CertStore::CertStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CertStore::~CertStore() = default;

Result<std::unique_ptr<CertStore>> CertStore::Open(const CertStoreOptions& options) {
  if (options.dir.empty()) return InvalidArgument("the certificate dir is not set");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->clock = options.clock != nullptr ? options.clock : &impl->real_clock;
  impl->dir = AbsolutePath(options.dir);
  RETURN_IF_ERROR(MakeDirs(impl->dir, 0755));
  for (const char* sub : {"issued", "user", "acme"}) {
    RETURN_IF_ERROR(MakeDirs(impl->Path(sub), 0700));
  }
  RETURN_IF_ERROR(impl->LoadOrCreateCa());
  impl->user = impl->LoadDir("user", CertSource::kUser);
  impl->acme = impl->LoadDir("acme", CertSource::kAcme);
  return std::unique_ptr<CertStore>(new CertStore(std::move(impl)));
}

std::shared_ptr<boost::asio::ssl::context> CertStore::ContextFor(std::string_view server_name) {
  auto resolved = impl_->Resolve(server_name);
  if (!resolved.ok()) {
    spdlog::debug("TLS handshake refused: {}", resolved.status().message());
    return nullptr;
  }
  return (*resolved)->context;
}

Result<CertificateInfo> CertStore::Lookup(std::string_view server_name) {
  ASSIGN_OR_RETURN(InstalledPtr installed, impl_->Resolve(server_name));
  return installed->info;
}

void CertStore::Reload() {
  NameMap user = impl_->LoadDir("user", CertSource::kUser);
  NameMap acme = impl_->LoadDir("acme", CertSource::kAcme);
  std::unique_lock lock(impl_->mu);
  impl_->user.swap(user);
  impl_->acme.swap(acme);
}

const std::string& CertStore::dir() const { return impl_->dir; }

std::string CertStore::CaCertificatePath() const { return impl_->Path("ca.pem"); }

std::string CertStore::TrustInstructions() const {
  const std::string ca = CaCertificatePath();
  return "Slipway's local CA: " + ca +
         "\n"
         "It signs the certificates for https://<service>.<project>.localhost and other names\n"
         "without a certificate of their own. Trust it once on each machine you browse from:\n"
         "\n"
         "  Debian/Ubuntu (system, curl, most tools):\n"
         "    sudo cp " +
         ca +
         " /usr/local/share/ca-certificates/slipway.crt && sudo update-ca-certificates\n"
         "  curl, for one command:\n"
         "    curl --cacert " +
         ca +
         " https://web.myapp.localhost:8443/\n"
         "  Firefox: Settings > Privacy & Security > Certificates > View Certificates >\n"
         "    Authorities > Import... > " +
         ca +
         " > tick \"Trust this CA to identify websites\"\n"
         "  Chrome/Chromium (Linux, needs libnss3-tools):\n"
         "    certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n \"Slipway Local CA\" -i " +
         ca +
         "\n"
         "Keep " +
         impl_->Path("ca.key") + " private: whoever has it can impersonate any site to you.\n";
}

Result<CertificateInfo> CertStore::IssueLocalCertificate(std::string_view name) {
  ASSIGN_OR_RETURN(std::string normalized, NormalizeDnsName(name, true));
  ASSIGN_OR_RETURN(InstalledPtr installed, impl_->EnsureLocal(normalized, false));
  return installed->info;
}

Status CertStore::AddUserCertificate(std::string_view domain, const std::string& cert_pem_path,
                                     const std::string& key_pem_path) {
  auto cert_pem = ReadFile(cert_pem_path);
  if (!cert_pem.ok())
    return cert_pem.status().WithContext("user certificate for " + std::string(domain));
  auto key_pem = ReadFile(key_pem_path);
  if (!key_pem.ok())
    return key_pem.status().WithContext("user certificate for " + std::string(domain));
  return AddUserCertificatePem(domain, *cert_pem, *key_pem, cert_pem_path, key_pem_path);
}

Status CertStore::AddUserCertificatePem(std::string_view domain, std::string_view cert_pem,
                                        std::string_view key_pem, const std::string& cert_label,
                                        const std::string& key_label) {
  const std::string context = "user certificate for " + std::string(domain);
  auto name = NormalizeDnsName(domain, true);
  if (!name.ok()) return name.status().WithContext(context);
  auto checked =
      CheckCertificate(cert_pem, key_pem, cert_label, key_label, {*name}, impl_->Now(), true);
  if (!checked.ok()) return checked.status().WithContext(context);
  const std::string stem = NameToFileStem(*name);
  const std::string cert_path = impl_->Path("user/" + stem + ".pem");
  const std::string key_path = impl_->Path("user/" + stem + ".key");
  auto installed =
      MakeInstalled(*checked, *name, CertSource::kUser, cert_path, key_path, TimePoint::max());
  if (!installed.ok()) return installed.status().WithContext(context);
  auto chain_pem = ChainToPem(checked->chain);
  if (!chain_pem.ok()) return chain_pem.status().WithContext(context);
  auto key_out = PrivateKeyToPem(checked->key.get());
  if (!key_out.ok()) return key_out.status().WithContext(context);
  RETURN_IF_ERROR(WriteFileAtomic(key_path, *key_out, 0600));
  RETURN_IF_ERROR(WriteFileAtomic(cert_path, *chain_pem, 0644));
  std::unique_lock lock(impl_->mu);
  impl_->user[*name] = *installed;
  return Status::Ok();
}

Status CertStore::RemoveUserCertificate(std::string_view domain) {
  auto name = NormalizeDnsName(domain, true);
  if (!name.ok()) return name.status();
  {
    std::unique_lock lock(impl_->mu);
    if (impl_->user.erase(*name) == 0) {
      return NotFound("no user certificate for " + *name);
    }
  }
  const std::string stem = NameToFileStem(*name);
  std::error_code ec;
  std::filesystem::remove(impl_->Path("user/" + stem + ".pem"), ec);
  std::filesystem::remove(impl_->Path("user/" + stem + ".key"), ec);
  return Status::Ok();
}

Status CertStore::InstallAcmeCertificate(const std::vector<std::string>& names,
                                         std::string_view chain_pem, std::string_view key_pem) {
  if (names.empty()) return InvalidArgument("ACME certificate: no names given");
  std::vector<std::string> normalized;
  for (const auto& n : names) {
    ASSIGN_OR_RETURN(std::string name, NormalizeDnsName(n, true));
    normalized.push_back(name);
  }
  const std::string context = "ACME certificate for " + normalized.front();
  const std::string stem = NameToFileStem(normalized.front());
  const std::string cert_path = impl_->Path("acme/" + stem + ".pem");
  const std::string key_path = impl_->Path("acme/" + stem + ".key");
  auto checked = CheckCertificate(chain_pem, key_pem, "the downloaded chain", "the order's key",
                                  normalized, impl_->Now(), true);
  if (!checked.ok()) return checked.status().WithContext(context);
  std::vector<InstalledPtr> installed;
  for (const auto& n : normalized) {
    auto one = MakeInstalled(*checked, n, CertSource::kAcme, cert_path, key_path, TimePoint::max());
    if (!one.ok()) return one.status().WithContext(context);
    installed.push_back(*one);
  }
  RETURN_IF_ERROR(WriteFileAtomic(key_path, std::string(key_pem), 0600));
  RETURN_IF_ERROR(WriteFileAtomic(cert_path, std::string(chain_pem), 0644));
  std::unique_lock lock(impl_->mu);
  for (size_t i = 0; i < normalized.size(); ++i) impl_->acme[normalized[i]] = installed[i];
  return Status::Ok();
}

std::optional<CertificateInfo> CertStore::AcmeCertificate(std::string_view name) const {
  std::string key = Lower(name);
  std::shared_lock lock(impl_->mu);
  auto e = FindIn(impl_->acme, key);
  if (!e) return std::nullopt;
  return e->info;
}

std::vector<CertificateInfo> CertStore::List() const {
  std::vector<CertificateInfo> out;
  std::shared_lock lock(impl_->mu);
  for (const NameMap* map : {&impl_->user, &impl_->acme, &impl_->local}) {
    for (const auto& [name, installed] : *map) out.push_back(installed->info);
  }
  return out;
}

// --- ChallengeStore ---

struct ChallengeStore::Impl {
  mutable std::shared_mutex mu;
  std::map<std::string, std::string, std::less<>> answers;
  Listener listener;
};

ChallengeStore::ChallengeStore() : impl_(std::make_unique<Impl>()) {}
ChallengeStore::~ChallengeStore() = default;

std::optional<std::string> ChallengeStore::KeyAuthorization(std::string_view token) {
  std::shared_lock lock(impl_->mu);
  auto it = impl_->answers.find(token);
  if (it == impl_->answers.end()) return std::nullopt;
  return it->second;
}

void ChallengeStore::Put(std::string token, std::string key_authorization) {
  {
    std::unique_lock lock(impl_->mu);
    impl_->answers[token] = key_authorization;
  }
  if (impl_->listener) impl_->listener(token, key_authorization);
}

void ChallengeStore::Remove(std::string_view token) {
  {
    std::unique_lock lock(impl_->mu);
    auto it = impl_->answers.find(token);
    if (it != impl_->answers.end()) impl_->answers.erase(it);
  }
  if (impl_->listener) impl_->listener(std::string(token), std::nullopt);
}

void ChallengeStore::SetListener(Listener listener) { impl_->listener = std::move(listener); }

size_t ChallengeStore::size() const {
  std::shared_lock lock(impl_->mu);
  return impl_->answers.size();
}

}  // namespace slipway
