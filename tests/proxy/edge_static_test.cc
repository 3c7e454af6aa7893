// Static sites through a real edge: the routing rules from testdata/static_routing.txt,
// validators and 304s, ranges, precompressed variants, rewrites to other routes (and the
// 502 for other hosts), a gigabyte file in constant memory, HTTPS, and release switches
// under load.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "case_file.h"
#include "edge_fixture.h"
#include "proxy/edge.h"
#include "test_util.h"
#include "tls_test_util.h"

namespace slipway {
namespace {

using namespace proxy_test;
namespace http = boost::beast::http;
using Response = http::response<http::string_body>;
using Clock = std::chrono::steady_clock;

using testing_cases::SplitBar;

// "Name: value" -> {"Name", "value"}.
std::pair<std::string, std::string> SplitHeader(const std::string& text) {
  const size_t colon = text.find(": ");
  return {text.substr(0, colon), colon == std::string::npos ? "" : text.substr(colon + 2)};
}

class StaticSiteTest : public EdgeTest {
 protected:
  void SetUp() override {
    for (const std::string root : {"site", "site404"}) {
      dir_.Write(root + "/index.html", "home");
      dir_.Write(root + "/about.html", "about");
      dir_.Write(root + "/blog.html", "blog");
      dir_.Write(root + "/docs/index.html", "docs");
      dir_.Write(root + "/docs/intro.html", "intro");
      dir_.Write(root + "/v1.2/index.html", "v1.2");
      dir_.Write(root + "/style.css", "css");
      dir_.Write(root + "/assets/app-4f3a9c2b.js", "js");
      dir_.Write(root + "/.well-known/security.txt", "sec");
      dir_.Write(root + "/.env", "secret");
    }
    dir_.Write("site404/404.html", "custom 404");
    StartEdge();
  }

  Route Site(const std::string& root = "site") {
    return StaticRoute("www.localhost", dir_.path() + "/" + root);
  }

  std::optional<Response> Request(const std::string& method, const std::string& target,
                                  const std::string& extra_headers = "",
                                  const std::string& host = "www.localhost") {
    RawClient client(edge_->port());
    if (!client.Send(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra_headers +
                     "\r\n")) {
      return std::nullopt;
    }
    return client.ReadResponse(method == "HEAD");
  }

  TempDir dir_;
};

TEST_F(StaticSiteTest, RoutingRulesFromTestdata) {
  std::ifstream in(std::string(SLIPWAY_PROXY_TESTDATA) + "/static_routing.txt");
  ASSERT_TRUE(in.good());
  Route route;
  bool dirty = true;
  int line_number = 0, cases = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    SCOPED_TRACE("static_routing.txt:" + std::to_string(line_number) + ": " + line);
    std::istringstream words(line);
    std::string first;
    words >> first;
    if (first == "route") {
      route = Site();
      dirty = true;
      continue;
    }
    if (first == "set") {
      std::string what;
      words >> what;
      std::string rest;
      std::getline(words, rest);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      std::istringstream args(rest);
      if (what == "clean_urls") {
        route.clean_urls = true;
      } else if (what == "spa") {
        route.spa_fallback = true;
      } else if (what == "trailing_slash") {
        route.trailing_slash = rest == "add" ? TrailingSlash::kAdd : TrailingSlash::kRemove;
      } else if (what == "prefix") {
        route.path_prefix = rest;
      } else if (what == "root") {
        route.static_root = dir_.path() + "/" + rest;
      } else if (what == "redirect") {
        StaticRedirect r;
        args >> r.source >> r.destination >> r.status;
        route.redirects.push_back(r);
      } else if (what == "rewrite") {
        StaticRewrite r;
        args >> r.source >> r.destination;
        route.rewrites.push_back(r);
      } else if (what == "header") {
        StaticHeaders h;
        args >> h.source;
        std::string header;
        std::getline(args, header);
        h.headers.push_back(SplitHeader(header.substr(1)));
        route.headers.push_back(h);
      } else {
        ADD_FAILURE() << "unknown setting " << what;
      }
      dirty = true;
      continue;
    }
    if (dirty) {
      SetRoutes({route});
      dirty = false;
    }
    ++cases;
    const auto fields = SplitBar(line);
    ASSERT_GE(fields.size(), 2u);
    const std::string method = first;
    const std::string target = fields[0].substr(method.size() + 1);
    auto res = Request(method, target);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(std::to_string(res->result_int()), fields[1]) << res->body();
    for (size_t i = 2; i < fields.size(); ++i) {
      const std::string& check = fields[i];
      const size_t space = check.find(' ');
      const std::string kind = check.substr(0, space);
      const std::string value = check.substr(space + 1);
      if (kind == "body") {
        EXPECT_EQ(res->body(), value);
      } else if (kind == "location") {
        EXPECT_EQ((*res)[http::field::location], value);
      } else if (kind == "header") {
        const auto [name, expected] = SplitHeader(value);
        EXPECT_EQ((*res)[name], expected) << name;
        EXPECT_EQ(res->count(name), 1u) << name;
      } else if (kind == "noheader") {
        EXPECT_EQ(res->count(value), 0u) << value;
      } else {
        ADD_FAILURE() << "unknown check " << kind;
      }
    }
  }
  EXPECT_GT(cases, 90);
}

TEST_F(StaticSiteTest, ValidatorsAndConditionalRequests) {
  SetRoutes({Site()});
  auto first = Request("GET", "/style.css");
  ASSERT_TRUE(first.has_value());
  const std::string etag((*first)[http::field::etag]);
  const std::string modified((*first)[http::field::last_modified]);
  ASSERT_EQ(etag.front(), '"');  // strong
  ASSERT_FALSE(modified.empty());
  EXPECT_FALSE((*first)[http::field::date].empty());

  auto by_tag = Request("GET", "/style.css", "If-None-Match: " + etag + "\r\n");
  ASSERT_TRUE(by_tag.has_value());
  EXPECT_EQ(by_tag->result_int(), 304u);
  EXPECT_EQ(by_tag->body(), "");
  EXPECT_EQ((*by_tag)[http::field::etag], etag);
  EXPECT_EQ((*by_tag)[http::field::cache_control], "public, max-age=0, must-revalidate");
  EXPECT_EQ(by_tag->count(http::field::content_length), 0u);

  auto weak = Request("GET", "/style.css", "If-None-Match: \"x\", W/" + etag + "\r\n");
  ASSERT_TRUE(weak.has_value());
  EXPECT_EQ(weak->result_int(), 304u);

  auto by_date = Request("HEAD", "/style.css", "If-Modified-Since: " + modified + "\r\n");
  ASSERT_TRUE(by_date.has_value());
  EXPECT_EQ(by_date->result_int(), 304u);

  // If-None-Match wins over If-Modified-Since.
  auto changed = Request("GET", "/style.css",
                         "If-None-Match: \"other\"\r\nIf-Modified-Since: " + modified + "\r\n");
  ASSERT_TRUE(changed.has_value());
  EXPECT_EQ(changed->result_int(), 200u);
  EXPECT_EQ(changed->body(), "css");

  // A 304 on a keep-alive connection leaves it usable: the next answer parses.
  RawClient client(edge_->port());
  ASSERT_TRUE(
      client.Send("GET /style.css HTTP/1.1\r\nHost: www.localhost\r\nIf-None-Match: " + etag +
                  "\r\n\r\nGET /about.html HTTP/1.1\r\nHost: www.localhost\r\n\r\n"));
  auto not_modified = client.ReadResponse();
  ASSERT_TRUE(not_modified.has_value());
  EXPECT_EQ(not_modified->result_int(), 304u);
  auto next = client.ReadResponse();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->body(), "about");
}

TEST_F(StaticSiteTest, SingleRanges) {
  std::string data(100000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  dir_.Write("site/data.bin", data);
  SetRoutes({Site()});
  auto full = Request("GET", "/data.bin");
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ((*full)[http::field::accept_ranges], "bytes");
  const std::string etag((*full)[http::field::etag]);

  auto part = Request("GET", "/data.bin", "Range: bytes=10-19\r\n");
  ASSERT_TRUE(part.has_value());
  EXPECT_EQ(part->result_int(), 206u);
  EXPECT_EQ((*part)[http::field::content_range], "bytes 10-19/100000");
  EXPECT_EQ((*part)[http::field::content_length], "10");
  EXPECT_EQ(part->body(), data.substr(10, 10));

  // A range past the relay buffer goes out with sendfile.
  auto tail = Request("GET", "/data.bin", "Range: bytes=-70000\r\n");
  ASSERT_TRUE(tail.has_value());
  EXPECT_EQ(tail->result_int(), 206u);
  EXPECT_EQ((*tail)[http::field::content_range], "bytes 30000-99999/100000");
  EXPECT_TRUE(tail->body() == data.substr(30000));

  auto beyond = Request("GET", "/data.bin", "Range: bytes=100000-\r\n");
  ASSERT_TRUE(beyond.has_value());
  EXPECT_EQ(beyond->result_int(), 416u);
  EXPECT_EQ((*beyond)[http::field::content_range], "bytes */100000");

  auto same = Request("GET", "/data.bin", "Range: bytes=0-0\r\nIf-Range: " + etag + "\r\n");
  ASSERT_TRUE(same.has_value());
  EXPECT_EQ(same->result_int(), 206u);
  EXPECT_EQ(same->body(), "a");
  auto stale = Request("GET", "/data.bin", "Range: bytes=0-0\r\nIf-Range: \"old\"\r\n");
  ASSERT_TRUE(stale.has_value());
  EXPECT_EQ(stale->result_int(), 200u);
  EXPECT_EQ(stale->body().size(), data.size());

  auto several = Request("GET", "/data.bin", "Range: bytes=0-1,5-6\r\n");
  ASSERT_TRUE(several.has_value());
  EXPECT_EQ(several->result_int(), 200u);

  auto head = Request("HEAD", "/data.bin", "Range: bytes=0-9\r\n");
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->result_int(), 200u);  // ranges are for GET
  EXPECT_EQ((*head)[http::field::content_length], "100000");
}

TEST_F(StaticSiteTest, PrecompressedVariantsByAcceptEncoding) {
  const std::string js(4000, 'j');
  dir_.Write("site/app.js", js);
  dir_.Write("site/app.js.br", "BROTLI");
  dir_.Write("site/app.js.gz", "GZIP!!!");
  dir_.Write("site/only-gz.css", std::string(3000, 'c'));
  dir_.Write("site/only-gz.css.gz", "GZ");
  dir_.Write("site/img.png", "png");
  dir_.Write("site/img.png.gz", "never used");
  SetRoutes({Site()});

  auto br = Request("GET", "/app.js", "Accept-Encoding: gzip, deflate, br\r\n");
  ASSERT_TRUE(br.has_value());
  EXPECT_EQ((*br)[http::field::content_encoding], "br");
  EXPECT_EQ((*br)[http::field::content_length], "6");
  EXPECT_EQ((*br)[http::field::content_type], "text/javascript; charset=utf-8");
  EXPECT_EQ((*br)[http::field::vary], "Accept-Encoding");
  EXPECT_EQ(br->body(), "BROTLI");
  const std::string br_tag((*br)[http::field::etag]);

  auto gzip = Request("GET", "/app.js", "Accept-Encoding: br;q=0.5, gzip\r\n");
  ASSERT_TRUE(gzip.has_value());
  EXPECT_EQ((*gzip)[http::field::content_encoding], "gzip");
  EXPECT_EQ(gzip->body(), "GZIP!!!");
  EXPECT_NE((*gzip)[http::field::etag], br_tag);

  auto identity = Request("GET", "/app.js");
  ASSERT_TRUE(identity.has_value());
  EXPECT_EQ(identity->count(http::field::content_encoding), 0u);
  EXPECT_EQ(identity->body(), js);
  EXPECT_EQ((*identity)[http::field::vary], "Accept-Encoding");
  EXPECT_NE((*identity)[http::field::etag], br_tag);

  // The variant's own tag revalidates the variant.
  auto revalidated =
      Request("GET", "/app.js", "Accept-Encoding: br\r\nIf-None-Match: " + br_tag + "\r\n");
  ASSERT_TRUE(revalidated.has_value());
  EXPECT_EQ(revalidated->result_int(), 304u);
  EXPECT_EQ((*revalidated)[http::field::vary], "Accept-Encoding");

  auto fallback = Request("GET", "/only-gz.css", "Accept-Encoding: br, gzip\r\n");
  ASSERT_TRUE(fallback.has_value());
  EXPECT_EQ((*fallback)[http::field::content_encoding], "gzip");
  EXPECT_EQ(fallback->body(), "GZ");

  // Ranges are served from the file itself, whatever the client accepts.
  auto range = Request("GET", "/app.js", "Accept-Encoding: br\r\nRange: bytes=0-3\r\n");
  ASSERT_TRUE(range.has_value());
  EXPECT_EQ(range->result_int(), 206u);
  EXPECT_EQ(range->count(http::field::content_encoding), 0u);
  EXPECT_EQ(range->body(), "jjjj");

  // Images are not looked up for variants, and get no Vary.
  auto png = Request("GET", "/img.png", "Accept-Encoding: gzip\r\n");
  ASSERT_TRUE(png.has_value());
  EXPECT_EQ(png->body(), "png");
  EXPECT_EQ(png->count(http::field::vary), 0u);

  // A variant older than its file (left from another build) is not served.
  const auto old = std::filesystem::last_write_time(dir_.path() + "/site/app.js") - 1h;
  std::filesystem::last_write_time(dir_.path() + "/site/app.js.gz", old);
  auto stale = Request("GET", "/app.js", "Accept-Encoding: gzip\r\n");
  ASSERT_TRUE(stale.has_value());
  EXPECT_EQ(stale->count(http::field::content_encoding), 0u);
  EXPECT_EQ(stale->body(), js);
}

TEST_F(StaticSiteTest, RewritesToAnotherRouteAreProxiedInProcess) {
  TestBackend api("API");
  Route site = Site();
  const std::string api_url = "http://api.demo.localhost:" + std::to_string(edge_->port());
  site.rewrites.push_back({"/api/:path*", api_url + "/v1/:path*"});
  site.rewrites.push_back({"/search", api_url + "/find"});
  site.headers.push_back({"/api/(.*)", {{"X-Via-Site", "yes"}}});
  SetRoutes({site, ProxyRoute("api.demo.localhost", "demo/api", {api.port()})});

  auto get = Request("GET", "/api/users/7?expand=1");
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->result_int(), 200u);
  EXPECT_EQ(get->body(), "API GET /v1/users/7?expand=1 ");
  EXPECT_EQ((*get)["X-Via-Site"], "yes");

  RawClient client(edge_->port());
  ASSERT_TRUE(
      client.Send("POST /api/orders HTTP/1.1\r\nHost: www.localhost\r\nContent-Type: text/plain\r\n"
                  "Content-Length: 5\r\n\r\nhello"));
  auto post = client.ReadResponse();
  ASSERT_TRUE(post.has_value());
  EXPECT_EQ(post->body(), "API POST /v1/orders hello");
  const std::vector<BackendRequest> received = api.received();
  ASSERT_FALSE(received.empty());
  const BackendRequest& seen = received.back();
  EXPECT_EQ(seen.get("host"), "api.demo.localhost:" + std::to_string(edge_->port()));
  EXPECT_EQ(seen.get("x-forwarded-host"), "www.localhost");
  EXPECT_EQ(seen.get("content-type"), "text/plain");

  // The query of the request is kept; the destination's unused names are not added.
  auto search = Request("GET", "/search?q=tea");
  ASSERT_TRUE(search.has_value());
  EXPECT_EQ(search->body(), "API GET /find?q=tea ");
  // Files still win over rewrites; the keep-alive connection carries on.
  ASSERT_TRUE(client.Send("GET /about.html HTTP/1.1\r\nHost: www.localhost\r\n\r\n"));
  auto file = client.ReadResponse();
  ASSERT_TRUE(file.has_value());
  EXPECT_EQ(file->body(), "about");
}

TEST_F(StaticSiteTest, RewritesToOtherHostsAreNotProxied) {
  TestBackend elsewhere("ELSEWHERE");
  Route site = Site();
  site.rewrites.push_back(
      {"/out/(.*)", "http://127.0.0.1:" + std::to_string(elsewhere.port()) + "/$1"});
  site.rewrites.push_back({"/evil", "http://user@api.demo.localhost/"});
  SetRoutes({site});
  for (const std::string target : {"/out/x", "/evil"}) {
    auto res = Request("GET", target);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->result_int(), 502u) << target;
    EXPECT_NE(res->body().find("not an app of this Slipway edge"), std::string::npos)
        << res->body();
  }
  EXPECT_EQ(elsewhere.requests(), 0);
}

TEST_F(StaticSiteTest, RewriteToAStaticRouteAndLoops) {
  Route site = Site();
  site.rewrites.push_back({"/docs-site/:path*", "http://docs.localhost/:path*"});
  Route docs = StaticRoute("docs.localhost", dir_.path() + "/site/docs");
  docs.service_label = "site/docs";
  Route loop = StaticRoute("loop.localhost", dir_.path() + "/site");
  loop.rewrites.push_back({"/(.*)", "http://loop.localhost/again/$1"});
  SetRoutes({site, docs, loop});
  auto res = Request("GET", "/docs-site/intro.html");
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->result_int(), 200u);
  EXPECT_EQ(res->body(), "intro");
  auto looped = Request("GET", "/x", "", "loop.localhost");
  ASSERT_TRUE(looped.has_value());
  EXPECT_EQ(looped->result_int(), 502u);
}

size_t ResidentBytes() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return static_cast<size_t>(resident) * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

// Reads one response to `request` from 127.0.0.1:port, keeping only the head and a count
// of the body's bytes (so a gigabyte costs the test nothing).
struct Counted {
  std::string head;
  uint64_t body = 0;
};
Counted CountResponse(int port, const std::string& request, uint64_t expected_body) {
  Counted out;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return out;
  }
  std::vector<char> buf(1 << 20);
  std::string pending;
  while (out.body < expected_body) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    if (out.head.empty()) {
      pending.append(buf.data(), static_cast<size_t>(n));
      const size_t end = pending.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      out.head = pending.substr(0, end + 4);
      out.body = pending.size() - end - 4;
    } else {
      out.body += static_cast<uint64_t>(n);
    }
  }
  ::close(fd);
  return out;
}

TEST_F(StaticSiteTest, GigabyteFileIsSentInConstantMemory) {
  constexpr uint64_t kSize = uint64_t{1} << 30;
  {
    // Sparse: no disk space, and reads cost no I/O.
    std::ofstream(dir_.path() + "/site/big.bin").close();
    std::filesystem::resize_file(dir_.path() + "/site/big.bin", kSize);
  }
  SetRoutes({Site()});
  ASSERT_TRUE(Request("GET", "/style.css").has_value());  // warm up
  const size_t before = ResidentBytes();
  const auto start = Clock::now();
  Counted whole =
      CountResponse(edge_->port(), "GET /big.bin HTTP/1.1\r\nHost: www.localhost\r\n\r\n", kSize);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const size_t after = ResidentBytes();
  EXPECT_NE(whole.head.find("HTTP/1.1 200 OK\r\n"), std::string::npos) << whole.head;
  EXPECT_NE(whole.head.find("Content-Length: 1073741824\r\n"), std::string::npos);
  EXPECT_EQ(whole.body, kSize);
  const double grew_mib = (static_cast<double>(after) - static_cast<double>(before)) / (1 << 20);
  std::printf("1 GiB static file: %.2f s, RSS grew %.1f MiB\n", seconds, grew_mib);
  EXPECT_LT(grew_mib, 64.0);

  Counted end = CountResponse(
      edge_->port(),
      "GET /big.bin HTTP/1.1\r\nHost: www.localhost\r\nRange: bytes=1073741000-\r\n\r\n", 824);
  EXPECT_NE(end.head.find("Content-Range: bytes 1073741000-1073741823/1073741824\r\n"),
            std::string::npos)
      << end.head;
  EXPECT_EQ(end.body, 824u);
}

TEST_F(StaticSiteTest, HttpsServesFilesThroughTheReadWritePath) {
  edge_->Stop();
  TestTlsProvider provider{"www.localhost"};
  EdgeOptions options;
  options.https_port = 0;
  options.tls = &provider;
  StartEdge(options);
  std::string big(300000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7) % 26);
  dir_.Write("site/big.txt", big);
  SetRoutes({Site()});
  TlsExchange small = TlsGet(edge_->https_port(), "www.localhost", "www.localhost", "/about.html");
  ASSERT_EQ(small.error, "");
  ASSERT_TRUE(small.response.has_value());
  EXPECT_EQ(small.response->body(), "about");
  TlsExchange large = TlsGet(edge_->https_port(), "www.localhost", "www.localhost", "/big.txt");
  ASSERT_EQ(large.error, "");
  ASSERT_TRUE(large.response.has_value());
  EXPECT_TRUE(large.response->body() == big);
}

TEST_F(StaticSiteTest, SwitchingReleasesUnderLoadFailsNoRequest) {
  dir_.Write("release-a/index.html", "release A");
  dir_.Write("release-b/index.html", "release B");
  dir_.Write("release-a/assets/app-11111111.js", "a");
  dir_.Write("release-b/assets/app-22222222.js", "b");
  auto release = [&](const std::string& name) {
    Route r = StaticRoute("www.localhost", dir_.path() + "/" + name);
    r.clean_urls = true;
    r.spa_fallback = true;
    r.headers.push_back({"/(.*)", {{"X-Release", name}}});
    return r;
  };
  SetRoutes({release("release-a")});
  std::atomic<bool> done{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 2; ++c) {
    clients.emplace_back([&, c] {
      auto client = std::make_unique<RawClient>(edge_->port());
      int i = 0;
      while (!done) {
        // Client-side routes of the SPA, and the page itself.
        const std::string target = (i % 3 == 0) ? "/" : "/page/" + std::to_string(c * 100000 + i);
        if (++i % 10 == 0) client = std::make_unique<RawClient>(edge_->port());
        auto res = client->Send("GET " + target + " HTTP/1.1\r\nHost: www.localhost\r\n\r\n")
                       ? client->ReadResponse()
                       : std::nullopt;
        const bool good = res && res->result_int() == 200 &&
                          ((res->body() == "release A" && (*res)["X-Release"] == "release-a") ||
                           (res->body() == "release B" && (*res)["X-Release"] == "release-b"));
        (good ? ok : failed)++;
        if (!good) client = std::make_unique<RawClient>(edge_->port());
      }
    });
  }
  for (int i = 0; i < 1000; ++i) {
    SetRoutes({release(i % 2 ? "release-a" : "release-b")});
    if (i % 100 == 0) std::this_thread::yield();
  }
  const int seen = ok.load();
  const auto deadline = Clock::now() + 30s;
  while (ok.load() < seen + 20 && failed.load() == 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  done = true;
  for (auto& t : clients) t.join();
  std::printf("static release switches under load: %d requests ok, %d failed\n", ok.load(),
              failed.load());
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 20);
}

}  // namespace
}  // namespace slipway
