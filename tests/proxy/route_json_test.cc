// The routing table's JSON form (route_json.h): every Route field round-trips, defaults
// apply to missing keys, and malformed input names the route and the field.

#include "proxy/route_json.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace slipway {
namespace {

TEST(RouteJsonTest, EveryFieldRoundTrips) {
  RouteTable table;
  Route a;
  a.host = "*.demo.localhost";
  a.service_label = "demo/api";
  a.upstreams = {{"127.0.0.1", 9000}, {"::1", 9001}};
  a.path_prefix = "/api";
  a.balance = Balance::kLeastConnections;
  a.max_body_bytes = 12345;
  a.redirect_to_https = true;
  Route b;
  b.host = "web.demo.localhost";
  b.static_root = "/srv/www";
  b.max_body_bytes = -1;
  b.path_prefix = "/shop";
  b.headers = {{"/assets/(.*)", {{"Cache-Control", "public, max-age=60"}, {"X-A", "1"}}}};
  b.redirects = {{"/old/:path*", "/new/:path*", 301}, {"/home", "/", 308}};
  b.rewrites = {{"/api/:path*", "http://api.demo.localhost:8080/:path*"}};
  b.clean_urls = true;
  b.trailing_slash = TrailingSlash::kRemove;
  b.spa_fallback = true;
  table.routes = {a, b};

  auto parsed = RouteTableFromJson(RouteTableToJson(table));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->routes.size(), 2u);
  const Route& r = parsed->routes[0];
  EXPECT_EQ(r.host, a.host);
  EXPECT_EQ(r.service_label, a.service_label);
  ASSERT_EQ(r.upstreams.size(), 2u);
  EXPECT_EQ(r.upstreams[1].host, "::1");
  EXPECT_EQ(r.upstreams[1].port, 9001);
  EXPECT_EQ(r.path_prefix, "/api");
  EXPECT_EQ(r.balance, Balance::kLeastConnections);
  EXPECT_EQ(r.max_body_bytes, 12345);
  EXPECT_TRUE(r.redirect_to_https);
  const Route& s = parsed->routes[1];
  EXPECT_EQ(s.static_root, "/srv/www");
  EXPECT_EQ(s.max_body_bytes, -1);
  EXPECT_EQ(s.balance, Balance::kRoundRobin);
  EXPECT_FALSE(s.redirect_to_https);
  EXPECT_EQ(s.path_prefix, "/shop");
  ASSERT_EQ(s.headers.size(), 1u);
  EXPECT_EQ(s.headers[0].source, "/assets/(.*)");
  EXPECT_EQ(s.headers[0].headers, b.headers[0].headers);
  ASSERT_EQ(s.redirects.size(), 2u);
  EXPECT_EQ(s.redirects[0].source, "/old/:path*");
  EXPECT_EQ(s.redirects[0].destination, "/new/:path*");
  EXPECT_EQ(s.redirects[0].status, 301);
  EXPECT_EQ(s.redirects[1].status, 308);
  ASSERT_EQ(s.rewrites.size(), 1u);
  EXPECT_EQ(s.rewrites[0].destination, "http://api.demo.localhost:8080/:path*");
  EXPECT_TRUE(s.clean_urls);
  EXPECT_EQ(s.trailing_slash, TrailingSlash::kRemove);
  EXPECT_TRUE(s.spa_fallback);
  // A proxied route has no static keys; a static one without rules takes the defaults.
  EXPECT_TRUE(r.redirects.empty() && r.rewrites.empty() && r.headers.empty());
  auto plain = RouteTableFromJson(R"({"routes": [{"host": "w", "static_root": "/srv"}]})");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->routes[0].clean_urls);
  EXPECT_EQ(plain->routes[0].trailing_slash, TrailingSlash::kLeave);
  EXPECT_FALSE(plain->routes[0].spa_fallback);
}

TEST(RouteJsonTest, MissingKeysTakeDefaults) {
  auto parsed = RouteTableFromJson(R"({"routes": [{"host": "a.localhost",
                                        "upstreams": [{"port": 8000}]}]})");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const Route& r = parsed->routes.at(0);
  EXPECT_EQ(r.service_label, "a.localhost");
  EXPECT_EQ(r.path_prefix, "/");
  EXPECT_EQ(r.balance, Balance::kRoundRobin);
  EXPECT_EQ(r.max_body_bytes, 0);
  EXPECT_FALSE(r.redirect_to_https);
  EXPECT_EQ(r.upstreams.at(0).host, "127.0.0.1");
}

TEST(RouteJsonTest, MalformedInputNamesTheRouteAndField) {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {"[]", "routing table: expected {\"routes\": [...]}"},
      {"not json", "routing table: expected {\"routes\": [...]}"},
      {R"({"routes": [{"service": "x"}]})", "routing table: route 0: \"host\" must be a string"},
      {R"({"routes": [{"host": "a"}, {"host": "b", "balance": "random"}]})",
       "routing table: route 1: \"balance\" must be \"round_robin\" or \"least_connections\""},
      {R"({"routes": [{"host": "a", "max_body_bytes": "big"}]})",
       "routing table: route 0: \"max_body_bytes\" must be an integer"},
      {R"({"routes": [{"host": "a", "redirect_to_https": "yes"}]})",
       "routing table: route 0: \"redirect_to_https\" must be true or false"},
      {R"({"routes": [{"host": "a", "path_prefix": 3}]})",
       "routing table: route 0: \"path_prefix\" must be a string"},
      {R"({"routes": [{"host": "a", "upstreams": [{"host": "h"}]}]})",
       "routing table: route 0: each upstream needs an integer \"port\""},
      {R"({"routes": [{"host": "a", "redirects": {}}]})",
       "routing table: route 0: \"redirects\" must be a list"},
      {R"({"routes": [{"host": "a", "rewrites": [{"destination": "/x"}]}]})",
       "routing table: route 0: each of \"rewrites\" needs a string \"source\""},
      {R"({"routes": [{"host": "a", "redirects": [{"source": "/x"}]}]})",
       "routing table: route 0: each of \"redirects\" needs a string \"destination\""},
      {R"({"routes": [{"host": "a", "redirects": [{"source": "/x", "destination": "/",
                                                  "status": "301"}]}]})",
       "routing table: route 0: a redirect's \"status\" must be an integer"},
      {R"({"routes": [{"host": "a", "headers": [{"source": "/x", "headers": [["A"]]}]}]})",
       "routing table: route 0: each header must be [\"Name\", \"value\"]"},
      {R"({"routes": [{"host": "a", "clean_urls": 1}]})",
       "routing table: route 0: \"clean_urls\" must be true or false"},
      {R"({"routes": [{"host": "a", "spa_fallback": "yes"}]})",
       "routing table: route 0: \"spa_fallback\" must be true or false"},
      {R"({"routes": [{"host": "a", "trailing_slash": true}]})",
       "routing table: route 0: \"trailing_slash\" must be \"\", \"add\" or \"remove\""},
  };
  for (const Case& c : cases) {
    auto parsed = RouteTableFromJson(c.json);
    ASSERT_FALSE(parsed.ok()) << c.json;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(parsed.status().message(), c.message) << c.json;
  }
}

TEST(RouteJsonTest, MetricsAsJson) {
  RouteMetrics m;
  m.host = "a.localhost";
  m.path_prefix = "/api";
  m.service_label = "p/a";
  m.requests = 3;
  m.status_classes = {0, 2, 0, 0, 1};
  m.bytes_in = 5;
  m.bytes_out = 7;
  m.p50_ms = 1.5;
  m.latency = {{1.5, 2}, {20.48, 1}};
  auto doc = nlohmann::json::parse(RouteMetricsToJson({m}));
  const auto& r = doc["routes"][0];
  EXPECT_EQ(r["host"], "a.localhost");
  EXPECT_EQ(r["path_prefix"], "/api");
  EXPECT_EQ(r["requests"], 3);
  EXPECT_EQ(r["status"]["2xx"], 2);
  EXPECT_EQ(r["status"]["5xx"], 1);
  EXPECT_EQ(r["bytes_out"], 7);
  EXPECT_EQ(r["latency_ms"]["p50"], 1.5);
  EXPECT_EQ(r["latency_ms"]["buckets"][1][1], 1);
}

TEST(AccessLogTest, OneJsonObjectPerLine) {
  AccessLogEntry e;
  e.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1714564800123));
  e.request_id = "rid";
  e.client_ip = "127.0.0.1";
  e.method = "GET";
  e.host = "a.localhost";
  e.path = "/q?x=\"1\"\n";
  e.status = 200;
  e.bytes_in = 1;
  e.bytes_out = 2;
  e.duration_ms = 1.25;
  e.upstream = "127.0.0.1:9000";
  e.route = "a.localhost/";
  e.service = "p/a";
  const std::string line = FormatAccessLogLine(e);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto doc = nlohmann::json::parse(line);
  EXPECT_EQ(doc["time"], "2024-05-01T12:00:00.123Z");
  EXPECT_EQ(doc["path"], "/q?x=\"1\"\n");
  EXPECT_EQ(doc["status"], 200);
  EXPECT_EQ(doc["ms"], 1.25);
  EXPECT_EQ(doc["upstream"], "127.0.0.1:9000");
  EXPECT_EQ(doc["tls"], false);
  EXPECT_FALSE(doc.contains("note"));
}

TEST(RouteMetricsJsonTest, RoundTripsWhatTheEdgeSendsTheServer) {
  RouteMetrics m;
  m.host = "api.demo.localhost";
  m.path_prefix = "/v1";
  m.service_label = "demo/api";
  m.requests = 12;
  m.status_classes = {0, 9, 1, 1, 1};
  m.bytes_in = 100;
  m.bytes_out = 2000;
  m.p50_ms = 1.5;
  m.p95_ms = 8;
  m.p99_ms = 16;
  m.latency = {{2.0, 10}, {16.0, 2}};
  auto back = RouteMetricsFromJson(RouteMetricsToJson({m}));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), 1u);
  const RouteMetrics& r = (*back)[0];
  EXPECT_EQ(r.host, m.host);
  EXPECT_EQ(r.path_prefix, m.path_prefix);
  EXPECT_EQ(r.service_label, m.service_label);
  EXPECT_EQ(r.requests, 12u);
  EXPECT_EQ(r.status_classes, m.status_classes);
  EXPECT_EQ(r.bytes_out, 2000u);
  EXPECT_EQ(r.p95_ms, 8);
  ASSERT_EQ(r.latency.size(), 2u);
  EXPECT_EQ(r.latency[1].upper_ms, 16.0);
  EXPECT_EQ(r.latency[1].count, 2u);

  EXPECT_FALSE(RouteMetricsFromJson("{\"routes\": 3}").ok());
  EXPECT_FALSE(RouteMetricsFromJson(R"({"routes": [{"latency_ms": {"buckets": [[1]]}}]})").ok());
}

TEST(UpstreamLoadsJsonTest, RoundTripsAndRejectsMissingCounts) {
  auto back = UpstreamLoadsFromJson(UpstreamLoadsToJson({{"127.0.0.1", 9000, 3}}));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].address, "127.0.0.1");
  EXPECT_EQ((*back)[0].port, 9000);
  EXPECT_EQ((*back)[0].in_flight, 3);
  auto bad = UpstreamLoadsFromJson(R"({"upstreams": [{"port": 9000}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("in_flight"), std::string::npos);
}

}  // namespace
}  // namespace slipway
