// Handing an edge's listening sockets to another Edge (what `slipway edge --takeover`
// does across processes) and draining the old one: nothing queued is lost, requests in
// flight finish with "Connection: close", idle keep-alive connections are closed.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "edge_fixture.h"
#include "proxy/edge.h"
#include "test_util.h"

namespace slipway {
namespace {

using namespace proxy_test;
using boost::asio::ip::tcp;

std::string Get(const std::string& host) { return "GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"; }

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

class EdgeHandoverTest : public EdgeTest {
 protected:
  std::shared_ptr<RouteTable> Table(int backend_port) {
    auto table = std::make_shared<RouteTable>();
    table->routes.push_back(ProxyRoute("app.localhost", "p/app", {backend_port}));
    return table;
  }
};

TEST_F(EdgeHandoverTest, ConnectionsQueuedWhileNobodyAcceptsAreServedByTheNewEdge) {
  TestBackend backend("B");
  EdgeOptions options;
  options.drain_idle_grace = 200ms;
  StartEdge(options);
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});
  const int port = edge_->port();

  auto fds = edge_->DuplicateListeners();
  ASSERT_TRUE(fds.ok()) << fds.status().ToString();
  EXPECT_EQ(fds->http.size(), 2u);  // one per thread
  EXPECT_TRUE(fds->https.empty());
  // The old edge stops accepting; the sockets live on in the dups, so connections queue.
  edge_->Drain();
  EXPECT_FALSE(edge_->DuplicateListeners().ok());
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 8; ++i) {
    clients.push_back(std::make_unique<RawClient>(port));
    ASSERT_TRUE(clients.back()->connected()) << "connection " << i << " was refused";
    ASSERT_TRUE(clients.back()->Send(Get("app.localhost")));
  }

  EdgeOptions next;
  next.listen_address = "127.0.0.1";
  next.port = 12345;  // ignored: the handed-over sockets say where they listen
  next.threads = 1;   // fewer threads than sockets: one worker accepts on both
  next.inherited_http_fds = fds->http;
  auto created = Edge::Create(next);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  std::unique_ptr<Edge> successor = std::move(*created);
  EXPECT_EQ(successor->port(), port);
  successor->Swap(Table(backend.port()));
  successor->Start();

  for (auto& client : clients) {
    auto response = client->ReadResponse();
    ASSERT_TRUE(response.has_value()) << "a queued connection got no answer";
    EXPECT_EQ(response->result_int(), 200);
    EXPECT_EQ(response->body(), "B GET / ");
  }
  EXPECT_EQ(backend.requests(), 8);
  ASSERT_TRUE(WaitFor([&] { return edge_->OpenConnections() == 0; }));
  edge_->Stop();
  // The port still answers: the successor holds the sockets.
  RawClient after(port);
  ASSERT_TRUE(after.connected());
  ASSERT_TRUE(after.Send(Get("app.localhost")));
  auto response = after.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->result_int(), 200);
  successor->Stop();
}

TEST_F(EdgeHandoverTest, DrainFinishesRequestsInFlightWithCloseAndClosesIdleConnections) {
  Latch release;
  Latch arrived;
  TestBackend slow("S", [&](const BackendRequest& req, tcp::socket& socket) {
    if (req.target == "/slow") {
      arrived.Open();
      release.Wait();
    }
    WriteAll(socket, TestBackend::TextResponse(200, "done " + req.target));
  });
  EdgeOptions options;
  options.drain_idle_grace = 300ms;
  StartEdge(options);
  SetRoutes({ProxyRoute("app.localhost", "p/app", {slow.port()})});

  RawClient idle(edge_->port());
  ASSERT_TRUE(idle.Send(Get("app.localhost")));
  auto first = idle.ReadResponse();
  ASSERT_TRUE(first.has_value());
  EXPECT_NE(idle.last_raw().find("done /"), std::string::npos);

  RawClient busy(edge_->port());
  ASSERT_TRUE(busy.Send("GET /slow HTTP/1.1\r\nHost: app.localhost\r\n\r\n"));
  ASSERT_TRUE(arrived.Wait());
  EXPECT_EQ(edge_->OpenConnections(), 2);

  edge_->Drain();
  // The idle keep-alive connection is closed once the grace passes...
  EXPECT_TRUE(idle.WaitForClose(10s));
  // ...the request in flight is answered, told to close, and then closed.
  release.Open();
  auto answer = busy.ReadResponse();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->result_int(), 200);
  EXPECT_EQ(answer->body(), "done /slow");
  EXPECT_NE(busy.last_raw().find("Connection: close"), std::string::npos) << busy.last_raw();
  EXPECT_TRUE(busy.WaitForClose());
  EXPECT_TRUE(WaitFor([&] { return edge_->OpenConnections() == 0; }));
}

TEST_F(EdgeHandoverTest, AKeepAliveRequestDuringTheGraceIsServedWithClose) {
  TestBackend backend("B");
  EdgeOptions options;
  options.drain_idle_grace = 30s;  // longer than the test: only the request ends it
  StartEdge(options);
  SetRoutes({ProxyRoute("app.localhost", "p/app", {backend.port()})});

  RawClient client(edge_->port());
  ASSERT_TRUE(client.Send(Get("app.localhost")));
  ASSERT_TRUE(client.ReadResponse().has_value());
  EXPECT_EQ(client.last_raw().find("Connection: close"), std::string::npos);

  edge_->Drain();
  ASSERT_TRUE(client.Send(Get("app.localhost")));
  auto second = client.ReadResponse();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->result_int(), 200);
  EXPECT_NE(client.last_raw().find("Connection: close"), std::string::npos) << client.last_raw();
  EXPECT_TRUE(client.WaitForClose());
  EXPECT_TRUE(WaitFor([&] { return edge_->OpenConnections() == 0; }));
}

TEST_F(EdgeHandoverTest, SocketsThatAreNotListeningAreRefused) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  EdgeOptions options;
  options.inherited_http_fds = {fd};
  auto edge = Edge::Create(options);
  ASSERT_FALSE(edge.ok());
  EXPECT_NE(edge.status().message().find("not a listening TCP socket"), std::string::npos)
      << edge.status().ToString();
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "the Edge owns (and closed) a socket it refused";
}

}  // namespace
}  // namespace slipway
