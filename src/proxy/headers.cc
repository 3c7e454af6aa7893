#include "proxy/headers.h"

#include <boost/beast/http/rfc7230.hpp>
#include <string>
#include <vector>

namespace slipway::proxy {

namespace http = boost::beast::http;

namespace {

std::string_view View(boost::beast::string_view s) { return {s.data(), s.size()}; }

bool IsFramingOrHost(std::string_view name) {
  return EqualsIgnoreCase(name, "content-length") || EqualsIgnoreCase(name, "transfer-encoding") ||
         EqualsIgnoreCase(name, "host");
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

void RemoveHopByHop(http::fields& fields, bool keep_upgrade) {
  std::vector<std::string> named;
  auto [begin, end] = fields.equal_range(http::field::connection);
  for (auto it = begin; it != end; ++it) {
    for (auto token : http::token_list(it->value())) named.emplace_back(View(token));
  }
  // Upgrade is named in Connection when upgrading; keep it in that case.
  for (const auto& name : named) {
    if (IsFramingOrHost(name)) continue;
    if (keep_upgrade && EqualsIgnoreCase(name, "upgrade")) continue;
    fields.erase(name);
  }
  fields.erase(http::field::connection);
  fields.erase(http::field::keep_alive);
  fields.erase(http::field::proxy_connection);
  fields.erase(http::field::te);
  fields.erase(http::field::trailer);
  if (!keep_upgrade) fields.erase(http::field::upgrade);
}

bool IsUpgradeRequest(const http::request_header<>& request) {
  if (request.version() < 11) return false;
  if (request.find(http::field::upgrade) == request.end()) return false;
  auto [begin, end] = request.equal_range(http::field::connection);
  for (auto it = begin; it != end; ++it) {
    if (http::token_list(it->value()).exists("upgrade")) return true;
  }
  return false;
}

void AddForwardedFields(http::request_header<>& request, std::string_view client_ip,
                        std::string_view proto, std::string_view original_host) {
  std::string forwarded_for;
  auto [begin, end] = request.equal_range("X-Forwarded-For");
  for (auto it = begin; it != end; ++it) {
    if (!forwarded_for.empty()) forwarded_for += ", ";
    forwarded_for += View(it->value());
  }
  if (!forwarded_for.empty()) forwarded_for += ", ";
  forwarded_for += client_ip;
  request.set("X-Forwarded-For", forwarded_for);
  request.set("X-Forwarded-Proto", proto);
  if (!original_host.empty()) request.set("X-Forwarded-Host", original_host);
}

void SetClientConnection(http::fields& fields, unsigned client_version, bool keep_alive) {
  fields.erase(http::field::connection);
  if (!keep_alive) {
    fields.set(http::field::connection, "close");
  } else if (client_version < 11) {
    fields.set(http::field::connection, "keep-alive");
  }
}

}  // namespace slipway::proxy
