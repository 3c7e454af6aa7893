#pragma once

// The fixture every edge test uses: an in-process Edge on 127.0.0.1:<free port> with two
// threads, plus helpers to build routes and send requests through it.

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/http_client.h"
#include "proxy/edge.h"
#include "test_util.h"

namespace slipway::proxy_test {

inline Route ProxyRoute(const std::string& host, const std::string& label,
                        const std::vector<int>& ports, const std::string& path_prefix = "/") {
  Route route;
  route.host = host;
  route.service_label = label;
  route.path_prefix = path_prefix;
  for (int port : ports) route.upstreams.push_back(Upstream{"127.0.0.1", port});
  return route;
}

inline Route StaticRoute(const std::string& host, const std::string& root) {
  Route route;
  route.host = host;
  route.service_label = "site/web";
  route.static_root = root;
  return route;
}

class EdgeTest : public ::testing::Test {
 protected:
  void StartEdge(EdgeOptions options = {}) {
    options.listen_address = "127.0.0.1";
    options.port = 0;
    if (options.https_port >= 0) options.https_port = 0;
    if (options.threads == 1) options.threads = 2;
    auto edge = Edge::Create(options);
    ASSERT_TRUE(edge.ok()) << edge.status().ToString();
    edge_ = std::move(edge).value();
    edge_->Start();
  }

  void SetRoutes(std::vector<Route> routes) {
    auto table = std::make_shared<RouteTable>();
    table->routes = std::move(routes);
    edge_->Swap(table);
  }

  // One request through the edge with the given Host.
  Result<HttpResponse> Call(const std::string& host, const std::string& target = "/",
                            const std::string& method = "GET", const std::string& body = "",
                            std::map<std::string, std::string> headers = {}) {
    HttpRequest request;
    request.port = edge_->port();
    request.method = method;
    request.target = target;
    request.body = body;
    request.headers = std::move(headers);
    request.headers["Host"] = host;
    return HttpCall(request);
  }

  void TearDown() override {
    if (edge_) edge_->Stop();
  }

  std::unique_ptr<Edge> edge_;
};

}  // namespace slipway::proxy_test
