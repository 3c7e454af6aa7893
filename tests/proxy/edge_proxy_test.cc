// The edge's proxying machinery against real sockets: keep-alive pools, balancing,
// ejection and retries, limits and request smuggling, request ids, the access log and
// metrics, path and wildcard routing, ACME challenges and HTTPS redirects.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/write.hpp>
#include <mutex>
#include <thread>

#include "edge_fixture.h"
#include "proxy/edge.h"
#include "proxy/tls.h"
#include "test_util.h"

namespace slipway {
namespace {

using namespace proxy_test;
using boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Polls `condition` until it holds or `timeout` passes.
template <class F>
bool Eventually(F condition, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// The access log entry for `path` (entries arrive in completion order, across threads).
const AccessLogEntry* EntryFor(const std::vector<AccessLogEntry>& log, const std::string& path) {
  for (const auto& e : log) {
    if (e.path == path) return &e;
  }
  return nullptr;
}

// ---- keep-alive pools ---------------------------------------------------------------

TEST_F(EdgeTest, PoolReusesUpstreamConnections) {
  TestBackend backend("b");
  StartEdge();
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});
  RawClient client(edge_->port());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(
        client.Send("GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: app.localhost\r\n\r\n"));
    auto res = client.ReadResponse();
    ASSERT_TRUE(res.has_value());
    ASSERT_EQ(res->body(), "b GET /" + std::to_string(i) + " ");
  }
  // One client connection lives on one thread, whose pool keeps one upstream connection.
  EXPECT_EQ(backend.connections(), 1);
  // Clients on new connections land on either thread: at most one upstream connection each.
  for (int i = 0; i < 10; ++i) {
    auto res = Call("app.localhost", "/c");
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, 200);
  }
  EXPECT_EQ(backend.requests(), 30);
  EXPECT_LE(backend.connections(), 2);
}

TEST_F(EdgeTest, PoolDropsConnectionsTheUpstreamWillClose) {
  TestBackend closing("closing", [](const BackendRequest& req, tcp::socket& socket) {
    WriteAll(socket, TestBackend::TextResponse(200, "bye " + req.target, "Connection: close\r\n"));
    socket.close();
  });
  TestBackend garbage("garbage", [](const BackendRequest&, tcp::socket& socket) {
    // More bytes than the response: the connection cannot carry another exchange.
    WriteAll(socket, TestBackend::TextResponse(200, "ok") + "EXTRA");
  });
  StartEdge();
  SetRoutes({ProxyRoute("c.localhost", "p/c", {closing.port()}),
             ProxyRoute("g.localhost", "p/g", {garbage.port()})});
  RawClient client(edge_->port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client.Send("GET /x HTTP/1.1\r\nHost: c.localhost\r\n\r\n"));
    auto res = client.ReadResponse();
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->body(), "bye /x");
    EXPECT_TRUE(res->keep_alive());  // the upstream's close is not the client's
  }
  EXPECT_EQ(closing.connections(), 3);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: g.localhost\r\n\r\n"));
    auto res = client.ReadResponse();
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->body(), "ok");
  }
  EXPECT_EQ(garbage.connections(), 2);
}

TEST_F(EdgeTest, IdlePooledConnectionsAreClosedAfterTheIdleTimeout) {
  TestBackend backend("b");
  EdgeOptions options;
  options.upstream_idle_timeout = std::chrono::seconds(1);
  StartEdge(options);
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});
  auto res = Call("app.localhost");
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(backend.open_connections(), 1);
  EXPECT_TRUE(Eventually([&] { return backend.open_connections() == 0; }));
}

TEST_F(EdgeTest, DeadPooledConnectionIsRetriedOnAFreshOne) {
  // Like an app whose keep-alive timer fires just as the edge reuses the connection: the
  // second request on any connection is read and the connection closed without an answer.
  TestBackend backend("b", [](const BackendRequest& req, tcp::socket& socket) {
    if (req.nth_on_connection >= 2) {
      socket.close();
      return;
    }
    WriteAll(socket, TestBackend::TextResponse(200, "b " + req.method + " " + req.target));
  });
  StartEdge();
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});
  RawClient client(edge_->port());
  for (const char* target : {"/1", "/2", "/3"}) {
    ASSERT_TRUE(
        client.Send(std::string("GET ") + target + " HTTP/1.1\r\nHost: app.localhost\r\n\r\n"));
    auto res = client.ReadResponse();
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->result_int(), 200u);
    EXPECT_EQ(res->body(), std::string("b GET ") + target);
  }
  EXPECT_EQ(backend.connections(), 3);
  EXPECT_EQ(backend.requests(), 5);  // /1; /2 lost then retried; /3 lost then retried
  // A POST is not replayed (it may have been acted on): the client gets a 502.
  ASSERT_TRUE(client.Send("POST /p HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 1\r\n\r\nx"));
  auto post = client.ReadResponse();
  ASSERT_TRUE(post.has_value());
  EXPECT_EQ(post->result_int(), 502u);
  EXPECT_EQ(backend.requests(), 6);
}

// ---- replicas: balancing, retries, ejection -------------------------------------------

TEST_F(EdgeTest, IdempotentRequestsMoveToAnotherReplicaWhenOneDies) {
  // `broken` accepts, reads the request and hangs up without answering.
  TestBackend broken("broken", [](const BackendRequest&, tcp::socket& socket) { socket.close(); });
  TestBackend good("good");
  StartEdge();
  SetRoutes({ProxyRoute("app.localhost", "p/app", {broken.port(), good.port()}),
             ProxyRoute("only.localhost", "p/only", {broken.port()})});
  for (int i = 0; i < 4; ++i) {
    auto res = Call("app.localhost", "/r");
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "good GET /r ");
  }
  EXPECT_GE(broken.requests(), 2);  // round-robin started there for half of them
  auto get = Call("only.localhost", "/g");
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->status, 502);
  EXPECT_NE(get->body.find("p/only closed the connection or sent an invalid response"),
            std::string::npos)
      << get->body;
  auto post = Call("only.localhost", "/p", "POST", "body");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 502);
  EXPECT_NE(post->body.find("p/only closed the connection or sent an invalid response"),
            std::string::npos)
      << post->body;
}

TEST_F(EdgeTest, LeastConnectionsAvoidsTheBusyReplica) {
  Latch release;
  // `slow` holds its first request until released, and answers the rest at once.
  std::atomic<int> seen{0};
  TestBackend slow("slow", [&](const BackendRequest& req, tcp::socket& socket) {
    if (seen++ == 0) release.Wait();
    WriteAll(socket, TestBackend::TextResponse(200, "slow " + req.target));
  });
  TestBackend fast("fast");
  StartEdge();
  SetRoutes({ProxyRoute("app.localhost", "p/app", {slow.port()})});
  std::thread held([&] {
    auto res = Call("app.localhost", "/held");
    EXPECT_TRUE(res.ok() && res->status == 200);
  });
  ASSERT_TRUE(Eventually([&] { return slow.requests() == 1; }));
  const auto load_of = [&](int port) {
    for (const UpstreamLoad& load : edge_->UpstreamLoads()) {
      if (load.port == port) return load.in_flight;
    }
    return -1;
  };
  EXPECT_EQ(load_of(slow.port()), 1);
  Route both = ProxyRoute("app.localhost", "p/app", {slow.port(), fast.port()});
  both.balance = Balance::kLeastConnections;
  SetRoutes({both});
  for (int i = 0; i < 10; ++i) {
    auto res = Call("app.localhost", "/lc");
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->body, "fast GET /lc ");
  }
  EXPECT_EQ(slow.requests(), 1);
  release.Open();
  held.join();
  EXPECT_EQ(load_of(slow.port()), 0);
  // Idle again: both get traffic.
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Call("app.localhost", "/again").ok());
  EXPECT_GT(slow.requests(), 1);
}

TEST_F(EdgeTest, RefusingReplicaIsEjectedThenRetriedLater) {
  RefusingPort refusing;
  TestBackend good("good");
  EdgeOptions options;
  options.eject_duration = std::chrono::milliseconds(3000);
  StartEdge(options);
  // Both routes share replica A; its state is per address, across routes and threads.
  const int a_port = refusing.port();
  SetRoutes({ProxyRoute("probe.localhost", "p/probe", {a_port}),
             ProxyRoute("app.localhost", "p/app", {a_port, good.port()})});
  const auto start = Clock::now();
  auto probe = Call("probe.localhost");
  ASSERT_TRUE(probe.ok());
  EXPECT_EQ(probe->status, 502);
  // A starts accepting now, but stays out of rotation for the ejection period.
  TestBackend revived("A", nullptr, refusing.Release());
  int sent = 0;
  while (Clock::now() - start < 1500ms && sent < 10) {
    auto res = Call("app.localhost", "/during");
    ASSERT_TRUE(res.ok());
    EXPECT_EQ(res->body, "good GET /during ");
    ++sent;
  }
  if (Clock::now() - start < 3000ms) {
    EXPECT_EQ(revived.requests(), 0) << "an ejected replica got traffic";
  }
  EXPECT_GT(sent, 0);
  // After the period it is tried again, and serves.
  EXPECT_TRUE(Eventually([&] {
    auto res = Call("app.localhost", "/after");
    return res.ok() && res->body == "A GET /after ";
  }));
}

TEST_F(EdgeTest, UpstreamConnectTimeoutGets504) {
  // A listener whose accept queue is full drops new SYNs: connecting hangs.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 0), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    fillers.push_back(c);
  }
  EdgeOptions options;
  options.upstream_connect_timeout = std::chrono::seconds(1);
  StartEdge(options);
  SetRoutes({ProxyRoute("slow.localhost", "p/slow", {port})});
  auto res = Call("slow.localhost");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 504);
  EXPECT_NE(res->body.find("p/slow did not accept a connection within 1 s"), std::string::npos)
      << res->body;
  for (int c : fillers) ::close(c);
  ::close(fd);
}

// ---- limits and request smuggling ----------------------------------------------------

TEST_F(EdgeTest, AmbiguousOrInvalidRequestsGet400AndClose) {
  TestBackend backend("b");
  StartEdge();
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});
  const std::string head = "POST / HTTP/1.1\r\nHost: app.localhost\r\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"CL and TE", head + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"TE and CL", head + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
      {"TE gzip and CL", head + "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello"},
      {"duplicate CL", head + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
      {"conflicting CL", head + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
      {"CL list", head + "Content-Length: 5, 5\r\n\r\nhello"},
      {"TE not chunked", head + "Transfer-Encoding: identity\r\n\r\n"},
      {"TE chunked not last", head + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"},
      {"TE gzip, chunked", head + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
      {"TE twice",
       head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"TE in HTTP/1.0",
       "POST / HTTP/1.0\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n"},
      {"space before colon", head + "Content-Length : 5\r\n\r\nhello"},
      {"bad name byte", head + "X-A\x01: 1\r\nContent-Length: 0\r\n\r\n"},
      {"control byte in value", head + "X-A: a\x01z\r\nContent-Length: 0\r\n\r\n"},
      {"bare LF", "GET / HTTP/1.1\nHost: app.localhost\n\n"},
      {"two Hosts", "GET / HTTP/1.1\r\nHost: app.localhost\r\nHost: evil.localhost\r\n\r\n"},
      {"bad Host", "GET / HTTP/1.1\r\nHost: app.localhost/x@y\r\n\r\n"},
      {"bad chunk size", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
      {"negative CL", head + "Content-Length: -1\r\n\r\n"},
  };
  for (const auto& [name, request] : cases) {
    RawClient client(edge_->port());
    ASSERT_TRUE(client.Send(request)) << name;
    auto res = client.ReadResponse();
    ASSERT_TRUE(res.has_value()) << name << ": no response; got " << client.pending();
    EXPECT_EQ(res->result_int(), 400u) << name;
    EXPECT_FALSE(res->keep_alive()) << name;
    EXPECT_TRUE(client.WaitForClose()) << name;
  }
  EXPECT_EQ(backend.requests(), 0);
  // An upstream answer with ambiguous framing is not passed on either.
  TestBackend smuggler("s", [](const BackendRequest&, tcp::socket& socket) {
    WriteAll(socket,
             "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
             "0\r\n\r\n");
  });
  SetRoutes({ProxyRoute("s.localhost", "p/s", {smuggler.port()})});
  auto res = Call("s.localhost");
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 502);
}

TEST_F(EdgeTest, BodiesOverTheRouteLimitGet413) {
  TestBackend backend("b");
  EdgeOptions options;
  options.max_body_bytes = 100;  // the default for routes that set none
  StartEdge(options);
  Route limited = ProxyRoute("small.localhost", "p/small", {backend.port()});
  limited.max_body_bytes = 10;
  Route unlimited = ProxyRoute("big.localhost", "p/big", {backend.port()});
  unlimited.max_body_bytes = -1;
  SetRoutes({limited, unlimited, ProxyRoute("def.localhost", "p/def", {backend.port()})});

  auto ok = Call("small.localhost", "/", "POST", std::string(10, 'a'));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
  {
    // Announced too large: answered at once, even before the body (no 100 Continue).
    RawClient client(edge_->port());
    ASSERT_TRUE(
        client.Send("POST / HTTP/1.1\r\nHost: small.localhost\r\nContent-Length: 11\r\n"
                    "Expect: 100-continue\r\n\r\n"));
    auto res = client.ReadResponse();
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->result_int(), 413u);
    EXPECT_NE(res->body().find("limit of 10 bytes"), std::string::npos) << res->body();
    EXPECT_TRUE(client.WaitForClose());
  }
  {
    // Chunked: cut when it passes the limit.
    RawClient client(edge_->port());
    ASSERT_TRUE(
        client.Send("POST / HTTP/1.1\r\nHost: small.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "6\r\nabcdef\r\n"));
    ASSERT_TRUE(client.Send("6\r\nghijkl\r\n"));
    auto res = client.ReadResponse();
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->result_int(), 413u);
    EXPECT_TRUE(client.WaitForClose());
  }
  auto over_default = Call("def.localhost", "/", "POST", std::string(101, 'a'));
  ASSERT_TRUE(over_default.ok());
  EXPECT_EQ(over_default->status, 413);
  auto no_limit = Call("big.localhost", "/", "POST", std::string(1000, 'a'));
  ASSERT_TRUE(no_limit.ok());
  EXPECT_EQ(no_limit->status, 200);
  EXPECT_EQ(backend.requests(), 2);
}

TEST_F(EdgeTest, TricklingHeaderIsCutAtTheHeaderTimeout) {
  EdgeOptions options;
  options.header_timeout = std::chrono::seconds(1);
  StartEdge(options);
  SetRoutes({});
  RawClient client(edge_->port());
  const auto start = Clock::now();
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: a.localhost\r\nX-Slow: "));
  bool closed = false;
  while (!closed && Clock::now() - start < 10s) {
    client.Send("a");  // a byte every 100 ms: never idle, never done
    closed = client.WaitForClose(100ms);
  }
  EXPECT_TRUE(closed);
  EXPECT_LT(Clock::now() - start, 5s);
}

TEST_F(EdgeTest, ClientTimeoutsDoNotCutAnExchangeWaitingForTheUpstream) {
  // An app that takes longer than the header and idle timeouts to answer: only the
  // upstream response timeout applies while the edge waits for it.
  TestBackend slow("slow", [](const BackendRequest&, tcp::socket& socket) {
    std::this_thread::sleep_for(2500ms);  // the app's own pace, not the test waiting
    WriteAll(socket, TestBackend::TextResponse(200, "late but fine"));
  });
  EdgeOptions options;
  options.header_timeout = std::chrono::seconds(1);
  options.idle_timeout = std::chrono::seconds(1);
  options.upstream_response_timeout = std::chrono::seconds(10);
  StartEdge(options);
  SetRoutes({ProxyRoute("slow.localhost", "p/slow", {slow.port()})});
  auto res = Call("slow.localhost", "/", "POST", "body");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "late but fine");
}

// ---- request ids, access log, metrics ------------------------------------------------

TEST_F(EdgeTest, RequestIdsAreKeptOrMadeAndLogged) {
  std::mutex mu;
  std::vector<AccessLogEntry> log;
  EdgeOptions options;
  options.access_log = [&](const AccessLogEntry& e) {
    std::lock_guard<std::mutex> lock(mu);
    log.push_back(e);
  };
  TestBackend backend("b");
  StartEdge(options);
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});

  auto kept = Call("app.localhost", "/1", "GET", "", {{"X-Request-Id", "trace-42.a:b"}});
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->headers["x-request-id"], "trace-42.a:b");
  EXPECT_EQ(backend.received()[0].get("x-request-id"), "trace-42.a:b");

  auto replaced = Call("app.localhost", "/2", "GET", "", {{"X-Request-Id", "bad id <script>"}});
  ASSERT_TRUE(replaced.ok());
  const std::string made = replaced->headers["x-request-id"];
  EXPECT_EQ(made.size(), 32u) << made;
  EXPECT_EQ(backend.received()[1].get("x-request-id"), made);

  auto fresh = Call("app.localhost", "/3");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->headers["x-request-id"].size(), 32u);
  EXPECT_NE(fresh->headers["x-request-id"], made);
  auto page = Call("nope.localhost", "/4");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->status, 404);
  EXPECT_EQ(page->headers["x-request-id"].size(), 32u);

  ASSERT_TRUE(Eventually([&] {
    std::lock_guard<std::mutex> lock(mu);
    return log.size() == 4;
  }));
  std::lock_guard<std::mutex> lock(mu);
  const AccessLogEntry* first = EntryFor(log, "/1");
  const AccessLogEntry* second = EntryFor(log, "/2");
  const AccessLogEntry* fourth = EntryFor(log, "/4");
  ASSERT_TRUE(first && second && fourth);
  EXPECT_EQ(first->request_id, "trace-42.a:b");
  EXPECT_EQ(second->request_id, made);
  EXPECT_EQ(fourth->request_id, page->headers["x-request-id"]);
  EXPECT_EQ(fourth->status, 404u);
  EXPECT_EQ(fourth->route, "");
}

TEST_F(EdgeTest, AccessLogAndMetricsDescribeEachRequest) {
  std::mutex mu;
  std::vector<AccessLogEntry> log;
  EdgeOptions options;
  options.access_log = [&](const AccessLogEntry& e) {
    std::lock_guard<std::mutex> lock(mu);
    log.push_back(e);
  };
  TestBackend backend("b", [](const BackendRequest& req, tcp::socket& socket) {
    WriteAll(socket, TestBackend::TextResponse(req.target == "/missing" ? 404 : 200, "0123456789"));
  });
  StartEdge(options);
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()}),
             ProxyRoute("app.localhost", "p/api", {backend.port()}, "/api"),
             ProxyRoute("down.localhost", "p/down", {})});
  auto get = Call("app.localhost:80", "/page?x=1");
  ASSERT_TRUE(get.ok());
  auto post = Call("app.localhost", "/api/items", "POST", "12345");
  ASSERT_TRUE(post.ok());
  auto missing = Call("app.localhost", "/missing");
  ASSERT_TRUE(missing.ok());
  auto down = Call("down.localhost", "/");
  ASSERT_TRUE(down.ok());
  EXPECT_EQ(down->status, 502);

  ASSERT_TRUE(Eventually([&] {
    std::lock_guard<std::mutex> lock(mu);
    return log.size() == 4;
  }));
  {
    std::lock_guard<std::mutex> lock(mu);
    const AccessLogEntry* get_entry = EntryFor(log, "/page?x=1");
    const AccessLogEntry* post_entry = EntryFor(log, "/api/items");
    const AccessLogEntry* missing_entry = EntryFor(log, "/missing");
    const AccessLogEntry* down_entry = EntryFor(log, "/");
    ASSERT_TRUE(get_entry && post_entry && missing_entry && down_entry);
    const AccessLogEntry& e = *get_entry;
    EXPECT_EQ(e.method, "GET");
    EXPECT_EQ(e.host, "app.localhost");
    EXPECT_EQ(e.path, "/page?x=1");
    EXPECT_EQ(e.status, 200u);
    EXPECT_EQ(e.client_ip, "127.0.0.1");
    EXPECT_EQ(e.bytes_in, 0u);
    EXPECT_EQ(e.bytes_out, 10u);
    EXPECT_EQ(e.upstream, "127.0.0.1:" + std::to_string(backend.port()));
    EXPECT_EQ(e.route, "app.localhost/");
    EXPECT_EQ(e.service, "p/app");
    EXPECT_FALSE(e.tls);
    EXPECT_GT(e.duration_ms, 0.0);
    EXPECT_EQ(e.request_id.size(), 32u);
    EXPECT_LT(std::chrono::system_clock::now() - e.time, std::chrono::minutes(1));
    EXPECT_EQ(post_entry->route, "app.localhost/api");
    EXPECT_EQ(post_entry->bytes_in, 5u);
    EXPECT_EQ(missing_entry->status, 404u);
    EXPECT_EQ(down_entry->status, 502u);
    EXPECT_EQ(down_entry->host, "down.localhost");
    EXPECT_EQ(down_entry->upstream, "");
  }

  const std::vector<RouteMetrics> metrics = edge_->Metrics();
  ASSERT_EQ(metrics.size(), 3u);
  const RouteMetrics& app = metrics[0];
  EXPECT_EQ(app.host, "app.localhost");
  EXPECT_EQ(app.path_prefix, "/");
  EXPECT_EQ(app.service_label, "p/app");
  EXPECT_EQ(app.requests, 2u);
  EXPECT_EQ(app.status_classes[1], 1u);
  EXPECT_EQ(app.status_classes[3], 1u);
  EXPECT_EQ(app.bytes_out, 20u);
  EXPECT_GT(app.p50_ms, 0.0);
  EXPECT_GE(app.p99_ms, app.p50_ms);
  const RouteMetrics& api = metrics[1];
  EXPECT_EQ(api.path_prefix, "/api");
  EXPECT_EQ(api.requests, 1u);
  EXPECT_EQ(api.bytes_in, 5u);
  EXPECT_EQ(metrics[2].status_classes[4], 1u);
  // Counters survive a Swap() that keeps the route.
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});
  ASSERT_EQ(edge_->Metrics().size(), 1u);
  EXPECT_EQ(edge_->Metrics()[0].requests, 2u);
}

// ---- routing -------------------------------------------------------------------------

TEST_F(EdgeTest, RoutesByLongestPathPrefixAndWildcardHost) {
  TestBackend root("root");
  TestBackend api("api");
  TestBackend wild("wild");
  StartEdge();
  SetRoutes({ProxyRoute("app.localhost", "p/root", {root.port()}),
             ProxyRoute("app.localhost", "p/api", {api.port()}, "/api"),
             ProxyRoute("*.app.localhost", "p/wild", {wild.port()})});
  struct Case {
    std::string host, target, body;
    int status;
  };
  const Case cases[] = {
      {"app.localhost", "/api/v1", "api GET /api/v1 ", 200},
      {"app.localhost", "/api?q", "api GET /api?q ", 200},
      {"app.localhost", "/apix", "root GET /apix ", 200},
      {"APP.localhost:1", "/", "root GET / ", 200},
      {"pr-7.app.localhost", "/api", "wild GET /api ", 200},
      {"a.b.app.localhost", "/", "", 404},
  };
  for (const Case& c : cases) {
    auto res = Call(c.host, c.target);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, c.status) << c.host << c.target;
    if (c.status == 200) {
      EXPECT_EQ(res->body, c.body) << c.host << c.target;
    }
  }
}

// ---- ACME and redirects --------------------------------------------------------------

class MapAcme : public AcmeChallengeSource {
 public:
  std::optional<std::string> KeyAuthorization(std::string_view token) override {
    if (token == "tok-123_ABC") return "tok-123_ABC.thumbprint";
    return std::nullopt;
  }
};

TEST_F(EdgeTest, AcmeChallengesAreAnsweredOnPlainHttpForAnyHost) {
  MapAcme acme;
  TestBackend backend("b");
  EdgeOptions options;
  options.acme = &acme;
  StartEdge(options);
  Route secure = ProxyRoute("secure.localhost", "p/secure", {backend.port()});
  secure.redirect_to_https = true;
  SetRoutes({secure});
  for (const char* host : {"secure.localhost", "unknown.example.com"}) {
    auto res = Call(host, "/.well-known/acme-challenge/tok-123_ABC");
    ASSERT_TRUE(res.ok());
    EXPECT_EQ(res->status, 200) << host;
    EXPECT_EQ(res->body, "tok-123_ABC.thumbprint");
    EXPECT_EQ(res->headers["content-type"], "text/plain");
  }
  auto unknown = Call("secure.localhost", "/.well-known/acme-challenge/other");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(backend.requests(), 0);
  // Everything else on that route is redirected; with no HTTPS listener here, to 443.
  auto redirect = Call("secure.localhost:8080", "/login?next=/a");
  ASSERT_TRUE(redirect.ok());
  EXPECT_EQ(redirect->status, 308);
  EXPECT_EQ(redirect->headers["location"], "https://secure.localhost/login?next=/a");
}

// ---- listeners -----------------------------------------------------------------------

TEST(EdgeListenTest, SecondEdgeOfTheSameUserSharesThePort) {
  // SO_REUSEPORT: a new edge process can take over the port of a running one.
  EdgeOptions options;
  options.listen_address = "127.0.0.1";
  options.port = 0;
  options.threads = 2;
  auto first = Edge::Create(options);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  options.port = (*first)->port();
  auto second = Edge::Create(options);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ((*second)->port(), (*first)->port());
}

TEST(EdgeListenTest, HttpsNeedsAProviderAndAFreePort) {
  EdgeOptions options;
  options.listen_address = "127.0.0.1";
  options.port = 0;
  options.https_port = 0;
  auto no_provider = Edge::Create(options);
  ASSERT_FALSE(no_provider.ok());
  EXPECT_EQ(no_provider.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_provider.status().message().find("HTTPS needs certificates"), std::string::npos);

  TestBackend holder("holder");
  class NoContexts : public TlsContextProvider {
    std::shared_ptr<boost::asio::ssl::context> ContextFor(std::string_view) override {
      return nullptr;
    }
  } provider;
  options.tls = &provider;
  options.https_port = holder.port();
  auto taken = Edge::Create(options);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(taken.status().message(),
            "cannot listen on 127.0.0.1:" + std::to_string(holder.port()) +
                ": address already in use (choose another with --https)");
}

}  // namespace
}  // namespace slipway
