// Route compilation, host normalisation (cases in testdata/hosts.txt), the route slot,
// and header rewriting.

#include "proxy/route_index.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <fstream>

#include "proxy/headers.h"
#include "proxy/pages.h"

namespace slipway::proxy {
namespace {

namespace http = boost::beast::http;

std::string Trim(std::string s) {
  s.erase(0, s.find_first_not_of(' '));
  s.erase(s.find_last_not_of(' ') + 1);
  return s == "<empty>" ? "" : s;
}

TEST(NormalizeHostTest, CasesFromTestdata) {
  std::ifstream in(std::string(SLIPWAY_PROXY_TESTDATA) + "/hosts.txt");
  std::string text;
  int line = 0, checked = 0;
  while (std::getline(in, text)) {
    ++line;
    if (text.empty() || text[0] == '#') continue;
    auto arrow = text.find("=>");
    ASSERT_NE(arrow, std::string::npos) << "hosts.txt:" << line;
    EXPECT_EQ(NormalizeHost(Trim(text.substr(0, arrow))), Trim(text.substr(arrow + 2)))
        << "hosts.txt:" << line;
    ++checked;
  }
  EXPECT_GT(checked, 5);
}

TEST(RouteIndexTest, FindsNormalisedHostsAndKeepsTheFirstDuplicate) {
  auto table = std::make_shared<RouteTable>();
  table->routes.push_back(Route{"API.localhost", "p/api", {{"127.0.0.1", 1000}}, ""});
  table->routes.push_back(Route{"api.localhost", "p/other", {{"127.0.0.1", 2000}}, ""});
  table->routes.push_back(Route{"web.localhost", "", {{"localhost", 3000}, {"::1", 3001}}, ""});
  table->routes.push_back(Route{"bad.localhost", "p/bad", {{"127.0.0.1", 0}}, ""});
  auto index = RouteIndex::Build(table);
  ASSERT_EQ(index->size(), 3u);
  const CompiledRoute* api = index->Find("api.localhost");
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(api->service_label, "p/api");
  ASSERT_EQ(api->upstreams.size(), 1u);
  EXPECT_EQ(api->upstreams[0].port(), 1000);
  const CompiledRoute* web = index->Find("web.localhost");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->service_label, "web.localhost");
  ASSERT_EQ(web->upstreams.size(), 2u);
  EXPECT_EQ(web->upstreams[0].address().to_string(), "127.0.0.1");
  EXPECT_EQ(web->upstreams[1].address().to_string(), "::1");
  EXPECT_TRUE(index->Find("bad.localhost")->upstreams.empty());
  EXPECT_EQ(index->Find("API.localhost"), nullptr);  // callers normalise first
  EXPECT_EQ(index->Find("nope"), nullptr);
}

TEST(RouteSlotTest, CacheFollowsSwapsAndOldTablesLiveOn) {
  RouteSlot slot;
  RouteCache cache(slot);
  EXPECT_EQ(cache.Current()->size(), 0u);
  auto table = std::make_shared<RouteTable>();
  table->routes.push_back(Route{"a.localhost", "p/a", {}, ""});
  slot.Store(RouteIndex::Build(table));
  std::shared_ptr<const RouteIndex> held = cache.Current();
  EXPECT_NE(held->Find("a.localhost"), nullptr);
  slot.Store(RouteIndex::Build(nullptr));
  EXPECT_EQ(cache.Current()->Find("a.localhost"), nullptr);
  EXPECT_NE(held->Find("a.localhost"), nullptr);  // an in-flight request keeps its table
}

TEST(HeadersTest, HopByHopFieldsGoButFramingStays) {
  http::request<http::empty_body> req{http::verb::post, "/", 11};
  req.set(http::field::host, "a.localhost");
  req.set(http::field::connection, "keep-alive, X-Drop, Content-Length, Transfer-Encoding, Host");
  req.set("X-Drop", "1");
  req.set(http::field::keep_alive, "timeout=5");
  req.set(http::field::te, "trailers");
  req.set(http::field::trailer, "X-T");
  req.set(http::field::upgrade, "websocket");
  req.set("Proxy-Connection", "keep-alive");
  req.set(http::field::content_length, "3");
  req.set("X-Keep", "yes");
  RemoveHopByHop(req, /*keep_upgrade=*/false);
  EXPECT_EQ(req.count(http::field::connection), 0u);
  EXPECT_EQ(req.count("X-Drop"), 0u);
  EXPECT_EQ(req.count(http::field::keep_alive), 0u);
  EXPECT_EQ(req.count(http::field::te), 0u);
  EXPECT_EQ(req.count(http::field::trailer), 0u);
  EXPECT_EQ(req.count(http::field::upgrade), 0u);
  EXPECT_EQ(req.count("Proxy-Connection"), 0u);
  EXPECT_EQ(req[http::field::content_length], "3");
  EXPECT_EQ(req[http::field::host], "a.localhost");
  EXPECT_EQ(req["X-Keep"], "yes");
}

TEST(HeadersTest, UpgradeIsKeptWhenUpgrading) {
  http::request<http::empty_body> req{http::verb::get, "/ws", 11};
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::upgrade, "websocket");
  EXPECT_TRUE(IsUpgradeRequest(req));
  RemoveHopByHop(req, /*keep_upgrade=*/true);
  EXPECT_EQ(req[http::field::upgrade], "websocket");
  req.version(10);
  EXPECT_FALSE(IsUpgradeRequest(req));
}

TEST(HeadersTest, ForwardedFields) {
  http::request<http::empty_body> req{http::verb::get, "/", 11};
  req.insert("X-Forwarded-For", "10.0.0.1");
  req.insert("X-Forwarded-For", "10.0.0.2");
  AddForwardedFields(req, "127.0.0.1", "http", "a.localhost:8080");
  EXPECT_EQ(req["X-Forwarded-For"], "10.0.0.1, 10.0.0.2, 127.0.0.1");
  EXPECT_EQ(req.count("X-Forwarded-For"), 1u);
  EXPECT_EQ(req["X-Forwarded-Proto"], "http");
  EXPECT_EQ(req["X-Forwarded-Host"], "a.localhost:8080");
}

TEST(PagesTest, HtmlIsEscapedAndTextIsPlain) {
  Page page = UnknownHostPage("<x>.localhost");
  EXPECT_EQ(page.status, http::status::not_found);
  std::string html = RenderPage(page, true);
  EXPECT_NE(html.find("No Slipway app is deployed at &lt;x&gt;.localhost"), std::string::npos);
  EXPECT_EQ(html.find("<x>"), std::string::npos);
  std::string text = RenderPage(page, false);
  EXPECT_EQ(text.rfind("No Slipway app is deployed at <x>.localhost\n", 0), 0u);
  EXPECT_TRUE(WantsHtml("text/html,application/xhtml+xml"));
  EXPECT_FALSE(WantsHtml("*/*"));
}

}  // namespace
}  // namespace slipway::proxy
