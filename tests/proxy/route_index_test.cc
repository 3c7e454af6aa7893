// Route compilation, host normalisation (cases in testdata/hosts.txt), the route slot,
// and header rewriting.

#include "proxy/route_index.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <fstream>
#include <sstream>
#include <tuple>

#include "proxy/headers.h"
#include "proxy/metrics.h"
#include "proxy/pages.h"
#include "proxy/upstream.h"

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

Route MakeRoute(const std::string& host, const std::string& label,
                std::vector<Upstream> upstreams = {}, const std::string& prefix = "/") {
  Route route;
  route.host = host;
  route.service_label = label;
  route.upstreams = std::move(upstreams);
  route.path_prefix = prefix;
  return route;
}

TEST(RouteIndexTest, FindsNormalisedHostsAndKeepsTheFirstDuplicate) {
  auto table = std::make_shared<RouteTable>();
  table->routes.push_back(MakeRoute("API.localhost", "p/api", {{"127.0.0.1", 1000}}));
  table->routes.push_back(MakeRoute("api.localhost", "p/other", {{"127.0.0.1", 2000}}));
  table->routes.push_back(MakeRoute("web.localhost", "", {{"localhost", 3000}, {"::1", 3001}}));
  table->routes.push_back(MakeRoute("bad.localhost", "p/bad", {{"127.0.0.1", 0}}));
  table->routes.push_back(MakeRoute("a.*.localhost", "p/star"));
  table->routes.push_back(MakeRoute("q.localhost", "p/q", {}, "/x?y"));
  auto index = RouteIndex::Build(table);
  ASSERT_EQ(index->size(), 3u);
  const CompiledRoute* api = index->Find("api.localhost", "/");
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(api->service_label, "p/api");
  EXPECT_EQ(api->key, "api.localhost/");
  ASSERT_EQ(api->upstreams.size(), 1u);
  EXPECT_EQ(api->upstreams[0].endpoint.port(), 1000);
  const CompiledRoute* web = index->Find("web.localhost", "/");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->service_label, "web.localhost");
  ASSERT_EQ(web->upstreams.size(), 2u);
  EXPECT_EQ(web->upstreams[0].endpoint.address().to_string(), "127.0.0.1");
  EXPECT_EQ(web->upstreams[1].endpoint.address().to_string(), "::1");
  EXPECT_TRUE(index->Find("bad.localhost", "/")->upstreams.empty());
  EXPECT_EQ(index->Find("API.localhost", "/"), nullptr);  // callers normalise first
  EXPECT_EQ(index->Find("nope", "/"), nullptr);
  EXPECT_EQ(index->Find("q.localhost", "/x"), nullptr);  // invalid prefix: skipped
}

TEST(RouteIndexTest, MatchesHostsAndPathsFromTestdata) {
  std::ifstream in(std::string(SLIPWAY_PROXY_TESTDATA) + "/routes.txt");
  ASSERT_TRUE(in.good());
  auto table = std::make_shared<RouteTable>();
  std::vector<std::tuple<int, std::string, std::string, std::string>> cases;
  std::string text;
  int line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (text.empty() || text[0] == '#') continue;
    std::istringstream words(text);
    std::string first, second, arrow, expected;
    words >> first >> second;
    if (first == "route") {
      std::string prefix;
      words >> prefix;
      table->routes.push_back(MakeRoute(second, "svc", {{"127.0.0.1", 1}}, prefix));
      continue;
    }
    words >> arrow >> expected;
    ASSERT_EQ(arrow, "=>") << "routes.txt:" << line;
    cases.emplace_back(line, first, second, expected);
  }
  auto index = RouteIndex::Build(table);
  for (const auto& [at, host, target, expected] : cases) {
    const CompiledRoute* route = index->Find(host, target);
    EXPECT_EQ(route ? route->key : "<none>", expected)
        << "routes.txt:" << at << ": " << host << " " << target;
  }
  EXPECT_GT(cases.size(), 20u);
}

TEST(RouteIndexTest, UpstreamStateAndStatsOutliveATable) {
  UpstreamRegistry upstreams;
  StatsRegistry stats(2);
  BuildContext context{&upstreams, &stats};
  auto table = std::make_shared<RouteTable>();
  table->routes.push_back(MakeRoute("a.localhost", "p/a", {{"127.0.0.1", 1000}}));
  auto first = RouteIndex::Build(table, context);
  const CompiledRoute* a = first->Find("a.localhost", "/");
  a->upstreams[0].state->in_flight = 3;
  a->stats->Record(1, 200, 10, 20, 1500);
  auto second = RouteIndex::Build(table, context);
  const CompiledRoute* again = second->Find("a.localhost", "/");
  EXPECT_EQ(again->upstreams[0].state.get(), a->upstreams[0].state.get());
  EXPECT_EQ(again->stats.get(), a->stats.get());
  EXPECT_EQ(again->upstreams[0].state->in_flight.load(), 3);
  first.reset();
  second.reset();
  upstreams.Prune();
  stats.Prune();
  auto third = RouteIndex::Build(table, context);
  RouteMetrics m;
  third->Find("a.localhost", "/")->stats->Snapshot(&m);
  EXPECT_EQ(m.requests, 0u);  // nobody held the route: it starts over
}

TEST(RouteSlotTest, CacheFollowsSwapsAndOldTablesLiveOn) {
  RouteSlot slot;
  RouteCache cache(slot);
  EXPECT_EQ(cache.Current()->size(), 0u);
  auto table = std::make_shared<RouteTable>();
  table->routes.push_back(MakeRoute("a.localhost", "p/a"));
  slot.Store(RouteIndex::Build(table));
  std::shared_ptr<const RouteIndex> held = cache.Current();
  EXPECT_NE(held->Find("a.localhost", "/"), nullptr);
  slot.Store(RouteIndex::Build(nullptr));
  EXPECT_EQ(cache.Current()->Find("a.localhost", "/"), nullptr);
  EXPECT_NE(held->Find("a.localhost", "/"), nullptr);  // an in-flight request keeps its table
}

TEST(BalanceTest, RoundRobinSkipsTriedAndEjectedReplicas) {
  auto table = std::make_shared<RouteTable>();
  table->routes.push_back(MakeRoute(
      "a.localhost", "p/a", {{"127.0.0.1", 1001}, {"127.0.0.1", 1002}, {"127.0.0.1", 1003}}));
  auto index = RouteIndex::Build(table);
  const CompiledRoute& route = *index->Find("a.localhost", "/");
  const int64_t now = SteadyNowNs();
  std::vector<int> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(PickUpstream(route, TriedSet(), now));
  EXPECT_EQ(picks, (std::vector<int>{0, 1, 2, 0, 1, 2}));
  Eject(*route.upstreams[1].state, std::chrono::milliseconds(1000), now);
  for (int i = 0; i < 6; ++i) EXPECT_NE(PickUpstream(route, TriedSet(), now), 1);
  // Ejected replicas come back after the period.
  EXPECT_FALSE(route.upstreams[1].state->ejected(now + 2'000'000'000LL));
  TriedSet tried;
  tried.Add(0);
  tried.Add(2);
  EXPECT_EQ(PickUpstream(route, tried, now), 1);  // only an ejected one left: try it anyway
  tried.Add(1);
  EXPECT_EQ(PickUpstream(route, tried, now), -1);
}

TEST(BalanceTest, LeastConnectionsPicksTheLeastBusy) {
  auto table = std::make_shared<RouteTable>();
  Route r = MakeRoute("a.localhost", "p/a", {{"127.0.0.1", 1001}, {"127.0.0.1", 1002}});
  r.balance = Balance::kLeastConnections;
  table->routes.push_back(r);
  auto index = RouteIndex::Build(table);
  const CompiledRoute& route = *index->Find("a.localhost", "/");
  route.upstreams[0].state->in_flight = 2;
  route.upstreams[1].state->in_flight = 1;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(PickUpstream(route, TriedSet(), SteadyNowNs()), 1);
  route.upstreams[1].state->in_flight = 5;
  EXPECT_EQ(PickUpstream(route, TriedSet(), SteadyNowNs()), 0);
}

TEST(MetricsTest, BucketsAndPercentiles) {
  for (uint64_t us : {0ull, 1ull, 3ull, 4ull, 7ull, 8ull, 100ull, 1000ull, 12345ull, 1ull << 40}) {
    const int b = LatencyBucketIndex(us);
    ASSERT_GE(b, 0);
    ASSERT_LT(b, kLatencyBuckets);
    if (us < (1ull << 36)) {
      EXPECT_LT(us, LatencyBucketUpperMicros(b)) << us;
      if (b > 0) {
        EXPECT_GE(us, LatencyBucketUpperMicros(b - 1)) << us;
      }
    }
  }
  RouteStats stats(2);
  for (int i = 0; i < 90; ++i) stats.Record(0, 200, 1, 2, 1000);   // 1 ms
  for (int i = 0; i < 9; ++i) stats.Record(1, 404, 0, 0, 20'000);  // 20 ms
  stats.Record(1, 502, 0, 0, 400'000);                             // 400 ms
  RouteMetrics m;
  stats.Snapshot(&m);
  EXPECT_EQ(m.requests, 100u);
  EXPECT_EQ(m.status_classes[1], 90u);
  EXPECT_EQ(m.status_classes[3], 9u);
  EXPECT_EQ(m.status_classes[4], 1u);
  EXPECT_EQ(m.bytes_in, 90u);
  EXPECT_EQ(m.bytes_out, 180u);
  EXPECT_GE(m.p50_ms, 1.0);
  EXPECT_LE(m.p50_ms, 1.25);
  EXPECT_GE(m.p95_ms, 20.0);
  EXPECT_LE(m.p95_ms, 25.0);
  EXPECT_GE(m.p99_ms, 20.0);
  EXPECT_LE(m.p99_ms, 25.0);
  ASSERT_EQ(m.latency.size(), 3u);
  EXPECT_EQ(m.latency[0].count, 90u);
}

TEST(HeadersTest, RequestHeadDropsHopByHopAndAddsForwardedFields) {
  http::request<http::empty_body> req{http::verb::post, "/p?q=1", 11};
  req.set(http::field::host, "a.localhost:8080");
  req.set(http::field::connection, "keep-alive, X-Drop, Content-Length, Transfer-Encoding, Host");
  req.set("X-Drop", "1");
  req.set(http::field::keep_alive, "timeout=5");
  req.set(http::field::te, "trailers");
  req.set(http::field::trailer, "X-T");
  req.set(http::field::upgrade, "websocket");
  req.set("Proxy-Connection", "keep-alive");
  req.set(http::field::content_length, "3");
  req.set("X-Keep", "yes");
  req.insert("X-Forwarded-For", "10.0.0.1");
  req.insert("X-Forwarded-For", "10.0.0.2");
  req.set("X-Forwarded-Proto", "https");
  req.set("X-Request-Id", "client-id");
  ForwardedRequest forward;
  forward.client_ip = "127.0.0.1";
  forward.proto = "http";
  forward.request_id = "rid";
  forward.framing = BodyFraming::kLength;
  forward.length = 3;
  std::string head;
  WriteUpstreamRequestHead(req, forward, &head);
  EXPECT_EQ(head,
            "POST /p?q=1 HTTP/1.1\r\n"
            "Host: a.localhost:8080\r\n"
            "X-Keep: yes\r\n"
            "Content-Length: 3\r\n"
            "X-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\n"
            "X-Forwarded-Proto: http\r\n"
            "X-Forwarded-Host: a.localhost:8080\r\n"
            "X-Request-Id: rid\r\n\r\n");
}

TEST(HeadersTest, UpgradeIsKeptWhenUpgrading) {
  http::request<http::empty_body> req{http::verb::get, "/ws", 11};
  req.set(http::field::host, "a");
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::upgrade, "websocket");
  EXPECT_TRUE(IsUpgradeRequest(req));
  ForwardedRequest forward;
  forward.client_ip = "::1";
  forward.proto = "https";
  forward.request_id = "r";
  forward.upgrade = true;
  std::string head;
  WriteUpstreamRequestHead(req, forward, &head);
  EXPECT_NE(head.find("\r\nUpgrade: websocket\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nConnection: upgrade\r\n"), std::string::npos) << head;
  req.version(10);
  EXPECT_FALSE(IsUpgradeRequest(req));
}

TEST(HeadersTest, ResponseHeadFraming) {
  http::response<http::empty_body> res{http::status::ok, 11};
  res.set(http::field::connection, "close, X-Internal");
  res.set("X-Internal", "1");
  res.set(http::field::transfer_encoding, "chunked");
  res.set("X-Request-Id", "theirs");
  res.set("X-App", "kept");
  ClientResponse answer;
  answer.client_version = 10;
  answer.keep_alive = false;
  answer.request_id = "ours";
  answer.framing = BodyFraming::kCloseDelimited;
  std::string head;
  WriteClientResponseHead(res, answer, &head);
  EXPECT_EQ(head,
            "HTTP/1.1 200 OK\r\nX-App: kept\r\nConnection: close\r\nX-Request-Id: ours\r\n\r\n");
  answer.client_version = 11;
  answer.keep_alive = true;
  answer.framing = BodyFraming::kLength;
  answer.length = 42;
  WriteClientResponseHead(res, answer, &head);
  EXPECT_EQ(head,
            "HTTP/1.1 200 OK\r\nX-App: kept\r\nContent-Length: 42\r\nX-Request-Id: ours\r\n\r\n");
}

TEST(HeadersTest, SmugglingShapesAreRefused) {
  auto check = [](std::initializer_list<std::pair<const char*, const char*>> fields,
                  unsigned version = 11) {
    http::request<http::empty_body> req{http::verb::post, "/", version};
    for (const auto& [name, value] : fields) req.insert(name, value);
    return CheckRequestHead(req);
  };
  EXPECT_EQ(check({{"Host", "a"}, {"Content-Length", "5"}}), nullptr);
  EXPECT_EQ(check({{"Host", "a"}, {"Transfer-Encoding", "Chunked"}}), nullptr);
  EXPECT_NE(check({{"Content-Length", "5"}, {"Content-Length", "5"}}), nullptr);
  EXPECT_NE(check({{"Content-Length", "5, 5"}}), nullptr);
  EXPECT_NE(check({{"Transfer-Encoding", "gzip, chunked"}}), nullptr);
  EXPECT_NE(check({{"Transfer-Encoding", "identity"}}), nullptr);
  EXPECT_NE(check({{"Transfer-Encoding", "chunked"}, {"Content-Length", "3"}}), nullptr);
  EXPECT_NE(check({{"Transfer-Encoding", "chunked"}}, 10), nullptr);
  EXPECT_NE(check({{"Host", "a"}, {"Host", "b"}}), nullptr);
  EXPECT_NE(check({{"Host", "a/b@c"}}), nullptr);
}

TEST(HeadersTest, RequestIds) {
  EXPECT_TRUE(IsSaneRequestId("abc-123_X.y:z"));
  EXPECT_FALSE(IsSaneRequestId(""));
  EXPECT_FALSE(IsSaneRequestId("has space"));
  EXPECT_FALSE(IsSaneRequestId(std::string(129, 'a')));
  RequestIdGenerator ids;
  std::string a, b;
  ids.Next(&a);
  ids.Next(&b);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(IsSaneRequestId(a));
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
