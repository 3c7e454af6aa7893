// libFuzzer target: the edge's pure functions, far faster than the socket target.
//
// The first input byte picks the function (byte % 7) and a few flags (byte / 7); the
// rest is its input:
//   0  ResolveStaticPath against a real static site (fuzz_fixture.h)
//   1  PercentDecode, ContentTypeFor, HttpDate, IsSaneRequestId
//   2  a request head parsed by Beast, CheckRequestHead, WriteUpstreamRequestHead
//   3  a response head parsed by Beast, WriteClientResponseHead
//   4  RouteIndex: routes and queries from the input, Find() against a reference model
//   5  RouteTableFromJson, and RouteTableToJson of what it returns (round trip)
//   6  RouteTableToJson and FormatAccessLogLine of strings made of the input's bytes
//
// Besides ASan/UBSan and uncaught exceptions, an input fails when a result breaks the
// contract its header states (checked next to each call).

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_fixture.h"
#include "proxy/edge.h"
#include "proxy/headers.h"
#include "proxy/route_index.h"
#include "proxy/route_json.h"
#include "proxy/static_files.h"
#include "proxy/static_site.h"

namespace slipway::fuzz {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;

StaticSite* g_site = nullptr;
std::string_view g_input;  // the whole input, for failure messages

std::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string Printable(std::string_view in, size_t max = 300) {
  std::string out;
  for (unsigned char c : in.substr(0, max)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char esc[5];
      std::snprintf(esc, sizeof(esc), "\\x%02x", c);
      out += esc;
    }
  }
  if (in.size() > max) out += "...";
  return out;
}

void Check(bool ok, const std::string& what) {
  if (ok) return;
  FuzzFail(what + " (input \"" + Printable(g_input) + "\")");
}

// ---------------------------------------------------------------------------------------
// 0: static files.

void FuzzStaticPath(std::string_view target) {
  // Only targets Beast's parser lets through: no spaces or control bytes.
  for (unsigned char c : target) {
    if (c <= 0x20 || c == 0x7f) return;
  }
  const std::string& root = g_site->root;
  const proxy::StaticLookup lookup = proxy::ResolveStaticPath(root, target);
  switch (lookup.kind) {
    case proxy::StaticLookup::kFile: {
      // Inside the root, never a dot-file other than under /.well-known/.
      Check(lookup.path.compare(0, root.size() + 1, root + "/") == 0,
            "ResolveStaticPath served a file outside the root: " + lookup.path);
      const std::string rel = lookup.path.substr(root.size() + 1);
      Check(rel.find("/.") == std::string::npos &&
                (rel.front() != '.' || rel.compare(0, 12, ".well-known/") == 0),
            "ResolveStaticPath served a dot-file: " + lookup.path);
      break;
    }
    case proxy::StaticLookup::kRedirect:
      // A Location starting with "//" (or "/\", which browsers read the same) names
      // another host: an open redirect.
      Check(!lookup.path.empty() && lookup.path.front() == '/',
            "ResolveStaticPath redirects to a non-path: " + Printable(lookup.path));
      Check(Skipped("static-redirect") || lookup.path.size() < 2 ||
                (lookup.path[1] != '/' && lookup.path[1] != '\\'),
            "ResolveStaticPath redirects to another host (open redirect): Location " +
                Printable(lookup.path));
      Check(lookup.path.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
            "ResolveStaticPath puts CR, LF or NUL (decoded from %-escapes) in a Location");
      break;
    case proxy::StaticLookup::kBadPath:
      Check(!lookup.reason.empty(), "ResolveStaticPath: a bad path without a reason");
      break;
    case proxy::StaticLookup::kNotFound:
      break;
  }

  // The same target through a static site with rules (proxy/static_site.h): a redirect's
  // Location is a path of this host or the configured URL, never "//host", never CR/LF;
  // a file is inside the root and not a dot-file.
  static const std::unique_ptr<const proxy::StaticSite> site = [&] {
    Route route;
    route.host = "site.fuzz";
    route.static_root = root;
    route.clean_urls = true;
    route.trailing_slash = TrailingSlash::kAdd;
    route.spa_fallback = true;
    route.redirects = {{"/go/(.*)", "/$1", 302}, {"/old/:path*", "/sub/:path*", 308}};
    route.rewrites = {{"/r/:path*", "/sub/:path*"}};
    route.headers = {{"/(.*)", {{"X-Fuzz", "$1"}}}};
    return proxy::StaticSite::Build(route, "/");
  }();
  const proxy::StaticAnswer answer = site->Resolve(true, target);
  for (const auto& [name, value] : answer.headers) {
    Check(value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
          "StaticSite puts CR, LF or NUL in a header value");
  }
  if (answer.kind == proxy::StaticAnswer::kRedirect) {
    const std::string& location = answer.location;
    Check(!location.empty() && location.front() == '/',
          "StaticSite redirects to a non-path: " + Printable(location));
    Check(location.size() < 2 || (location[1] != '/' && location[1] != '\\'),
          "StaticSite redirects to another host (open redirect): Location " + Printable(location));
    Check(location.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
          "StaticSite puts CR, LF or NUL in a Location");
  } else if (answer.kind == proxy::StaticAnswer::kFile) {
    const std::string& rel = answer.file.relative;
    Check(rel.find("/.") == std::string::npos &&
              (rel.empty() || rel.front() != '.' || rel.compare(0, 12, ".well-known/") == 0),
          "StaticSite served a dot-file: " + rel);
  }
}

// ---------------------------------------------------------------------------------------
// 1: small helpers.

void FuzzHelpers(std::string_view in) {
  std::string decoded;
  if (proxy::PercentDecode(in, &decoded)) {
    Check(decoded.size() <= in.size(), "PercentDecode grew its input");
    // Percent-encoding every byte and decoding again is the identity.
    std::string encoded;
    for (unsigned char c : decoded) {
      char esc[4];
      std::snprintf(esc, sizeof(esc), "%%%02X", c);
      encoded += esc;
    }
    std::string again;
    Check(proxy::PercentDecode(encoded, &again) && again == decoded,
          "PercentDecode is not the inverse of percent-encoding");
  }
  Check(!proxy::ContentTypeFor(in).empty(), "ContentTypeFor returned nothing");
  uint64_t bits = 0;
  std::memcpy(&bits, in.data(), std::min(in.size(), sizeof(bits)));
  // Any mtime the edge may see: 1970 up to the year 9999.
  const auto seconds = static_cast<int64_t>(bits % uint64_t{253402300800});
  const std::string date = proxy::HttpDate(seconds);
  Check(date.size() == 29 && date.substr(25) == " GMT", "HttpDate is not an IMF-fixdate: " + date);
  if (proxy::IsSaneRequestId(in)) {
    Check(!in.empty() && in.size() <= 128, "IsSaneRequestId accepted a bad length");
    for (char c : in) {
      Check(c > ' ' && c < 0x7f && c != ',' && c != '"' && c != ';',
            "IsSaneRequestId accepted a byte that is unsafe in a header or a log");
    }
  }
}

// ---------------------------------------------------------------------------------------
// 2, 3: header writing.

struct Parsed {
  std::vector<std::pair<std::string, std::string>> fields;  // lowercase name, value
  size_t count(std::string_view name) const {
    return static_cast<size_t>(std::count_if(fields.begin(), fields.end(),
                                             [&](const auto& f) { return f.first == name; }));
  }
  std::string get(std::string_view name) const {
    for (const auto& f : fields) {
      if (f.first == name) return f.second;
    }
    return "";
  }
};

template <class Header>
Parsed Fields(const Header& h) {
  Parsed p;
  for (const auto& f : h) p.fields.emplace_back(Lower(View(f.name_string())), View(f.value()));
  return p;
}

// The field names listed in Connection; the edge remembers the first 16 (headers.cc).
std::vector<std::string> ConnectionTokens(const http::fields& fields, size_t max) {
  std::vector<std::string> names;
  auto [begin, end] = fields.equal_range(http::field::connection);
  for (auto it = begin; it != end; ++it) {
    for (auto token : http::token_list(it->value())) {
      if (names.size() < max) names.push_back(Lower(View(token)));
    }
  }
  return names;
}

// Parses `wire` as one complete head that uses every byte; fails the input otherwise.
template <bool isRequest>
http::message<isRequest, http::empty_body> Reparse(const std::string& wire, const char* what) {
  http::parser<isRequest, http::empty_body> parser;
  parser.eager(false);
  parser.header_limit(4 * 1024 * 1024);
  if constexpr (!isRequest) parser.skip(true);
  beast::error_code ec;
  const size_t used = parser.put(boost::asio::buffer(wire), ec);
  Check(!ec && parser.is_header_done(), std::string(what) + " does not parse as HTTP (" +
                                            ec.message() + "): \"" + Printable(wire) + "\"");
  Check(used == wire.size(),
        std::string(what) + " has bytes after the head: \"" + Printable(wire.substr(used)) + "\"");
  return parser.release();
}

void CheckNoHopByHop(const Parsed& out, const std::string& what) {
  for (const char* name : {"keep-alive", "proxy-connection", "te", "trailer"}) {
    Check(out.count(name) == 0, what + " keeps the hop-by-hop field " + name);
  }
}

void FuzzRequestHead(uint8_t flags, std::string_view in) {
  http::request_parser<http::empty_body> parser;
  parser.eager(false);
  parser.header_limit(64 * 1024);
  beast::error_code ec;
  parser.put(boost::asio::buffer(in.data(), in.size()), ec);
  if (ec || !parser.is_header_done()) return;
  const http::request<http::empty_body> req = parser.release();
  const Parsed original = Fields(req);

  const char* problem = proxy::CheckRequestHead(req);
  if (problem != nullptr) {
    Check(*problem != '\0', "CheckRequestHead: an empty reason");
    return;
  }
  // Accepted: unambiguous framing and Host, as headers.h promises.
  Check(original.count("host") <= 1, "CheckRequestHead accepted a repeated Host");
  Check(original.count("content-length") <= 1 &&
            original.get("content-length").find(',') == std::string::npos,
        "CheckRequestHead accepted a repeated or listed Content-Length");
  if (original.count("transfer-encoding") != 0) {
    std::string te = original.get("transfer-encoding");
    te.erase(0, te.find_first_not_of(" \t"));
    te.erase(te.find_last_not_of(" \t") + 1);
    Check(original.count("transfer-encoding") == 1 && Lower(te) == "chunked" &&
              original.count("content-length") == 0 && req.version() >= 11,
          "CheckRequestHead accepted an ambiguous Transfer-Encoding");
  }

  const bool upgrade = proxy::IsUpgradeRequest(req);
  if (upgrade) {
    Check(req.version() >= 11 && original.count("upgrade") != 0,
          "IsUpgradeRequest true without HTTP/1.1 and Upgrade");
  }
  proxy::ForwardedRequest forward;
  forward.client_ip = (flags & 1) != 0 ? "::1" : "127.0.0.1";
  forward.proto = (flags & 2) != 0 ? "https" : "http";
  forward.request_id = "0123456789abcdef0123456789abcdef";
  forward.upgrade = upgrade;
  if (parser.chunked()) {
    forward.framing = proxy::BodyFraming::kChunked;
  } else if (parser.content_length()) {
    forward.framing = proxy::BodyFraming::kLength;
    forward.length = *parser.content_length();
  }
  std::string wire;
  proxy::WriteUpstreamRequestHead(req, forward, &wire);
  const auto sent = Reparse<true>(wire, "the request head sent upstream");
  const Parsed out = Fields(sent);
  const std::string what = "the request head sent upstream";

  Check(sent.method_string() == req.method_string() && sent.target() == req.target() &&
            sent.version() == 11,
        what + " changed the request line");
  Check(out.count("host") == original.count("host") && out.get("host") == original.get("host"),
        what + " changed Host");
  CheckNoHopByHop(out, what);
  for (const auto& [name, value] : out.fields) {
    if (name == "connection") {
      Check(upgrade && Lower(value) == "upgrade", what + " has Connection: " + value);
    }
  }
  Check(upgrade || out.count("upgrade") == 0, what + " keeps Upgrade without upgrading");
  for (const std::string& name : ConnectionTokens(req, 16)) {
    if (name == "host" || name == "content-length" || name == "transfer-encoding" ||
        name == "x-forwarded-for" || name == "x-forwarded-proto" || name == "x-forwarded-host" ||
        name == "x-request-id" || (upgrade && name == "upgrade")) {
      continue;
    }
    Check(out.count(name) == 0, what + " keeps " + name + ", which Connection names");
  }
  switch (forward.framing) {
    case proxy::BodyFraming::kLength:
      Check(out.count("content-length") == 1 &&
                out.get("content-length") == std::to_string(forward.length) &&
                out.count("transfer-encoding") == 0,
            what + " is not framed by its Content-Length");
      break;
    case proxy::BodyFraming::kChunked:
      Check(out.count("transfer-encoding") == 1 && out.get("transfer-encoding") == "chunked" &&
                out.count("content-length") == 0,
            what + " is not framed as chunked");
      break;
    default:
      Check(out.count("transfer-encoding") == 0 && out.count("content-length") == 0,
            what + " has framing fields without a body");
  }
  Check(out.count("x-forwarded-for") == 1,
        what + " has " + std::to_string(out.count("x-forwarded-for")) + " X-Forwarded-For fields");
  const std::string xff = out.get("x-forwarded-for");
  Check(xff.size() >= forward.client_ip.size() &&
            xff.compare(xff.size() - forward.client_ip.size(), std::string::npos,
                        forward.client_ip) == 0,
        what + ": X-Forwarded-For does not end with the client: " + xff);
  Check(out.count("x-forwarded-proto") == 1 && out.get("x-forwarded-proto") == forward.proto,
        what + ": X-Forwarded-Proto is not the edge's");
  Check(out.count("x-request-id") == 1 && out.get("x-request-id") == forward.request_id,
        what + ": X-Request-Id is not the edge's");
  Check(out.count("x-forwarded-host") == (original.get("host").empty() ? 0u : 1u),
        what + ": X-Forwarded-Host is not the client's Host");
}

void FuzzResponseHead(uint8_t flags, std::string_view in) {
  http::response_parser<http::empty_body> parser;
  parser.eager(false);
  parser.skip(true);
  parser.header_limit(64 * 1024);
  beast::error_code ec;
  parser.put(boost::asio::buffer(in.data(), in.size()), ec);
  if (ec || !parser.is_header_done()) return;
  const http::response<http::empty_body> res = parser.release();
  if (Skipped("status-digits") && res.result_int() < 100) return;

  proxy::ClientResponse answer;
  answer.client_version = (flags & 1) != 0 ? 10 : 11;
  answer.keep_alive = (flags & 2) != 0;
  answer.upgrade = (flags & 4) != 0 && res.result_int() == 101;
  answer.request_id = (flags & 8) != 0 ? "" : "fedcba9876543210fedcba9876543210";
  static constexpr proxy::BodyFraming kFramings[] = {
      proxy::BodyFraming::kNone, proxy::BodyFraming::kLength, proxy::BodyFraming::kChunked,
      proxy::BodyFraming::kCloseDelimited};
  answer.framing = kFramings[(flags >> 4) & 3];
  answer.length = res.result_int() * 7u;
  std::string wire;
  proxy::WriteClientResponseHead(res, answer, &wire);
  const std::string what = "the response head sent to the client";
  Check(wire.compare(0, 9, "HTTP/1.1 ") == 0, what + " does not start with HTTP/1.1");
  const auto sent = Reparse<false>(wire, what.c_str());
  const Parsed out = Fields(sent);
  Check(sent.result_int() == res.result_int(), what + " changed the status");
  CheckNoHopByHop(out, what);
  const std::string connection = Lower(out.get("connection"));
  Check(out.count("connection") <= 1, what + " has several Connection fields");
  if (answer.upgrade) {
    Check(connection == "upgrade", what + ": a 101 without Connection: upgrade");
  } else {
    Check(out.count("upgrade") == 0, what + " keeps Upgrade");
    Check((connection == "close") == !answer.keep_alive, what + ": Connection \"" + connection +
                                                             "\" but keep-alive is " +
                                                             (answer.keep_alive ? "on" : "off"));
    if (answer.keep_alive) {
      Check(connection == (answer.client_version < 11 ? "keep-alive" : ""),
            what + ": Connection \"" + connection + "\" for a kept connection");
    }
  }
  switch (answer.framing) {
    case proxy::BodyFraming::kLength:
      Check(out.count("content-length") == 1 &&
                out.get("content-length") == std::to_string(answer.length) &&
                out.count("transfer-encoding") == 0,
            what + " is not framed by its Content-Length");
      break;
    case proxy::BodyFraming::kChunked:
      Check(out.count("transfer-encoding") == 1 && out.get("transfer-encoding") == "chunked" &&
                out.count("content-length") == 0,
            what + " is not framed as chunked");
      break;
    case proxy::BodyFraming::kCloseDelimited:
      Check(out.count("transfer-encoding") == 0 && out.count("content-length") == 0,
            what + " has framing fields on a close-delimited body");
      break;
    case proxy::BodyFraming::kNone:
      break;
  }
  if (!answer.request_id.empty()) {
    Check(out.count("x-request-id") == 1 && out.get("x-request-id") == answer.request_id,
          what + ": X-Request-Id is not the edge's");
  }
  for (const std::string& name : ConnectionTokens(res, 16)) {
    if (name == "content-length" || name == "transfer-encoding" || name == "connection" ||
        name == "x-request-id" || (answer.upgrade && name == "upgrade")) {
      continue;
    }
    Check(out.count(name) == 0, what + " keeps " + name + ", which Connection names");
  }
}

// ---------------------------------------------------------------------------------------
// 4: route lookup against a reference model of edge.h's matching rules.

bool RefHasPrefix(std::string_view path, std::string_view prefix) {
  if (prefix == "/") return true;
  return path == prefix || (path.size() > prefix.size() &&
                            path.substr(0, prefix.size()) == prefix && path[prefix.size()] == '/');
}

const proxy::CompiledRoute* RefFind(const proxy::RouteIndex& index, std::string_view host,
                                    std::string_view path) {
  auto longest = [&](std::string_view route_host) -> const proxy::CompiledRoute* {
    const proxy::CompiledRoute* best = nullptr;
    for (const auto& r : index.routes()) {
      if (r->host != route_host || !RefHasPrefix(path, r->path_prefix)) continue;
      if (best == nullptr || r->path_prefix.size() > best->path_prefix.size()) best = r.get();
    }
    return best;
  };
  if (host.empty()) return nullptr;
  if (const auto* r = longest(host)) return r;
  const size_t dot = host.find('.');
  if (dot == std::string_view::npos || dot == 0) return nullptr;
  return longest("*." + std::string(host.substr(dot + 1)));
}

std::string Describe(const proxy::CompiledRoute* r) {
  return r == nullptr ? "none" : "\"" + Printable(r->key) + "\"";
}

void FuzzRoutes(uint8_t flags, std::string_view in) {
  // "host<TAB>prefix" lines until an empty line, then "host<TAB>target" queries.
  auto table = std::make_shared<RouteTable>();
  std::vector<std::pair<std::string, std::string>> queries;
  bool in_queries = false;
  size_t pos = 0;
  while (pos <= in.size() && table->routes.size() + queries.size() < 96) {
    size_t nl = in.find('\n', pos);
    if (nl == std::string_view::npos) nl = in.size();
    const std::string_view line = in.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) {
      in_queries = true;
      continue;
    }
    const size_t tab = line.find('\t');
    std::string host(line.substr(0, tab));
    std::string second(tab == std::string_view::npos ? "/" : line.substr(tab + 1));
    if (in_queries) {
      queries.emplace_back(std::move(host), std::move(second));
    } else {
      Route r;
      r.host = std::move(host);
      r.path_prefix = std::move(second);
      r.service_label = (flags & 1) != 0 ? "" : "svc" + std::to_string(table->routes.size());
      if ((flags & 2) != 0 && table->routes.size() % 2 == 0) r.static_root = g_site->root;
      table->routes.push_back(std::move(r));
    }
  }
  const auto index = proxy::RouteIndex::Build(table);
  Check(index != nullptr, "RouteIndex::Build returned null");

  // Compiled routes: normalised hosts, canonical prefixes, no duplicate keys.
  for (const auto& r : index->routes()) {
    Check(!r->host.empty() && r->host != "*" && r->host != "*.", "a route without a host");
    const std::string& p = r->path_prefix;
    Check(!p.empty() && p.front() == '/' && (p.size() == 1 || p.back() != '/') &&
              p.find_first_of("?#") == std::string::npos,
          "a path prefix not in canonical form: " + Printable(p));
    for (const auto& other : index->routes()) {
      Check(other.get() == r.get() || other->host != r->host || other->path_prefix != p,
            "two compiled routes for " + Printable(r->host + p));
    }
    // Each route is found by its own host and prefix, and by paths under it.
    if (r->host.rfind("*.", 0) != 0) {
      for (const std::string& path : {p, p + "/x", p + "?q=1", p + "x"}) {
        queries.emplace_back(r->host, path);
      }
      std::string loud = r->host;
      for (auto& c : loud) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      }
      if (r->host.front() != '[' && r->host.find(':') == std::string::npos) {
        queries.emplace_back(loud + ".:8080", p);
      }
    } else {
      queries.emplace_back("a" + r->host.substr(1), p);
      queries.emplace_back("a.b" + r->host.substr(1), p);
      queries.emplace_back(r->host.substr(2), p);
    }
  }
  for (const auto& [raw_host, target] : queries) {
    const std::string host = proxy::NormalizeHost(raw_host);
    Check(host.size() <= raw_host.size(), "NormalizeHost grew the host");
    for (char c : host) Check(!(c >= 'A' && c <= 'Z'), "NormalizeHost left uppercase");
    // The reference only knows origin-form targets.
    if (target.empty() || target.front() != '/') continue;
    const std::string_view path = std::string_view(target).substr(0, target.find_first_of("?#"));
    const proxy::CompiledRoute* got = index->Find(host, target);
    const proxy::CompiledRoute* want = RefFind(*index, host, path);
    Check(got == want, "RouteIndex::Find(\"" + Printable(host) + "\", \"" + Printable(target) +
                           "\") returned " + Describe(got) + ", edge.h's rules say " +
                           Describe(want));
  }
}

// ---------------------------------------------------------------------------------------
// 5, 6: JSON.

bool SameTable(const RouteTable& a, const RouteTable& b) {
  if (a.routes.size() != b.routes.size()) return false;
  for (size_t i = 0; i < a.routes.size(); ++i) {
    const Route& x = a.routes[i];
    const Route& y = b.routes[i];
    if (x.host != y.host || x.service_label != y.service_label || x.static_root != y.static_root ||
        x.path_prefix != y.path_prefix || x.balance != y.balance ||
        x.max_body_bytes != y.max_body_bytes || x.redirect_to_https != y.redirect_to_https ||
        x.upstreams.size() != y.upstreams.size() || x.clean_urls != y.clean_urls ||
        x.trailing_slash != y.trailing_slash || x.spa_fallback != y.spa_fallback ||
        x.redirects.size() != y.redirects.size() || x.rewrites.size() != y.rewrites.size() ||
        x.headers.size() != y.headers.size()) {
      return false;
    }
    for (size_t j = 0; j < x.redirects.size(); ++j) {
      if (x.redirects[j].source != y.redirects[j].source ||
          x.redirects[j].destination != y.redirects[j].destination ||
          x.redirects[j].status != y.redirects[j].status) {
        return false;
      }
    }
    for (size_t j = 0; j < x.rewrites.size(); ++j) {
      if (x.rewrites[j].source != y.rewrites[j].source ||
          x.rewrites[j].destination != y.rewrites[j].destination) {
        return false;
      }
    }
    for (size_t j = 0; j < x.headers.size(); ++j) {
      if (x.headers[j].source != y.headers[j].source ||
          x.headers[j].headers != y.headers[j].headers) {
        return false;
      }
    }
    for (size_t j = 0; j < x.upstreams.size(); ++j) {
      if (x.upstreams[j].host != y.upstreams[j].host ||
          x.upstreams[j].port != y.upstreams[j].port) {
        return false;
      }
    }
  }
  return true;
}

void FuzzJsonParse(std::string_view in) {
  auto table = RouteTableFromJson(std::string(in));
  if (!table.ok()) {
    const std::string& message = table.status().message();
    Check(!message.empty() && message.find('\n') == std::string::npos,
          "RouteTableFromJson: an error that is not one line");
    return;
  }
  const std::string json = RouteTableToJson(*table);
  auto again = RouteTableFromJson(json);
  Check(again.ok(), "RouteTableFromJson rejects RouteTableToJson's output: " +
                        (again.ok() ? "" : again.status().message()));
  Check(SameTable(*table, *again), "the routing table does not survive a JSON round trip");
}

void FuzzJsonWrite(uint8_t flags, std::string_view in) {
  const size_t cut = in.size() / 2;
  const std::string a(in.substr(0, cut));
  const std::string b(in.substr(cut));
  if ((flags & 1) != 0) {
    if (Skipped("json-write")) return;
    // Strings as a control plane may hand them over: any bytes.
    RouteTable table;
    Route r;
    r.host = a;
    r.service_label = b;
    r.path_prefix = b;
    r.upstreams.push_back(Upstream{a, 8000});
    table.routes.push_back(r);
    const std::string json = RouteTableToJson(table);
    auto back = RouteTableFromJson(json);
    Check(back.ok(), "RouteTableFromJson rejects RouteTableToJson's output");
  } else {
    if (Skipped("access-log")) return;
    // What a client controls in an access log entry: method, host, path, request id.
    AccessLogEntry entry;
    entry.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(
        static_cast<int64_t>(in.size()) * 86'400'000 + static_cast<int64_t>(flags)));
    entry.method = a;
    entry.host = b;
    entry.path = b + a;
    entry.request_id = a;
    entry.note = b;
    entry.status = 200;
    const std::string line = FormatAccessLogLine(entry);
    Check(line.find('\n') == std::string::npos, "an access log line with a newline");
    const auto doc = nlohmann::json::parse(line, nullptr, false);
    Check(!doc.is_discarded() && doc.is_object(),
          "FormatAccessLogLine wrote a line that is not a JSON object: " + Printable(line));
    Check(doc.contains("path") && doc["path"].is_string(), "the access log line has no path");
  }
}

}  // namespace
}  // namespace slipway::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // Build() warns about every bad route
  static slipway::fuzz::StaticSite site = slipway::fuzz::MakeStaticSite();
  slipway::fuzz::g_site = &site;
  std::atexit([] { slipway::fuzz::RemoveStaticSite(*slipway::fuzz::g_site); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway::fuzz;
  if (size == 0) return 0;
  g_input = std::string_view(reinterpret_cast<const char*>(data), size);
  const std::string_view in = g_input.substr(1);
  const uint8_t flags = data[0] / 7;
  switch (data[0] % 7) {
    case 0:
      FuzzStaticPath(in);
      break;
    case 1:
      FuzzHelpers(in);
      break;
    case 2:
      FuzzRequestHead(flags, in);
      break;
    case 3:
      FuzzResponseHead(flags, in);
      break;
    case 4:
      FuzzRoutes(flags, in);
      break;
    case 5:
      FuzzJsonParse(in);
      break;
    case 6:
      FuzzJsonWrite(flags, in);
      break;
  }
  return 0;
}
