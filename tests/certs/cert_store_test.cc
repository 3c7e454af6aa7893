// CertStore against real files and real TLS handshakes on 127.0.0.1.

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <filesystem>
#include <thread>

#include "certs/certs.h"
#include "common/clock.h"
#include "test_util.h"

namespace slipway::certs_test {
namespace {

using namespace std::chrono_literals;
constexpr auto kDay = std::chrono::hours(24);

std::unique_ptr<CertStore> OpenStore(const std::string& dir, const Clock* clock = nullptr) {
  CertStoreOptions options;
  options.dir = dir;
  options.clock = clock;
  auto store = CertStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

X509Ptr LeafOf(const CertificateInfo& info) {
  auto chain = ParsePemCerts(ReadText(info.cert_path));
  return chain.empty() ? nullptr : std::move(chain.front());
}

TEST(LocalCaTest, CaIsCreatedOnceAndReused) {
  TempDir tmp;
  const std::string dir = tmp.File("certs");
  std::string ca_pem, ca_key;
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(store);
    EXPECT_EQ(store->CaCertificatePath(), dir + "/ca.pem");
    ca_pem = ReadText(dir + "/ca.pem");
    ca_key = ReadText(dir + "/ca.key");
    ASSERT_NE(ca_pem.find("BEGIN CERTIFICATE"), std::string::npos);
    ASSERT_NE(ca_key.find("PRIVATE KEY"), std::string::npos);
    EXPECT_EQ(FileMode(dir + "/ca.pem"), 0644);
    EXPECT_EQ(FileMode(dir + "/ca.key"), 0600);
  }
  auto reopened = OpenStore(dir);
  ASSERT_TRUE(reopened);
  EXPECT_EQ(ReadText(dir + "/ca.pem"), ca_pem);
  EXPECT_EQ(ReadText(dir + "/ca.key"), ca_key);

  auto ca = ParsePemCerts(ca_pem);
  ASSERT_EQ(ca.size(), 1u);
  X509* cert = ca[0].get();
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
  EXPECT_EQ(std::string(cn).rfind("Slipway Local CA ", 0), 0u) << cn;
  EXPECT_EQ(X509_check_ca(cert), 1);
  EXPECT_TRUE(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN);
  EXPECT_TRUE(X509_get_key_usage(cert) & KU_CRL_SIGN);
  int critical = 0;
  auto* bc = static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(cert, NID_basic_constraints, &critical, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_TRUE(bc->ca);
  EXPECT_EQ(critical, 1);
  BASIC_CONSTRAINTS_free(bc);
  // About ten years.
  int days = 0, secs = 0;
  ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert));
  EXPECT_GT(days, 3600);
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(cert)), EVP_PKEY_EC);

  std::string text = reopened->TrustInstructions();
  EXPECT_NE(text.find(dir + "/ca.pem"), std::string::npos);
  EXPECT_NE(text.find("update-ca-certificates"), std::string::npos);
  EXPECT_NE(text.find("curl --cacert"), std::string::npos);
}

TEST(LocalCaTest, LeafVerifiesAgainstTheCaAndIsReusedAfterRestart) {
  TempDir tmp;
  const std::string dir = tmp.File("certs");
  std::string serial;
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(store);
    auto info = store->Lookup("api.demo.localhost");
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->source, CertSource::kLocalCa);
    EXPECT_EQ(info->cert_path, dir + "/issued/api.demo.localhost.pem");
    EXPECT_EQ(FileMode(info->key_path), 0600);
    EXPECT_EQ(FileMode(dir + "/issued"), 0700);
    auto chain = ParsePemCerts(ReadText(info->cert_path));
    ASSERT_FALSE(chain.empty());
    EXPECT_EQ(SanDnsNames(chain[0].get()), std::vector<std::string>{"api.demo.localhost"});
    EXPECT_EQ(VerifyChain(chain, ReadText(store->CaCertificatePath()), "api.demo.localhost"), "");
    // The CA does not vouch for other names through this leaf.
    EXPECT_NE(VerifyChain(chain, ReadText(store->CaCertificatePath()), "other.localhost"), "");
    auto days = std::chrono::duration_cast<std::chrono::hours>(info->not_after -
                                                               std::chrono::system_clock::now()) /
                kDay;
    EXPECT_GE(days, 88);
    EXPECT_LE(days, 90);
    serial = SerialHex(chain[0].get());
  }
  auto store = OpenStore(dir);
  ASSERT_TRUE(store);
  auto info = store->Lookup("API.demo.localhost");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(SerialHex(LeafOf(*info).get()), serial);
}

TEST(LocalCaTest, ServesTheRightCertificatePerSniName) {
  TempDir tmp;
  auto store = OpenStore(tmp.File("certs"));
  ASSERT_TRUE(store);
  TlsServer server(*store);
  const std::string ca = store->CaCertificatePath();

  for (const std::string name : {"a.demo.localhost", "b.demo.localhost", "a.demo.localhost"}) {
    auto out = TlsConnect(server.port(), name, ca, name);
    ASSERT_EQ(out.error, "") << name;
    ASSERT_TRUE(out.peer);
    EXPECT_EQ(SanDnsNames(out.peer.get()), std::vector<std::string>{name});
    EXPECT_EQ(out.alpn, "http/1.1");
    EXPECT_EQ(out.greeting, "hello " + name + "\n");
  }
  // The certificate for one name does not pass for another.
  auto wrong = TlsConnect(server.port(), "a.demo.localhost", ca, "b.demo.localhost");
  EXPECT_NE(wrong.error, "");

  // No SNI (e.g. https://127.0.0.1:8443): the localhost certificate, which covers 127.0.0.1.
  auto bare = TlsConnect(server.port(), "", ca, "127.0.0.1");
  ASSERT_EQ(bare.error, "");
  EXPECT_EQ(SanDnsNames(bare.peer.get()), std::vector<std::string>{"localhost"});

  // TLS 1.1 is refused.
  auto old = TlsConnect(server.port(), "a.demo.localhost", ca, "a.demo.localhost", TLS1_1_VERSION);
  EXPECT_NE(old.error, "");

  // A name that is not a host name gets no certificate at all.
  EXPECT_EQ(store->ContextFor("bad_name!"), nullptr);
  auto refused = TlsConnect(server.port(), "bad_name!", ca, "bad_name!");
  EXPECT_NE(refused.error, "");

  // Cached: the same context object for the same name.
  EXPECT_EQ(store->ContextFor("a.demo.localhost"), store->ContextFor("a.demo.localhost"));
  EXPECT_NE(store->ContextFor("a.demo.localhost"), store->ContextFor("b.demo.localhost"));
}

TEST(LocalCaTest, ManyThreadsAskingAtOnceGetOneCertificatePerName) {
  TempDir tmp;
  auto store = OpenStore(tmp.File("certs"));
  ASSERT_TRUE(store);
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<boost::asio::ssl::context>> seen(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 50; ++k) {
        auto ctx = store->ContextFor("web.app" + std::to_string(k % 5) + ".localhost");
        if (k % 5 == 0) seen[i] = ctx;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 1; i < 8; ++i) EXPECT_EQ(seen[i], seen[0]);
  EXPECT_EQ(store->List().size(), 5u);
}

TEST(LocalCaTest, ReissuesWithinThirtyDaysOfExpiry) {
  TempDir tmp;
  ManualClock clock;
  auto store = OpenStore(tmp.File("certs"), &clock);
  ASSERT_TRUE(store);
  auto first = store->Lookup("web.demo.localhost");
  ASSERT_TRUE(first.ok());
  auto first_ctx = store->ContextFor("web.demo.localhost");

  clock.Advance(std::chrono::duration_cast<std::chrono::milliseconds>(kDay * 59));
  auto same = store->Lookup("web.demo.localhost");
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->not_after, first->not_after);
  EXPECT_EQ(store->ContextFor("web.demo.localhost"), first_ctx);

  clock.Advance(std::chrono::duration_cast<std::chrono::milliseconds>(kDay * 2));  // 61 days
  auto renewed = store->Lookup("web.demo.localhost");
  ASSERT_TRUE(renewed.ok());
  EXPECT_GT(renewed->not_after, first->not_after + kDay * 60);
  EXPECT_NE(store->ContextFor("web.demo.localhost"), first_ctx);

  // A restart at that time reads the renewed leaf from disk instead of issuing again.
  std::string serial = SerialHex(LeafOf(*renewed).get());
  auto reopened = OpenStore(tmp.File("certs"), &clock);
  ASSERT_TRUE(reopened);
  auto again = reopened->Lookup("web.demo.localhost");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(SerialHex(LeafOf(*again).get()), serial);
}

TEST(LocalCaTest, WildcardLeafCoversOneLabel) {
  TempDir tmp;
  auto store = OpenStore(tmp.File("certs"));
  ASSERT_TRUE(store);
  auto wildcard = store->IssueLocalCertificate("*.demo.localhost");
  ASSERT_TRUE(wildcard.ok()) << wildcard.status().ToString();
  EXPECT_EQ(wildcard->cert_path, tmp.File("certs/issued/_wildcard.demo.localhost.pem"));
  auto chain = ParsePemCerts(ReadText(wildcard->cert_path));
  ASSERT_FALSE(chain.empty());
  EXPECT_EQ(SanDnsNames(chain[0].get()), std::vector<std::string>{"*.demo.localhost"});
  EXPECT_EQ(VerifyChain(chain, ReadText(store->CaCertificatePath()), "x.demo.localhost"), "");

  auto served = store->Lookup("x.demo.localhost");
  ASSERT_TRUE(served.ok());
  EXPECT_EQ(served->name, "*.demo.localhost");
  auto deeper = store->Lookup("a.b.demo.localhost");
  ASSERT_TRUE(deeper.ok());
  EXPECT_EQ(deeper->name, "a.b.demo.localhost");

  EXPECT_FALSE(store->IssueLocalCertificate("*.*.localhost").ok());
  EXPECT_FALSE(store->IssueLocalCertificate("a..localhost").ok());
}

TEST(LocalCaTest, FilterKeepsStrangersFromGettingCertificates) {
  TempDir tmp;
  CertStoreOptions options;
  options.dir = tmp.File("certs");
  options.local_ca_allows = [](std::string_view name) {
    return name.size() > 10 && name.substr(name.size() - 10) == ".localhost";
  };
  auto store = CertStore::Open(options);
  ASSERT_TRUE(store.ok());
  EXPECT_NE((*store)->ContextFor("web.app.localhost"), nullptr);
  EXPECT_EQ((*store)->ContextFor("stranger.example"), nullptr);
  auto why = (*store)->Lookup("stranger.example");
  ASSERT_FALSE(why.ok());
  EXPECT_NE(why.status().message().find("stranger.example"), std::string::npos);
}

// --- user certificates ---

class UserCertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStore(tmp_.File("certs"));
    ASSERT_TRUE(store_);
    user_ca_ = MakeTestCert({}, -1h, kDay * 365, nullptr);
    WriteText(tmp_.File("user-ca.pem"), user_ca_.cert_pem);
  }
  // Writes a leaf signed by the user's CA to <name>.crt / <name>.key; returns the paths.
  std::pair<std::string, std::string> Write(const std::string& file,
                                            const std::vector<std::string>& names,
                                            std::chrono::hours from = -1h,
                                            std::chrono::hours to = kDay * 60) {
    TestCert cert = MakeTestCert(names, from, to, &user_ca_);
    std::string crt = tmp_.File(file + ".crt"), key = tmp_.File(file + ".key");
    WriteText(crt, cert.cert_pem + user_ca_.cert_pem);  // leaf + chain, as CAs ship them
    WriteText(key, cert.key_pem);
    return {crt, key};
  }

  TempDir tmp_;
  std::unique_ptr<CertStore> store_;
  TestCert user_ca_;
};

TEST_F(UserCertTest, ValidCertificateIsAcceptedAndPreferredOverTheLocalCa) {
  auto before = store_->Lookup("shop.example.com");
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->source, CertSource::kLocalCa);

  auto [crt, key] = Write("shop", {"shop.example.com"});
  Status st = store_->AddUserCertificate("shop.example.com", crt, key);
  ASSERT_TRUE(st.ok()) << st.ToString();

  auto after = store_->Lookup("shop.example.com");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->source, CertSource::kUser);
  EXPECT_EQ(FileMode(after->key_path), 0600);

  TlsServer server(*store_);
  auto out =
      TlsConnect(server.port(), "shop.example.com", tmp_.File("user-ca.pem"), "shop.example.com");
  EXPECT_EQ(out.error, "");
  // Other names still get the local CA.
  auto other = TlsConnect(server.port(), "web.demo.localhost", store_->CaCertificatePath(),
                          "web.demo.localhost");
  EXPECT_EQ(other.error, "");

  // Restarts keep serving it even when the original files are gone.
  std::filesystem::remove(crt);
  std::filesystem::remove(key);
  store_.reset();
  auto reopened = OpenStore(tmp_.File("certs"));
  ASSERT_TRUE(reopened);
  auto kept = reopened->Lookup("shop.example.com");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->source, CertSource::kUser);

  ASSERT_TRUE(reopened->RemoveUserCertificate("shop.example.com").ok());
  auto removed = reopened->Lookup("shop.example.com");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->source, CertSource::kLocalCa);
  EXPECT_EQ(reopened->RemoveUserCertificate("shop.example.com").code(), StatusCode::kNotFound);
}

TEST_F(UserCertTest, AnotherStoreOnTheSameDirSeesItAfterReload) {
  auto edge_side = OpenStore(tmp_.File("certs"));  // e.g. the `slipway edge` process
  ASSERT_TRUE(edge_side);
  EXPECT_EQ(edge_side->Lookup("shop.example.com")->source, CertSource::kLocalCa);
  auto [crt, key] = Write("shop", {"shop.example.com"});
  ASSERT_TRUE(store_->AddUserCertificate("shop.example.com", crt, key).ok());
  edge_side->Reload();
  EXPECT_EQ(edge_side->Lookup("shop.example.com")->source, CertSource::kUser);
  ASSERT_TRUE(store_->RemoveUserCertificate("shop.example.com").ok());
  edge_side->Reload();
  EXPECT_EQ(edge_side->Lookup("shop.example.com")->source, CertSource::kLocalCa);
}

TEST_F(UserCertTest, WildcardMatchesExactlyOneLabel) {
  auto [crt, key] = Write("wild", {"*.example.org"});
  ASSERT_TRUE(store_->AddUserCertificate("*.example.org", crt, key).ok());
  auto one = store_->Lookup("api.example.org");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->source, CertSource::kUser);
  EXPECT_EQ(one->name, "*.example.org");
  auto two = store_->Lookup("a.b.example.org");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->source, CertSource::kLocalCa);
  auto apex = store_->Lookup("example.org");
  ASSERT_TRUE(apex.ok());
  EXPECT_EQ(apex->source, CertSource::kLocalCa);

  // A wildcard certificate also serves one named host under it.
  auto [crt2, key2] = Write("wild2", {"*.example.net"});
  ASSERT_TRUE(store_->AddUserCertificate("api.example.net", crt2, key2).ok());
  EXPECT_FALSE(store_->AddUserCertificate("a.b.example.net", crt2, key2).ok());
}

TEST_F(UserCertTest, WrongKeyIsRefusedNamingTheFiles) {
  auto [crt, key] = Write("shop", {"shop.example.com"});
  auto [other_crt, other_key] = Write("other", {"shop.example.com"});
  Status st = store_->AddUserCertificate("shop.example.com", crt, other_key);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "user certificate for shop.example.com: " + other_key +
                              ": private key does not match the certificate in " + crt);
  EXPECT_EQ(st.message().find('\n'), std::string::npos);
  EXPECT_EQ(store_->Lookup("shop.example.com")->source, CertSource::kLocalCa);
}

TEST_F(UserCertTest, ExpiredCertificateIsRefused) {
  auto [crt, key] = Write("old", {"shop.example.com"}, -kDay * 100, -kDay * 10);
  Status st = store_->AddUserCertificate("shop.example.com", crt, key);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind(
                "user certificate for shop.example.com: " + crt + ": certificate expired on ", 0),
            0u)
      << st.message();
}

TEST_F(UserCertTest, CertificateForAnotherNameIsRefused) {
  auto [crt, key] = Write("other", {"other.example.com", "www.other.example.com"});
  Status st = store_->AddUserCertificate("shop.example.com", crt, key);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "user certificate for shop.example.com: " + crt +
                              ": certificate is for other.example.com, www.other.example.com, "
                              "not shop.example.com");
}

TEST_F(UserCertTest, UnreadableOrGarbledFilesAreNamed) {
  auto [crt, key] = Write("shop", {"shop.example.com"});
  Status missing = store_->AddUserCertificate("shop.example.com", tmp_.File("nope.crt"), key);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find(tmp_.File("nope.crt")), std::string::npos);

  WriteText(tmp_.File("garbage.crt"), "hello\n");
  Status garbage = store_->AddUserCertificate("shop.example.com", tmp_.File("garbage.crt"), key);
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.message().find(tmp_.File("garbage.crt") + ": no PEM certificate found"),
            std::string::npos);

  Status swapped = store_->AddUserCertificate("shop.example.com", key, crt);
  ASSERT_FALSE(swapped.ok());
  EXPECT_NE(swapped.message().find(key + ": no PEM certificate found"), std::string::npos);

  Status bad_name = store_->AddUserCertificate("shop example", crt, key);
  ASSERT_FALSE(bad_name.ok());
  EXPECT_NE(bad_name.message().find("not a valid host name"), std::string::npos);
}

TEST(ChallengeStoreTest, PutLookupRemove) {
  ChallengeStore challenges;
  EXPECT_EQ(challenges.KeyAuthorization("tok"), std::nullopt);
  challenges.Put("tok", "tok.thumb");
  EXPECT_EQ(challenges.KeyAuthorization("tok"), "tok.thumb");
  EXPECT_EQ(challenges.size(), 1u);
  challenges.Remove("tok");
  EXPECT_EQ(challenges.KeyAuthorization("tok"), std::nullopt);
}

}  // namespace
}  // namespace slipway::certs_test
