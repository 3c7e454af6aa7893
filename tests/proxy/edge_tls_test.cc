// HTTPS on the edge: SNI picks the certificate from the TlsContextProvider, requests are
// proxied with X-Forwarded-Proto https, and plain-HTTP redirects name the HTTPS port.

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "edge_fixture.h"
#include "proxy/edge.h"
#include "test_util.h"
#include "tls_test_util.h"

namespace slipway {
namespace {

using namespace proxy_test;

class EdgeTlsTest : public EdgeTest {
 protected:
  void StartTls(TlsContextProvider* provider, EdgeOptions options = {}) {
    options.https_port = 0;
    options.tls = provider;
    StartEdge(options);
  }
};

TEST_F(EdgeTlsTest, SniPicksTheCertificateAndRequestsAreProxied) {
  TestTlsProvider provider{"a.test", "b.test"};
  TestBackend a("A");
  TestBackend b("B");
  StartTls(&provider);
  ASSERT_GT(edge_->https_port(), 0);
  ASSERT_NE(edge_->https_port(), edge_->port());
  SetRoutes({ProxyRoute("a.test", "p/a", {a.port()}), ProxyRoute("b.test", "p/b", {b.port()})});

  const std::string port = std::to_string(edge_->https_port());
  TlsExchange to_a = TlsGet(edge_->https_port(), "a.test", "a.test:" + port, "/x");
  ASSERT_EQ(to_a.error, "");
  EXPECT_EQ(to_a.subject_cn, "a.test");
  ASSERT_TRUE(to_a.response.has_value());
  EXPECT_EQ(to_a.response->body(), "A GET /x ");
  EXPECT_EQ(a.received()[0].get("x-forwarded-proto"), "https");
  EXPECT_EQ(a.received()[0].get("x-forwarded-host"), "a.test:" + port);

  TlsExchange to_b = TlsGet(edge_->https_port(), "B.TEST", "b.test", "/y");
  ASSERT_EQ(to_b.error, "");
  EXPECT_EQ(to_b.subject_cn, "b.test");
  EXPECT_EQ(to_b.response->body(), "B GET /y ");

  // No SNI: the provider's choice for "" (here a.test's certificate); routing is by Host.
  TlsExchange no_sni = TlsGet(edge_->https_port(), "", "b.test", "/z");
  ASSERT_EQ(no_sni.error, "");
  EXPECT_EQ(no_sni.subject_cn, "a.test");
  EXPECT_EQ(no_sni.response->body(), "B GET /z ");

  // A name the provider has no certificate for: the handshake is refused.
  TlsExchange unknown = TlsGet(edge_->https_port(), "c.test", "c.test", "/");
  EXPECT_NE(unknown.error, "");
  EXPECT_EQ(a.requests() + b.requests(), 3);

  // Plain HTTP still works on its own port.
  auto plain = Call("a.test", "/plain");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->body, "A GET /plain ");
  EXPECT_EQ(a.received().back().get("x-forwarded-proto"), "http");
}

TEST_F(EdgeTlsTest, PlainRequestsRedirectToTheHttpsPort) {
  TestTlsProvider provider{"secure.test"};
  TestBackend backend("S");
  StartTls(&provider);
  Route secure = ProxyRoute("secure.test", "p/s", {backend.port()});
  secure.redirect_to_https = true;
  SetRoutes({secure});
  auto res = Call("secure.test:" + std::to_string(edge_->port()), "/account?tab=2");
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 308);
  EXPECT_EQ(res->headers["location"],
            "https://secure.test:" + std::to_string(edge_->https_port()) + "/account?tab=2");
  EXPECT_EQ(backend.requests(), 0);
  // Over HTTPS the same route is served.
  TlsExchange tls = TlsGet(edge_->https_port(), "secure.test", "secure.test", "/account?tab=2");
  ASSERT_EQ(tls.error, "");
  ASSERT_TRUE(tls.response.has_value());
  EXPECT_EQ(tls.response->result_int(), 200u);
  EXPECT_EQ(tls.response->body(), "S GET /account?tab=2 ");
  EXPECT_FALSE(tls.response->find("x-request-id") == tls.response->end());
}

TEST_F(EdgeTlsTest, KeepAliveAndLargeBodiesOverTls) {
  TestTlsProvider provider{"big.test"};
  const std::string big(3 << 20, 'z');
  TestBackend backend("big", [&](const BackendRequest&, boost::asio::ip::tcp::socket& socket) {
    WriteAll(socket, TestBackend::TextResponse(200, big));
  });
  std::vector<AccessLogEntry> log;
  std::mutex mu;
  EdgeOptions options;
  options.access_log = [&](const AccessLogEntry& e) {
    std::lock_guard<std::mutex> lock(mu);
    log.push_back(e);
  };
  StartTls(&provider, options);
  SetRoutes({ProxyRoute("big.test", "p/big", {backend.port()})});
  TlsExchange tls = TlsGet(edge_->https_port(), "big.test", "big.test", "/");
  ASSERT_EQ(tls.error, "");
  ASSERT_TRUE(tls.response.has_value());
  EXPECT_TRUE(tls.response->body() == big) << tls.response->body().size();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!log.empty()) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_TRUE(log[0].tls);
  EXPECT_EQ(log[0].bytes_out, big.size());
}

}  // namespace
}  // namespace slipway
