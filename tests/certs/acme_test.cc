// AcmeClient against Debian's real pebble ACME server: pebble's validation authority
// resolves names through an in-test DNS server (A 127.0.0.1 for everything) and really
// fetches http://<name>:<port>/.well-known/acme-challenge/<token> from an in-test HTTP
// server answering from the ChallengeStore.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "certs/certs.h"
#include "certs/https_client.h"
#include "common/subprocess.h"
#include "test_util.h"

namespace slipway::certs_test {
namespace {

using namespace std::chrono_literals;
constexpr const char* kPebble = "/usr/bin/pebble";

// pebble as a child process on free ports, its HTTPS served with a certificate for
// 127.0.0.1 from a separate local CA (written to tls_ca()).
class Pebble {
 public:
  // `nonce_reject`: percentage of valid nonces pebble rejects as badNonce.
  Pebble(const TempDir& tmp, int http_port, int dns_port, int nonce_reject) {
    CertStoreOptions options;
    options.dir = tmp.File("pebble-tls");
    auto tls = CertStore::Open(options);
    if (!tls.ok()) {
      error_ = tls.status().ToString();
      return;
    }
    auto leaf = (*tls)->IssueLocalCertificate("localhost");  // SAN localhost, 127.0.0.1
    if (!leaf.ok()) {
      error_ = leaf.status().ToString();
      return;
    }
    tls_ca_ = (*tls)->CaCertificatePath();
    // Ports picked free just before pebble binds them; a clash shows up as pebble not
    // starting, so try a few times.
    for (int attempt = 0; attempt < 3 && !ready_; ++attempt) {
      port_ = FreePort();
      management_port_ = FreePort();
      std::string config = tmp.File("pebble.json");
      WriteText(config, "{\"pebble\": {\"listenAddress\": \"127.0.0.1:" + std::to_string(port_) +
                            "\", \"managementListenAddress\": \"127.0.0.1:" +
                            std::to_string(management_port_) + "\", \"certificate\": \"" +
                            leaf->cert_path + "\", \"privateKey\": \"" + leaf->key_path +
                            "\", \"httpPort\": " + std::to_string(http_port) +
                            ", \"tlsPort\": " + std::to_string(FreePort()) +
                            ", \"ocspResponderURL\": \"\", "
                            "\"externalAccountBindingRequired\": false}}");
      SpawnOptions spawn;
      spawn.argv = {kPebble, "-config", config, "-dnsserver",
                    "127.0.0.1:" + std::to_string(dns_port)};
      spawn.env = CurrentEnvironment();
      spawn.env["PEBBLE_VA_NOSLEEP"] = "1";
      spawn.env["PEBBLE_WFE_NONCEREJECT"] = std::to_string(nonce_reject);
      spawn.env.erase("PEBBLE_VA_ALWAYS_VALID");
      auto process = Process::Spawn(spawn);
      if (!process.ok()) {
        error_ = process.status().ToString();
        return;
      }
      process_ = std::move(process).value();
      StartReader();
      ready_ = WaitForDirectory();
      if (!ready_) Stop();
    }
    if (!ready_) error_ = "pebble did not serve its directory; its output:\n" + Output();
  }

  ~Pebble() { Stop(); }

  bool ready() const { return ready_; }
  const std::string& error() const { return error_; }
  std::string directory_url() const {
    return "https://127.0.0.1:" + std::to_string(port_) + "/dir";
  }
  const std::string& tls_ca() const { return tls_ca_; }
  std::string Output() {
    std::lock_guard lock(mu_);
    return output_;
  }

  // pebble's root for issued certificates (management API /roots/0).
  std::string Root() {
    auto client = certs_internal::HttpsClient::Create(tls_ca_);
    if (!client.ok()) return "";
    auto r = (*client)->Call(
        "GET", "https://127.0.0.1:" + std::to_string(management_port_) + "/roots/0", "", "", 10s);
    return r.ok() && r->status == 200 ? r->body : "";
  }

 private:
  bool WaitForDirectory() {
    auto client = certs_internal::HttpsClient::Create(tls_ca_);
    if (!client.ok()) return false;
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      int code = 0;
      if (process_->TryWait(&code)) return false;
      auto r = (*client)->Call("GET", directory_url(), "", "", 5s);
      if (r.ok() && r->status == 200) return true;
      std::this_thread::sleep_for(50ms);  // polling pebble's startup, bounded by the deadline
    }
    return false;
  }

  void StartReader() {
    int fd = process_->output_fd();
    reader_ = std::thread([this, fd] {
      char buf[4096];
      while (true) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        std::lock_guard lock(mu_);
        output_.append(buf, static_cast<size_t>(n));
      }
    });
  }

  void Stop() {
    if (process_) {
      process_->Signal(SIGKILL);
      process_->Wait();
    }
    if (reader_.joinable()) reader_.join();
    process_.reset();
  }

  std::unique_ptr<Process> process_;
  std::thread reader_;
  std::mutex mu_;
  std::string output_;
  std::string tls_ca_;
  std::string error_;
  int port_ = 0;
  int management_port_ = 0;
  bool ready_ = false;
};

class AcmeTest : public ::testing::Test {
 protected:
  void Start(int nonce_reject) {
    if (access(kPebble, X_OK) != 0)
      GTEST_SKIP() << kPebble << " is not installed (apt install pebble)";
    CertStoreOptions options;
    options.dir = tmp_.File("certs");
    auto store = CertStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    http_ = std::make_unique<ChallengeServer>(challenges_);
    pebble_ = std::make_unique<Pebble>(tmp_, http_->port(), dns_.port(), nonce_reject);
    ASSERT_TRUE(pebble_->ready()) << pebble_->error();
  }

  std::unique_ptr<AcmeClient> Client() {
    AcmeOptions options;
    options.directory_url = pebble_->directory_url();
    options.email = "ops@slipway.test";
    options.ca_bundle = pebble_->tls_ca();
    options.order_timeout = 120s;
    auto client = AcmeClient::Create(options, *store_, challenges_);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(client).value() : nullptr;
  }

  void TearDown() override {
    pebble_.reset();  // before the servers it talks to
    http_.reset();
  }

  TempDir tmp_;
  DnsServer dns_;
  ChallengeStore challenges_;
  std::unique_ptr<CertStore> store_;
  std::unique_ptr<ChallengeServer> http_;
  std::unique_ptr<Pebble> pebble_;
};

TEST_F(AcmeTest, ObtainsACertificateThatChainsToPebbleAndIsServed) {
  Start(0);
  auto before = store_->Lookup("app.slipway.test");
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->source, CertSource::kLocalCa);

  auto client = Client();
  ASSERT_TRUE(client);
  auto info = client->ObtainCertificate({"app.slipway.test", "www.slipway.test"});
  ASSERT_TRUE(info.ok()) << info.status().ToString() << "\npebble:\n" << pebble_->Output();

  // pebble really fetched the challenge answers, and they are withdrawn afterwards.
  EXPECT_GE(http_->answered(), 2);
  EXPECT_GT(dns_.queries(), 0);
  EXPECT_EQ(challenges_.size(), 0u);
  EXPECT_NE(client->AccountUrl(), "");
  EXPECT_EQ(FileMode(store_->dir() + "/acme-account.key"), 0600);

  EXPECT_EQ(info->source, CertSource::kAcme);
  EXPECT_EQ(info->cert_path, store_->dir() + "/acme/app.slipway.test.pem");
  EXPECT_EQ(FileMode(info->key_path), 0600);
  auto chain = ParsePemCerts(ReadText(info->cert_path));
  ASSERT_GE(chain.size(), 2u);  // leaf + pebble's intermediate
  auto sans = SanDnsNames(chain[0].get());
  std::sort(sans.begin(), sans.end());
  EXPECT_EQ(sans, (std::vector<std::string>{"app.slipway.test", "www.slipway.test"}));

  std::string root = pebble_->Root();
  ASSERT_NE(root, "");
  WriteText(tmp_.File("pebble-root.pem"), root);
  EXPECT_EQ(VerifyChain(chain, root, "app.slipway.test"), "");
  // ... and not to the local CA.
  EXPECT_NE(VerifyChain(chain, ReadText(store_->CaCertificatePath()), "app.slipway.test"), "");

  // The store now serves it for both names, over a real handshake.
  TlsServer server(*store_);
  for (const std::string name : {"app.slipway.test", "www.slipway.test"}) {
    auto served = store_->Lookup(name);
    ASSERT_TRUE(served.ok());
    EXPECT_EQ(served->source, CertSource::kAcme) << name;
    auto out = TlsConnect(server.port(), name, tmp_.File("pebble-root.pem"), name);
    EXPECT_EQ(out.error, "") << name;
  }

  // A restart serves it from disk; EnsureCertificate does not order again.
  store_.reset();
  CertStoreOptions options;
  options.dir = tmp_.File("certs");
  auto reopened = CertStore::Open(options);
  ASSERT_TRUE(reopened.ok());
  store_ = std::move(reopened).value();
  auto kept = store_->Lookup("www.slipway.test");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->source, CertSource::kAcme);
  auto client2 = Client();
  ASSERT_TRUE(client2);
  int answered = http_->answered();
  auto ensured = client2->EnsureCertificate("app.slipway.test");
  ASSERT_TRUE(ensured.ok()) << ensured.status().ToString();
  EXPECT_EQ(http_->answered(), answered);
  EXPECT_EQ(client2->AccountUrl(), "");  // no traffic at all
}

TEST_F(AcmeTest, FailedChallengeNamesTheStepAndTheServersProblem) {
  Start(0);
  auto client = Client();
  ASSERT_TRUE(client);
  // The in-test HTTP server answers 404 for hosts named broken.*.
  auto info = client->ObtainCertificate({"broken.slipway.test"});
  ASSERT_FALSE(info.ok());
  const std::string& msg = info.status().message();
  EXPECT_EQ(msg.rfind("ACME order for broken.slipway.test failed at challenge: "
                      "urn:ietf:params:acme:error:",
                      0),
            0u)
      << msg;
  EXPECT_NE(msg.find("404"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  EXPECT_GE(http_->requests(), 1);
  EXPECT_EQ(challenges_.size(), 0u);
  EXPECT_EQ(store_->Lookup("broken.slipway.test")->source, CertSource::kLocalCa);

  auto wildcard = client->ObtainCertificate({"*.slipway.test"});
  ASSERT_FALSE(wildcard.ok());
  EXPECT_NE(wildcard.status().message().find("DNS-01"), std::string::npos);
}

TEST_F(AcmeTest, RetriesRejectedNonces) {
  Start(25);  // pebble rejects a quarter of all valid nonces with badNonce
  auto client = Client();
  ASSERT_TRUE(client);
  auto info = client->ObtainCertificate({"nonce.slipway.test"});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->source, CertSource::kAcme);
}

TEST(AcmeClientTest, UnreachableServerNamesTheStep) {
  TempDir tmp;
  CertStoreOptions options;
  options.dir = tmp.File("certs");
  auto store = CertStore::Open(options);
  ASSERT_TRUE(store.ok());
  ChallengeStore challenges;
  AcmeOptions acme;
  acme.directory_url = "https://127.0.0.1:" + std::to_string(FreePort()) + "/dir";
  auto client = AcmeClient::Create(acme, **store, challenges);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto info = (*client)->ObtainCertificate({"app.slipway.test"});
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(
      info.status().message().rfind(
          "ACME order for app.slipway.test failed at directory: cannot connect to 127.0.0.1:", 0),
      0u)
      << info.status().message();

  acme.directory_url = "http://127.0.0.1/dir";
  auto plain = AcmeClient::Create(acme, **store, challenges);
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(plain.status().message().find("https://"), std::string::npos);
}

}  // namespace
}  // namespace slipway::certs_test
