// The edge proxy against real sockets: real backends on 127.0.0.1, real clients.

#include "proxy/edge.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/write.hpp>
#include <filesystem>
#include <thread>

#include "common/http_client.h"
#include "edge_fixture.h"
#include "test_util.h"

namespace slipway {
namespace {

using namespace proxy_test;
using boost::asio::ip::tcp;

TEST_F(EdgeTest, ProxiesGetAndPostToTheBackendOfTheHost) {
  TestBackend a("A");
  TestBackend b("B");
  StartEdge();
  SetRoutes(
      {ProxyRoute("a.localhost", "p/a", {a.port()}), ProxyRoute("b.localhost", "p/b", {b.port()})});

  auto get = Call("a.localhost", "/hello?x=1");
  ASSERT_TRUE(get.ok()) << get.status().ToString();
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "A GET /hello?x=1 ");

  auto post = Call("B.LocalHost:8080", "/items", "POST", "name=widget");
  ASSERT_TRUE(post.ok()) << post.status().ToString();
  EXPECT_EQ(post->status, 200);
  EXPECT_EQ(post->body, "B POST /items name=widget");
  EXPECT_EQ(a.requests(), 1);
  EXPECT_EQ(b.requests(), 1);
  EXPECT_EQ(b.received()[0].get("host"), "B.LocalHost:8080");
}

TEST_F(EdgeTest, LargeBodiesStreamBothWays) {
  // The backend echoes the request body back, so 6 MiB cross the edge twice.
  TestBackend echo("echo", [](const BackendRequest& req, tcp::socket& socket) {
    WriteAll(socket, TestBackend::TextResponse(200, req.body));
  });
  StartEdge();
  SetRoutes({ProxyRoute("echo.localhost", "p/echo", {echo.port()})});
  std::string body(6 << 20, 'x');
  for (size_t i = 0; i < body.size(); i += 997) body[i] = static_cast<char>('a' + i % 26);
  auto res = Call("echo.localhost", "/upload", "POST", body);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(res->body == body) << "echoed body differs; size " << res->body.size();
}

TEST_F(EdgeTest, UnknownHostGetsA404Page) {
  StartEdge();
  SetRoutes({});
  auto res = Call("nope.localhost:9999");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 404);
  EXPECT_NE(res->body.find("No Slipway app is deployed at nope.localhost"), std::string::npos)
      << res->body;
  EXPECT_NE(res->headers["content-type"].find("text/plain"), std::string::npos);

  auto html = Call("shop_1.localhost", "/", "GET", "", {{"Accept", "text/html,*/*"}});
  ASSERT_TRUE(html.ok()) << html.status().ToString();
  EXPECT_EQ(html->status, 404);
  EXPECT_NE(html->headers["content-type"].find("text/html"), std::string::npos);
  EXPECT_NE(html->body.find("<h1>No Slipway app is deployed at shop_1.localhost</h1>"),
            std::string::npos)
      << html->body;

  // Markup is no host name: refused before any page could echo it.
  auto markup = Call("x<b>y.localhost", "/", "GET", "", {{"Accept", "text/html,*/*"}});
  ASSERT_TRUE(markup.ok()) << markup.status().ToString();
  EXPECT_EQ(markup->status, 400);
  EXPECT_EQ(markup->body.find("<b>"), std::string::npos);
}

TEST_F(EdgeTest, RouteWithoutUpstreamsGetsA502Page) {
  StartEdge();
  SetRoutes({ProxyRoute("web.shop.localhost", "shop/web", {})});
  auto res = Call("web.shop.localhost");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 502);
  EXPECT_NE(res->body.find("shop/web has no running replica (yet): see `slipway status` and "
                           "`slipway logs`"),
            std::string::npos)
      << res->body;
}

TEST_F(EdgeTest, RefusingUpstreamGetsA502Page) {
  RefusingPort refusing;
  StartEdge();
  SetRoutes({ProxyRoute("web.shop.localhost", "shop/web", {refusing.port()})});
  auto res = Call("web.shop.localhost");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 502);
  EXPECT_NE(res->body.find("shop/web"), std::string::npos) << res->body;
}

TEST_F(EdgeTest, RoundRobinsAcrossUpstreams) {
  TestBackend a("A");
  TestBackend b("B");
  StartEdge();
  SetRoutes({ProxyRoute("api.localhost", "p/api", {a.port(), b.port()})});
  for (int i = 0; i < 6; ++i) {
    auto res = Call("api.localhost");
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, 200);
  }
  EXPECT_EQ(a.requests(), 3);
  EXPECT_EQ(b.requests(), 3);
}

TEST_F(EdgeTest, FailsOverWhenAnUpstreamRefuses) {
  RefusingPort refusing;
  TestBackend good("good");
  StartEdge();
  SetRoutes({ProxyRoute("api.localhost", "p/api", {refusing.port(), good.port()})});
  for (int i = 0; i < 4; ++i) {
    auto res = Call("api.localhost");
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "good GET / ");
  }
  EXPECT_EQ(good.requests(), 4);
}

TEST_F(EdgeTest, ChunkedResponseStaysChunked) {
  TestBackend chunky("chunky", [](const BackendRequest&, tcp::socket& socket) {
    WriteAll(socket,
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
             "5\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n");
  });
  StartEdge();
  SetRoutes({ProxyRoute("c.localhost", "p/c", {chunky.port()})});
  RawClient client(edge_->port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: c.localhost\r\n\r\n"));
  auto res = client.ReadResponse();
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->result_int(), 200u);
  EXPECT_TRUE(res->chunked()) << client.last_raw();
  EXPECT_EQ(res->body(), "hello world!");
}

TEST_F(EdgeTest, CloseDelimitedResponseIsChunkedForHttp11AndRawForHttp10) {
  TestBackend old("old", [](const BackendRequest&, tcp::socket& socket) {
    WriteAll(socket, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
    boost::system::error_code ec;
    socket.shutdown(tcp::socket::shutdown_send, ec);
  });
  StartEdge();
  SetRoutes({ProxyRoute("old.localhost", "p/old", {old.port()})});

  RawClient client(edge_->port());
  ASSERT_TRUE(client.Send("GET /1 HTTP/1.1\r\nHost: old.localhost\r\n\r\n"));
  auto first = client.ReadResponse();
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->chunked()) << client.last_raw();
  EXPECT_EQ(first->body(), "until the end");
  // The client connection outlives the upstream's close.
  ASSERT_TRUE(client.Send("GET /2 HTTP/1.1\r\nHost: old.localhost\r\n\r\n"));
  auto second = client.ReadResponse();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->body(), "until the end");

  RawClient old_client(edge_->port());
  ASSERT_TRUE(old_client.Send("GET / HTTP/1.0\r\nHost: old.localhost\r\n\r\n"));
  auto raw = old_client.ReadResponse();
  ASSERT_TRUE(raw.has_value());
  EXPECT_FALSE(raw->chunked()) << old_client.last_raw();
  EXPECT_EQ(raw->body(), "until the end");
  EXPECT_TRUE(old_client.WaitForClose());
}

TEST_F(EdgeTest, Http10ClientGetsNoChunkedEncoding) {
  TestBackend chunky("chunky", [](const BackendRequest&, tcp::socket& socket) {
    WriteAll(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  });
  TestBackend sized("sized");
  StartEdge();
  SetRoutes({ProxyRoute("c.localhost", "p/c", {chunky.port()}),
             ProxyRoute("s.localhost", "p/s", {sized.port()})});

  RawClient client(edge_->port());
  ASSERT_TRUE(client.Send("GET / HTTP/1.0\r\nHost: c.localhost\r\n\r\n"));
  ASSERT_TRUE(client.WaitForClose());
  const std::string& raw = client.pending();
  EXPECT_EQ(raw.find("chunked"), std::string::npos) << raw;
  EXPECT_EQ(raw.substr(raw.size() - 3), "abc") << raw;

  // HTTP/1.0 keep-alive is honoured when the length is known.
  RawClient keep(edge_->port());
  ASSERT_TRUE(keep.Send("GET /x HTTP/1.0\r\nHost: s.localhost\r\nConnection: keep-alive\r\n\r\n"));
  auto first = keep.ReadResponse();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ((*first)[boost::beast::http::field::connection], "keep-alive");
  EXPECT_EQ(first->body(), "sized GET /x ");
  ASSERT_TRUE(keep.Send("GET /y HTTP/1.0\r\nHost: s.localhost\r\n\r\n"));
  auto second = keep.ReadResponse();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->body(), "sized GET /y ");
  EXPECT_TRUE(keep.WaitForClose());
}

TEST_F(EdgeTest, ServerSentEventsArriveAsTheyAreWritten) {
  Latch client_saw_first;
  Latch backend_done;
  TestBackend events("events", [&](const BackendRequest&, tcp::socket& socket) {
    WriteAll(socket,
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
             "Transfer-Encoding: chunked\r\n\r\n");
    WriteAll(socket, "d\r\ndata: first\n\n\r\n");
    // The second event is written only once the client has the first one.
    if (client_saw_first.Wait()) WriteAll(socket, "e\r\ndata: second\n\n\r\n0\r\n\r\n");
    backend_done.Open();
  });
  StartEdge();
  SetRoutes({ProxyRoute("sse.localhost", "p/sse", {events.port()})});

  RawClient client(edge_->port());
  ASSERT_TRUE(
      client.Send("GET /events HTTP/1.1\r\nHost: sse.localhost\r\n"
                  "Accept: text/event-stream\r\n\r\n"));
  bool got_first = client.ReadUntil("data: first");
  client_saw_first.Open();  // release the backend whatever happened
  ASSERT_TRUE(got_first) << "first event did not arrive before the second was written; got: "
                         << client.pending();
  EXPECT_EQ(client.pending().find("data: second"), std::string::npos);
  auto res = client.ReadResponse();
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->body(), "data: first\n\ndata: second\n\n");
  EXPECT_EQ((*res)[boost::beast::http::field::content_type], "text/event-stream");
  EXPECT_TRUE(backend_done.Wait());
}

TEST_F(EdgeTest, ForwardedFieldsAreAddedAndHopByHopFieldsRemoved) {
  TestBackend backend("b", [](const BackendRequest&, tcp::socket& socket) {
    WriteAll(socket, TestBackend::TextResponse(
                         200, "ok",
                         "Keep-Alive: timeout=5\r\nConnection: X-Internal\r\nX-Internal: y\r\n"
                         "X-App: kept\r\n"));
  });
  StartEdge();
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});
  const std::string host = "app.localhost:" + std::to_string(edge_->port());
  auto res = Call(host, "/", "GET", "",
                  {{"X-Forwarded-For", "203.0.113.7"},
                   {"Connection", "X-Secret"},
                   {"X-Secret", "1"},
                   {"TE", "trailers"},
                   {"Keep-Alive", "timeout=5"},
                   {"X-Forwarded-Host", "spoofed.example"}});
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->headers.count("x-internal"), 0u);
  EXPECT_EQ(res->headers.count("keep-alive"), 0u);
  EXPECT_EQ(res->headers["x-app"], "kept");

  ASSERT_EQ(backend.requests(), 1);
  const BackendRequest req = backend.received()[0];
  EXPECT_EQ(req.get("x-forwarded-for"), "203.0.113.7, 127.0.0.1");
  EXPECT_EQ(req.get("x-forwarded-proto"), "http");
  EXPECT_EQ(req.get("x-forwarded-host"), host);
  EXPECT_EQ(req.get("host"), host);
  EXPECT_FALSE(req.has("x-secret"));
  EXPECT_FALSE(req.has("te"));
  EXPECT_FALSE(req.has("keep-alive"));

  auto plain = Call("app.localhost");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(backend.received()[1].get("x-forwarded-for"), "127.0.0.1");
}

TEST_F(EdgeTest, SwapWhileRequestsFlow) {
  TestBackend a("A");
  TestBackend b("B");
  StartEdge();
  SetRoutes({ProxyRoute("app.localhost", "p/app", {a.port()})});
  std::atomic<bool> done{false};
  std::thread swapper([&] {
    int i = 0;
    while (!done) {
      // Alternate between the two backends, and add unrelated routes to change the map.
      std::vector<Route> routes;
      routes.push_back(ProxyRoute("app.localhost", "p/app", {i % 2 ? a.port() : b.port()}));
      for (int j = 0; j < i % 5; ++j) {
        routes.push_back(ProxyRoute("x" + std::to_string(j) + ".localhost", "p/x", {a.port()}));
      }
      SetRoutes(std::move(routes));
      ++i;
    }
  });
  int failures = 0;
  for (int i = 0; i < 200; ++i) {
    auto res = Call("app.localhost");
    if (!res.ok() || res->status != 200) ++failures;
  }
  done = true;
  swapper.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(a.requests() + b.requests(), 200);
}

TEST_F(EdgeTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  TestBackend backend("b");
  StartEdge();
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});
  RawClient client(edge_->port());
  ASSERT_TRUE(client.Send("GET /one HTTP/1.1\r\nHost: app.localhost\r\n\r\n"));
  auto one = client.ReadResponse();
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->body(), "b GET /one ");
  EXPECT_TRUE(one->keep_alive());
  ASSERT_TRUE(
      client.Send("POST /two HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 3\r\n\r\n"
                  "abc"));
  auto two = client.ReadResponse();
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->body(), "b POST /two abc");
  // Pipelined requests, the last asking to close.
  ASSERT_TRUE(
      client.Send("GET /3 HTTP/1.1\r\nHost: app.localhost\r\n\r\n"
                  "GET /4 HTTP/1.1\r\nHost: nope.localhost\r\nConnection: close\r\n\r\n"));
  auto three = client.ReadResponse();
  ASSERT_TRUE(three.has_value());
  EXPECT_EQ(three->body(), "b GET /3 ");
  auto four = client.ReadResponse();
  ASSERT_TRUE(four.has_value());
  EXPECT_EQ(four->result_int(), 404u);
  EXPECT_FALSE(four->keep_alive());
  EXPECT_TRUE(client.WaitForClose());
}

TEST_F(EdgeTest, ChunkedRequestBodyIsForwarded) {
  TestBackend backend("b");
  StartEdge();
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});
  RawClient client(edge_->port());
  ASSERT_TRUE(
      client.Send("POST /up HTTP/1.1\r\nHost: app.localhost\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"));
  auto res = client.ReadResponse();
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->body(), "b POST /up abcdef");
  ASSERT_EQ(backend.requests(), 1);
  EXPECT_EQ(backend.received()[0].get("transfer-encoding"), "chunked");
}

TEST_F(EdgeTest, ExpectContinueIsAnsweredByTheEdge) {
  TestBackend backend("b");
  StartEdge();
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});
  RawClient client(edge_->port());
  ASSERT_TRUE(
      client.Send("PUT /f HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\n"
                  "Expect: 100-continue\r\n\r\n"));
  ASSERT_TRUE(client.ReadUntil("HTTP/1.1 100 Continue\r\n\r\n")) << client.pending();
  auto interim = client.ReadResponse();
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->result_int(), 100u);
  ASSERT_TRUE(client.Send("hello"));
  auto res = client.ReadResponse();
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->body(), "b PUT /f hello");
  EXPECT_FALSE(backend.received()[0].has("expect"));
}

TEST_F(EdgeTest, HeadThroughTheProxyHasNoBody) {
  TestBackend backend("b", [](const BackendRequest&, tcp::socket& socket) {
    WriteAll(socket, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
  });
  StartEdge();
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});
  RawClient client(edge_->port());
  ASSERT_TRUE(client.Send("HEAD / HTTP/1.1\r\nHost: app.localhost\r\n\r\n"));
  auto res = client.ReadResponse(/*head_request=*/true);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ((*res)[boost::beast::http::field::content_length], "1234");
  // The connection is still usable: the next response follows directly.
  ASSERT_TRUE(client.Send("HEAD / HTTP/1.1\r\nHost: app.localhost\r\n\r\n"));
  auto again = client.ReadResponse(true);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->result_int(), 200u);
}

TEST_F(EdgeTest, UpstreamThatNeverAnswersGetsA504) {
  Latch release;
  TestBackend stuck("stuck", [&](const BackendRequest&, tcp::socket&) { release.Wait(); });
  EdgeOptions options;
  options.upstream_response_timeout = std::chrono::seconds(1);
  StartEdge(options);
  SetRoutes({ProxyRoute("slow.localhost", "p/slow", {stuck.port()})});
  auto res = Call("slow.localhost");
  release.Open();
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 504);
  EXPECT_NE(res->body.find("p/slow did not answer within 1 s"), std::string::npos) << res->body;
}

TEST_F(EdgeTest, UpgradeBecomesATunnel) {
  TestBackend ws("ws", [](const BackendRequest& req, tcp::socket& socket) {
    if (req.get("upgrade") != "echo" || req.get("connection") != "upgrade") {
      WriteAll(socket, TestBackend::TextResponse(400, "not an upgrade"));
      return;
    }
    WriteAll(socket,
             "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
             "Upgrade: echo\r\n\r\n");
    char buf[256];
    for (;;) {
      boost::system::error_code ec;
      size_t n = socket.read_some(boost::asio::buffer(buf), ec);
      if (ec) break;
      WriteAll(socket, "echo:" + std::string(buf, n));
    }
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
  });
  StartEdge();
  SetRoutes({ProxyRoute("ws.localhost", "p/ws", {ws.port()})});
  RawClient client(edge_->port());
  ASSERT_TRUE(
      client.Send("GET /socket HTTP/1.1\r\nHost: ws.localhost\r\nConnection: Upgrade\r\n"
                  "Upgrade: echo\r\n\r\n"));
  auto res = client.ReadResponse(/*head_request=*/true);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->result_int(), 101u);
  ASSERT_TRUE(client.Send("ping"));
  EXPECT_TRUE(client.ReadUntil("echo:ping")) << client.pending();
}

TEST_F(EdgeTest, HugeHeaderGets431) {
  EdgeOptions options;
  options.max_header_bytes = 8 * 1024;
  StartEdge(options);
  SetRoutes({ProxyRoute("app.localhost", "p/app", {})});
  RawClient client(edge_->port());
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Big: " +
                          std::string(16 * 1024, 'a') + "\r\n\r\n"));
  auto res = client.ReadResponse();
  ASSERT_TRUE(res.has_value()) << client.pending();
  EXPECT_EQ(res->result_int(), 431u);
  EXPECT_TRUE(client.WaitForClose());
}

TEST_F(EdgeTest, MalformedRequestGets400AndClose) {
  StartEdge();
  RawClient client(edge_->port());
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: a.localhost\r\nBad Header\r\n\r\n"));
  auto res = client.ReadResponse();
  ASSERT_TRUE(res.has_value()) << client.pending();
  EXPECT_EQ(res->result_int(), 400u);
  EXPECT_TRUE(client.WaitForClose());

  RawClient no_host(edge_->port());
  ASSERT_TRUE(no_host.Send("GET / HTTP/1.1\r\n\r\n"));
  auto missing = no_host.ReadResponse();
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->result_int(), 400u);
}

TEST_F(EdgeTest, SlowHeaderAndIdleConnectionsAreClosed) {
  EdgeOptions options;
  options.header_timeout = std::chrono::seconds(1);
  options.idle_timeout = std::chrono::seconds(1);
  StartEdge(options);
  SetRoutes({});
  RawClient slow(edge_->port());
  ASSERT_TRUE(slow.Send("GET / HTTP/1.1\r\nHost: a"));
  EXPECT_TRUE(slow.WaitForClose());

  RawClient idle(edge_->port());
  ASSERT_TRUE(idle.Send("GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n"));
  auto res = idle.ReadResponse();
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->result_int(), 404u);
  EXPECT_TRUE(idle.WaitForClose());
}

TEST_F(EdgeTest, StopClosesOpenConnections) {
  Latch release;
  TestBackend stream("stream", [&](const BackendRequest&, tcp::socket& socket) {
    WriteAll(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nstart\r\n");
    release.Wait();
  });
  StartEdge();
  SetRoutes({ProxyRoute("s.localhost", "p/s", {stream.port()})});
  RawClient idle(edge_->port());
  ASSERT_TRUE(idle.Send("GET / HTTP/1.1\r\nHost: nope.localhost\r\n\r\n"));
  ASSERT_TRUE(idle.ReadResponse().has_value());
  RawClient streaming(edge_->port());
  ASSERT_TRUE(streaming.Send("GET / HTTP/1.1\r\nHost: s.localhost\r\n\r\n"));
  ASSERT_TRUE(streaming.ReadUntil("start"));
  const int port = edge_->port();
  edge_->Stop();
  EXPECT_TRUE(idle.WaitForClose());
  EXPECT_TRUE(streaming.WaitForClose());
  RawClient after(port);
  EXPECT_FALSE(after.connected());
  release.Open();
}

TEST(EdgeCreateTest, PortInUseIsReported) {
  TestBackend holder("holder");
  EdgeOptions options;
  options.listen_address = "127.0.0.1";
  options.port = holder.port();
  auto edge = Edge::Create(options);
  ASSERT_FALSE(edge.ok());
  EXPECT_EQ(edge.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(edge.status().message(), "cannot listen on 127.0.0.1:" + std::to_string(holder.port()) +
                                         ": address already in use (choose another with --http)");
}

TEST(EdgeCreateTest, PortZeroPicksAFreePort) {
  EdgeOptions options;
  options.listen_address = "127.0.0.1";
  options.port = 0;
  auto edge = Edge::Create(options);
  ASSERT_TRUE(edge.ok()) << edge.status().ToString();
  EXPECT_GT((*edge)->port(), 0);
  RawClient client((*edge)->port());
  EXPECT_TRUE(client.connected());  // listening from Create on, even before Start
  (*edge)->Start();
  (*edge)->Stop();
  (*edge)->Stop();  // idempotent
}

TEST(EdgeCreateTest, BadAddressIsReported) {
  EdgeOptions options;
  options.listen_address = "not-an-ip";
  options.port = 0;
  auto edge = Edge::Create(options);
  ASSERT_FALSE(edge.ok());
  EXPECT_EQ(edge.status().code(), StatusCode::kInvalidArgument);
}

// ---- static files -------------------------------------------------------------------

class StaticTest : public EdgeTest {
 protected:
  void SetUp() override {
    dir_.Write("site/index.html", "<h1>home</h1>");
    dir_.Write("site/style.css", "body{}");
    dir_.Write("site/app.js", "console.log(1)");
    dir_.Write("site/mod.mjs", "export {}");
    dir_.Write("site/data.json", "{}");
    dir_.Write("site/logo.svg", "<svg/>");
    dir_.Write("site/img.png", "png");
    dir_.Write("site/photo.JPG", "jpg");
    dir_.Write("site/app.wasm", "wasm");
    dir_.Write("site/font.woff2", "woff2");
    dir_.Write("site/app.js.map", "{}");
    dir_.Write("site/notes.txt", "notes");
    dir_.Write("site/blob.bin", "bin");
    dir_.Write("site/docs/index.html", "<h1>docs</h1>");
    dir_.Write("site/my file.txt", "spaced");
    dir_.Write("site/.env", "SECRET=1");
    dir_.Write("secret.txt", "outside the root");
    std::filesystem::create_symlink(dir_.path() + "/secret.txt", dir_.path() + "/site/escape");
    std::filesystem::create_symlink(dir_.path() + "/site/notes.txt", dir_.path() + "/site/alias");
    StartEdge();
    SetRoutes({StaticRoute("www.localhost", dir_.path() + "/site")});
  }

  std::optional<boost::beast::http::response<boost::beast::http::string_body>> RawGet(
      const std::string& target, const std::string& method = "GET") {
    RawClient client(edge_->port());
    if (!client.Send(method + " " + target + " HTTP/1.1\r\nHost: www.localhost\r\n\r\n")) {
      return std::nullopt;
    }
    return client.ReadResponse(method == "HEAD");
  }

  TempDir dir_;
};

TEST_F(StaticTest, ServesFilesWithTheirContentType) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/style.css", "text/css; charset=utf-8"},
      {"/app.js", "text/javascript; charset=utf-8"},
      {"/mod.mjs", "text/javascript; charset=utf-8"},
      {"/data.json", "application/json"},
      {"/logo.svg", "image/svg+xml"},
      {"/img.png", "image/png"},
      {"/photo.JPG", "image/jpeg"},
      {"/app.wasm", "application/wasm"},
      {"/font.woff2", "font/woff2"},
      {"/app.js.map", "application/json"},
      {"/notes.txt", "text/plain; charset=utf-8"},
      {"/blob.bin", "application/octet-stream"},
  };
  for (const auto& [target, type] : cases) {
    auto res = Call("www.localhost", target);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, 200) << target;
    EXPECT_EQ(res->headers["content-type"], type) << target;
    EXPECT_EQ(res->headers["content-length"], std::to_string(res->body.size())) << target;
  }
  auto spaced = Call("www.localhost", "/my%20file.txt");
  ASSERT_TRUE(spaced.ok());
  EXPECT_EQ(spaced->body, "spaced");
  auto alias = Call("www.localhost", "/alias");
  ASSERT_TRUE(alias.ok());
  EXPECT_EQ(alias->body, "notes");  // a symlink inside the root is fine
}

TEST_F(StaticTest, ServesIndexHtmlForDirectories) {
  auto root = Call("www.localhost", "/");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->status, 200);
  EXPECT_EQ(root->body, "<h1>home</h1>");
  EXPECT_EQ(root->headers["content-type"], "text/html; charset=utf-8");
  auto docs = Call("www.localhost", "/docs/?page=2");
  ASSERT_TRUE(docs.ok());
  EXPECT_EQ(docs->body, "<h1>docs</h1>");
  auto redirect = Call("www.localhost", "/docs?page=2");
  ASSERT_TRUE(redirect.ok());
  EXPECT_EQ(redirect->status, 301);
  EXPECT_EQ(redirect->headers["location"], "/docs/?page=2");
}

TEST_F(StaticTest, MissingFilesAndOtherMethods) {
  auto missing = Call("www.localhost", "/nope.html");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(missing->body.find("/nope.html"), std::string::npos);
  auto post = Call("www.localhost", "/index.html", "POST", "x");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->headers["allow"], "GET, HEAD");
}

TEST_F(StaticTest, HeadHasHeadersButNoBody) {
  RawClient client(edge_->port());
  ASSERT_TRUE(
      client.Send("HEAD /style.css HTTP/1.1\r\nHost: www.localhost\r\n\r\n"
                  "GET /notes.txt HTTP/1.1\r\nHost: www.localhost\r\n\r\n"));
  auto head = client.ReadResponse(/*head_request=*/true);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->result_int(), 200u);
  EXPECT_EQ((*head)[boost::beast::http::field::content_length], "6");
  EXPECT_EQ((*head)[boost::beast::http::field::content_type], "text/css; charset=utf-8");
  // Had the HEAD answer carried a body, this response would not parse.
  auto get = client.ReadResponse();
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->body(), "notes");
}

TEST_F(StaticTest, TraversalNeverLeavesTheRoot) {
  for (const std::string target :
       {"/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd",
        "/docs/../../secret.txt", "/%2E%2E/secret.txt"}) {
    auto res = RawGet(target);
    ASSERT_TRUE(res.has_value()) << target;
    EXPECT_EQ(res->result_int(), 400u) << target;
    EXPECT_EQ(res->body().find("root:"), std::string::npos) << target;
    EXPECT_EQ(res->body().find("outside the root"), std::string::npos) << target;
  }
  for (const std::string target : {"/escape", "/.env", "/%2eenv", "/bad%zz", "/nul%00.txt"}) {
    auto res = RawGet(target);
    ASSERT_TRUE(res.has_value()) << target;
    EXPECT_TRUE(res->result_int() == 404u || res->result_int() == 400u)
        << target << " -> " << res->result_int();
    EXPECT_EQ(res->body().find("outside the root"), std::string::npos) << target;
    EXPECT_EQ(res->body().find("SECRET"), std::string::npos) << target;
  }
}

TEST_F(StaticTest, LargeFileIsStreamedWhole) {
  std::string big(5 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7) % 26);
  dir_.Write("site/big.bin", big);
  auto res = Call("www.localhost", "/big.bin");
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->headers["content-length"], std::to_string(big.size()));
  EXPECT_TRUE(res->body == big);
}

}  // namespace
}  // namespace slipway
